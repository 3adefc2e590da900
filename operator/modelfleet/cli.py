"""The `modelfleet` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _dev_cluster(args: argparse.Namespace) -> int:
    from modelfleet.devcluster import ClusterConfig, DevCluster, SetupError, default_state_dir

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    cluster = DevCluster(
        ClusterConfig(
            state_dir=state_dir,
            gpu_nodes=args.gpu_nodes,
            gpus_per_node=args.gpus_per_node,
            executor_gpus=args.executor_gpus,
        )
    )

    def say(msg: str) -> None:
        print(f"dev-cluster: {msg}", file=sys.stderr, flush=True)

    try:
        if args.action == "up":
            cluster.up(progress=say)
            print(cluster.kubeconfig)
        elif args.action == "down":
            cluster.down(purge=args.purge, progress=say)
        elif args.action == "status":
            st = cluster.status()
            print(json.dumps(st, indent=2))
            return 0 if cluster.healthy() else 1
        elif args.action == "kubeconfig":
            if not cluster.kubeconfig.exists():
                say("no dev cluster here; run `modelfleet dev-cluster up` first")
                return 1
            print(cluster.kubeconfig)
    except SetupError as e:
        say(f"ERROR: {e}")
        return 1
    return 0


def _operator(args: argparse.Namespace) -> int:
    from modelfleet.operator_main import run

    return run(
        namespaces=tuple(args.namespace or ()),
        overrides={
            k: v
            for k, v in (("api_qps", args.api_qps), ("api_burst", args.api_burst), ("workers", args.workers))
            if v is not None
        },
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        json_logs=args.log_format == "json",
        verbose=args.verbose,
    )


def _status(args: argparse.Namespace) -> int:
    from modelfleet.report import list_models, table

    print(table(list_models(args.namespace)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelfleet", description="ModelFleet: ML models from YAML on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    dc = sub.add_parser(
        "dev-cluster", help="a local control plane (no Docker) with simulated GPU nodes and an executor"
    )
    dc.add_argument("action", choices=["up", "down", "status", "kubeconfig"])
    dc.add_argument(
        "--state-dir",
        help="where state, logs and the kubeconfig live (default: "
        "$MODELFLEET_STATE_DIR or ~/.cache/modelfleet/dev-cluster)",
    )
    dc.add_argument("--gpu-nodes", type=int, default=2, help="simulated GPU nodes managed by KWOK")
    dc.add_argument("--gpus-per-node", type=int, default=4)
    dc.add_argument(
        "--executor-gpus",
        type=int,
        default=0,
        help="GPUs the local executor advertises (work still runs on the CPU); off by default",
    )
    dc.add_argument("--purge", action="store_true", help="with down: also remove etcd data, certificates and logs")
    dc.set_defaults(func=_dev_cluster)

    op = sub.add_parser("operator", help="run the operator")
    op.add_argument("action", choices=["run"])
    op.add_argument("--namespace", action="append", help="watch only this namespace (repeatable; default: all)")
    op.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: off)")
    op.add_argument("--health-port", type=int, default=8081, help="liveness endpoint port, /healthz (0: off)")
    op.add_argument(
        "--api-qps",
        type=float,
        help="Kubernetes API requests per second after the burst (default: $MODELFLEET_API_QPS, 100)",
    )
    op.add_argument("--api-burst", type=int, help="requests allowed at once (default: $MODELFLEET_API_BURST, 200)")
    op.add_argument("--workers", type=int, help="reconcile passes run at once (default: $MODELFLEET_WORKERS, 8)")
    op.add_argument("--log-format", choices=["plain", "json"], default="plain")
    op.add_argument("--verbose", action="store_true")
    op.set_defaults(func=_operator)

    st = sub.add_parser("status", help="one line per MLModel: owner, phase, versions, metrics, drift, GPU-hours")
    st.add_argument("-n", "--namespace", help="only this namespace (default: all; uses $KUBECONFIG)")
    st.set_defaults(func=_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
