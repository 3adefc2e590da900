"""Serving: ModelFleet's model server against MLServer (mlserver + mlserver-sklearn) on the same scikit-learn models
(logistic regression and a 100-tree random forest on Iris), the same machine, the same load generator, one server at a
time, in one run.

    .venv/bin/python -m bench.serving.run [--seconds 8]

MLServer is installed into its own virtual environment under ~/.cache/modelfleet/bench (pinned: mlserver 1.7.1,
mlserver-sklearn 1.7.1, uvloop 0.21.0 — newer uvloop crashes its default worker mode — and our scikit-learn version),
and serves a joblib file of the same model trained in that environment. Both get the same one-row Open Inference
Protocol v2 request ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", ...}]}).
Targets: >= 2x MLServer's throughput at equal or lower p99, and single-request p99 <= 3 ms for logistic regression.
The same servers are then measured over gRPC (the same request as a ModelInferRequest with typed contents, closed
loop c=1 and c=16, on each server's gRPC port): target >= 2x MLServer's gRPC throughput at equal or lower p99.
The run ends with the cost of the drift window (on by default): throughput with it on and off, target <= 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.datasets import feature_spec, write

from bench.serving.load import Result, closed_loop, grpc_closed_loop, open_loop
from modelfleet.devcluster.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELFLEET_CACHE_DIR", Path.home() / ".cache" / "modelfleet")) / "bench"
MLSERVER_VENV = CACHE / "mlserver-venv"
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0"]
MODELS = {
    "lr": ("sklearn.linear_model.LogisticRegression", {"max_iter": 1000}),
    "rf": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100, "random_state": 0}),
}
SCENARIOS = {
    "lr": [("closed", 1), ("closed", 16), ("closed", 64), ("open", 200), ("open", 500)],
    "rf": [("closed", 1), ("closed", 16), ("open", 50)],
}
ROW = [5.9, 3.0, 5.1, 1.8]
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}).encode()
GRPC_SCENARIOS = [1, 16]


def grpc_body() -> bytes:
    from modelfleet.server.grpc_v2 import open_inference_pb2 as pb

    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(ROW)
    return request.SerializeToString()


def ensure_mlserver() -> Path:
    python = MLSERVER_VENV / "bin" / "python"
    if not (MLSERVER_VENV / "bin" / "mlserver").exists():
        import sklearn

        print("installing MLServer into", MLSERVER_VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *MLSERVER_PINS, f"scikit-learn=={sklearn.__version__}"],
            check=True,
        )
    return python


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not become ready")


def run_scenarios(
    url: str, model: str, seconds: float, scenarios: list | None = None, grpc_target: str | None = None
) -> list[Result]:
    """REST scenarios, then (given the server's gRPC address) the gRPC ones."""

    async def go() -> list[Result]:
        await closed_loop(url, BODY, 4, 2.0)  # warm-up
        out = []
        for kind, value in scenarios or SCENARIOS[model]:
            if kind == "closed":
                out.append(await closed_loop(url, BODY, int(value), seconds))
            else:
                out.append(await open_loop(url, BODY, float(value), seconds))
        if grpc_target is not None:
            body = grpc_body()
            await grpc_closed_loop(grpc_target, body, 4, 2.0)  # warm-up
            for concurrency in GRPC_SCENARIOS:
                out.append(await grpc_closed_loop(grpc_target, body, concurrency, seconds))
        return out

    return asyncio.run(go())


def train_ours(work: Path, model: str) -> Path:
    data = write("iris", work / "iris.csv")
    estimator, hp = MODELS[model]
    spec = {
        "framework": "sklearn",
        "task": "classification",
        "dataset": {"uri": data.as_uri(), "target": "target", "features": feature_spec("iris")},
        "training": {"estimator": estimator, "hyperparameters": hp},
    }
    artifact = work / f"ours-{model}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "modelfleet.trainer",
            "--output-dir",
            str(artifact),
            "--termination-log",
            str(work / "msg"),
        ],
        env={**os.environ, "MODELFLEET_TRAINING_SPEC": json.dumps(spec)},
        check=True,
        capture_output=True,
    )
    return artifact


def ours(
    work: Path, model: str, seconds: float, extra: tuple[str, ...] = (), scenarios: list | None = None
) -> list[Result]:
    artifact = train_ours(work, model)
    # Micro-batching for the forest (its per-call cost dominates), as the product enables it for ensembles.
    batching = ["--max-batch-size", "32", "--max-batch-wait-ms", "0"] if model == "rf" else []
    p, g = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfleet.server",
            "--artifact",
            str(artifact),
            "--model-name",
            "iris",
            "--host",
            "127.0.0.1",
            "--port",
            str(p),
            "--grpc-port",
            str(g),
            *batching,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{p}/v2/health/ready", proc, "the ModelFleet server")
        target = f"127.0.0.1:{g}" if scenarios is None else None  # the drift-overhead runs are REST only
        return run_scenarios(f"http://127.0.0.1:{p}/v2/models/iris/infer", model, seconds, scenarios, target)
    finally:
        proc.terminate()
        proc.wait(30)


def drift_overhead(work: Path, seconds: float, rounds: int = 3) -> None:
    """Throughput of our server with the drift window on (the default) and off, alternating to share the noise."""
    on, off = [], []
    for _ in range(rounds):
        on += ours(work, "lr", seconds, (), [("closed", 16)])
        off += ours(work, "lr", seconds, ("--drift-statistics", ""), [("closed", 16)])
    best_on, best_off = max(r.rps for r in on), max(r.rps for r in off)
    print(f"\nDrift monitoring overhead (LR, closed loop c=16, best of {rounds} each)")
    print(
        f"drift on {best_on:.0f} req/s, off {best_off:.0f} req/s: overhead {1 - best_on / best_off:.1%} (target <= 5%)"
    )


def mlserver(work: Path, model: str, seconds: float, python: Path) -> list[Result]:
    estimator, hp = MODELS[model]
    repo = work / f"mlserver-{model}"
    (repo / "iris").mkdir(parents=True)
    module, _, cls = estimator.rpartition(".")
    subprocess.run(
        [
            str(python),
            "-c",
            (
                "import joblib, importlib; from sklearn.datasets import load_iris; X, y = load_iris(return_X_y=True); "
                f"m = getattr(importlib.import_module('{module}'), '{cls}')(**{hp!r}).fit(X, y); "
                f"joblib.dump(m, '{repo / 'iris' / 'model.joblib'}')"
            ),
        ],
        check=True,
    )
    http, grpc, metrics = free_port(), free_port(), free_port()
    (repo / "settings.json").write_text(
        json.dumps({"debug": False, "http_port": http, "grpc_port": grpc, "metrics_port": metrics, "host": "127.0.0.1"})
    )
    (repo / "iris" / "model-settings.json").write_text(
        json.dumps(
            {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}
        )
    )
    proc = subprocess.Popen(
        [str(python.parent / "mlserver"), "start", str(repo)],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{http}/v2/models/iris/ready", proc, "MLServer")
        return run_scenarios(f"http://127.0.0.1:{http}/v2/models/iris/infer", model, seconds, None, f"127.0.0.1:{grpc}")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per scenario")
    parser.add_argument("--models", default="lr,rf")
    parser.add_argument("--drift-overhead-only", action="store_true", help="only measure the drift window's cost")
    args = parser.parse_args()
    if args.drift_overhead_only:
        work = Path(tempfile.mkdtemp(prefix="modelfleet-serving-bench-"))
        try:
            drift_overhead(work, args.seconds)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    python = ensure_mlserver()
    work = Path(tempfile.mkdtemp(prefix="modelfleet-serving-bench-"))
    try:
        for model in args.models.split(","):
            a = ours(work, model, args.seconds)
            b = mlserver(work, model, args.seconds, python)
            print(f"\n{model.upper()} on Iris, one row per request ({args.seconds:g} s per scenario)")
            print(
                f"{'scenario':<14} {'ModelFleet req/s':>16} {'p50 ms':>7} {'p99 ms':>7} {'err':>5} | "
                f"{'MLServer req/s':>14} {'p50 ms':>7} {'p99 ms':>7} {'err':>5} | {'ratio':>5}"
            )
            for x, y in zip(a, b, strict=True):
                print(
                    f"{x.label:<14} {x.rps:>16.0f} {x.pct(50):>7.2f} {x.pct(99):>7.2f} {x.error_rate:>5.1%} | "
                    f"{y.rps:>14.0f} {y.pct(50):>7.2f} {y.pct(99):>7.2f} {y.error_rate:>5.1%} | "
                    f"{x.rps / y.rps if y.rps else float('inf'):>5.2f}"
                )
        drift_overhead(work, args.seconds)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
