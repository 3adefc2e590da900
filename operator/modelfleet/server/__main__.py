"""`python -m modelfleet.server --artifact DIR --model-name NAME [--expected-digest sha256:...]`.

Verifies the artifact's digest before loading anything, refuses pickle-based files, loads within --load-timeout,
then serves on --host:--port until SIGTERM, when it stops accepting connections and drains requests in flight."""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import sys
from pathlib import Path

from aiohttp import web

from modelfleet.artifact.objectstore import DEFAULT_MAX_ARTIFACT_BYTES
from modelfleet.server.app import build_app
from modelfleet.server.drift import DEFAULT_STATISTICS, DriftMonitor
from modelfleet.server.model import LoadError, ServedModel, load_model, local_artifact
from modelfleet.server.workers import enable_multiprocess_metrics, serve_workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfleet.server", description=__doc__)
    parser.add_argument(
        "--artifact",
        required=True,
        help="the artifact directory, or an s3:// or gs:// location (fetched and verified before loading; "
        "credentials and endpoint from the AWS_* variables; gs:// through Google's S3-compatible API, HMAC keys)",
    )
    parser.add_argument(
        "--max-artifact-bytes",
        type=int,
        default=DEFAULT_MAX_ARTIFACT_BYTES,
        help="refuse an s3:// or gs:// artifact larger than this",
    )
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-version", default="")
    parser.add_argument("--expected-digest", help="refuse the artifact unless its digest is exactly this")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load a scikit-learn model.joblib/model.pkl (arbitrary code on load!); needs --expected-digest",
    )
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--grpc-port", type=int, default=8081, help="Open Inference Protocol v2 over gRPC on this port (0: off)"
    )
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request (REST body, gRPC message)")
    parser.add_argument("--load-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=1,
        help="adaptive micro-batching up to this many rows (1: off); for models such as random "
        "forests whose per-call cost dominates",
    )
    parser.add_argument(
        "--max-batch-wait-ms",
        type=float,
        default=0.0,
        help="how long a lone request waits for company (0: never; batches still form from the "
        "requests that queue while a batch is predicting)",
    )
    parser.add_argument(
        "--drift-statistics",
        default=",".join(DEFAULT_STATISTICS),
        help="comma-separated drift statistics exported per feature (psi, ks, jensenshannon, wasserstein; empty: "
        "drift metrics off)",
    )
    parser.add_argument("--drift-window-rows", type=int, default=10_000, help="count-based drift window")
    parser.add_argument("--drift-window-seconds", type=float, help="time-based drift window instead of a count")
    parser.add_argument("--drift-min-rows", type=int, default=500, help="export no drift below this many rows")
    parser.add_argument(
        "--drift-psi-bins",
        type=int,
        default=10,
        help="at most this many equal-mass PSI bins (fewer for small references)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port: the model is loaded once, then the workers are forked",
    )
    parser.add_argument("--drain-seconds", type=float, default=10.0, help="grace for requests in flight on SIGTERM")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import sklearn

    # Requests are validated by the server (shapes, types, no NaN or inf) before they reach the model, so the
    # per-call checks scikit-learn repeats on every predict are skipped.
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def fetch_and_load() -> tuple[Path, ServedModel]:
        directory = local_artifact(
            args.artifact, expected_digest=args.expected_digest, max_bytes=args.max_artifact_bytes
        )
        return directory, load_model(
            directory,
            name=args.model_name,
            version=args.model_version,
            expected_digest=args.expected_digest,
            allow_pickle=args.allow_pickle,
        )

    future = pool.submit(fetch_and_load)
    try:
        artifact, model = future.result(timeout=args.load_timeout)
    except LoadError as e:
        print(f"modelfleet-server: error: {e}", file=sys.stderr)
        return 2
    except concurrent.futures.TimeoutError:
        print(f"modelfleet-server: error: loading took longer than {args.load_timeout:.0f}s", file=sys.stderr)
        return 2
    pool.shutdown(wait=args.workers > 1)  # no stray thread when forking
    if args.workers < 1:
        print("modelfleet-server: error: --workers must be at least 1", file=sys.stderr)
        return 2
    metrics_dir = enable_multiprocess_metrics() if args.workers > 1 else None
    statistics = [s for s in args.drift_statistics.split(",") if s]
    try:
        drift = (
            DriftMonitor.from_artifact(
                artifact,
                model.feature_names,
                model=model.name,
                version=model.version,
                statistics=statistics,
                window_rows=args.drift_window_rows,
                window_seconds=args.drift_window_seconds,
                min_rows=args.drift_min_rows,
                psi_bins=args.drift_psi_bins,
                share_dir=metrics_dir,
            )
            if statistics
            else None
        )
    except (ValueError, KeyError, OSError) as e:
        print(f"modelfleet-server: error: drift monitoring: {e}", file=sys.stderr)
        return 2
    print(
        f"modelfleet-server: serving {model.name} version {model.version} ({model.digest}) on {args.host}:{args.port}"
        + (f" (gRPC :{args.grpc_port})" if args.grpc_port else "")
        + f" with {args.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )

    def app() -> web.Application:
        wait = args.max_batch_wait_ms / 1000
        application = build_app(model, args.max_body_bytes, args.max_batch_size, wait, drift, metrics_dir)
        if args.grpc_port:
            # Imported here, in the worker: gRPC's core must not be started before a fork.
            from modelfleet.server.grpc_service import add_grpc

            add_grpc(
                application,
                args.host,
                args.grpc_port,
                args.max_body_bytes,
                args.drain_seconds,
                shared=metrics_dir is not None,
            )
        return application

    options = {"shutdown_timeout": args.drain_seconds, "access_log": None, "print": None}
    if metrics_dir is None:
        try:
            web.run_app(app(), host=args.host, port=args.port, **options)
        except OSError as e:  # a port already taken (HTTP or gRPC): one line, as for every other start-up failure
            print(f"modelfleet-server: error: {e}", file=sys.stderr)
            return 2
        return 0
    return serve_workers(
        args.workers,
        lambda sock: web.run_app(app(), sock=sock, **options),
        args.host,
        args.port,
        metrics_dir,
    )


if __name__ == "__main__":
    raise SystemExit(main())
