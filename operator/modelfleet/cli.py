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
        elif args.action == "s3":
            for key, value in cluster.object_store(args.namespace).items():
                print(f"{key}={value}")
            say("the operator also needs the Secret's AWS_* keys for presence checks: see docs/object-storage.md")
        elif args.action == "karpenter":
            cluster.karpenter(progress=say)
            say("Karpenter runs; create a KWOKNodeClass and a NodePool (docs/karpenter.md)")
        elif args.action == "kueue":
            cluster.kueue(progress=say)
            say("Kueue runs; create a ResourceFlavor, a ClusterQueue and a LocalQueue (docs/kueue.md)")
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


def _current_namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    from kubernetes import config

    try:
        return str(config.list_kube_config_contexts()[1]["context"].get("namespace") or "default")
    except (config.ConfigException, KeyError, TypeError):
        return "default"


def _lineage(args: argparse.Namespace) -> int:
    from modelfleet.audit import dataset_selector, fetch_records, lineage, lineage_table

    path, value = dataset_selector(args.dataset)
    entries = lineage(fetch_records(args.namespace, fields={path: value}))
    print(json.dumps(entries, indent=2) if args.output == "json" else lineage_table(entries))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from modelfleet.audit import audit_table, audit_trail, model_records

    namespace = _current_namespace(args)
    records = model_records(namespace, args.model)
    if not records:
        print(f"modelfleet: no ModelVersion records of {namespace}/{args.model}", file=sys.stderr)
        return 1
    trail = audit_trail(records)
    print(json.dumps(trail, indent=2) if args.output == "json" else audit_table(trail))
    return 0


def _card(args: argparse.Namespace) -> int:
    from modelfleet.audit import model_records, pick_record
    from modelfleet.card import card_from_record, render_markdown

    namespace = _current_namespace(args)
    record = pick_record(model_records(namespace, args.model), args.version)
    if record is None:
        which = f" v{args.version}" if args.version else ""
        print(f"modelfleet: no ModelVersion record of {namespace}/{args.model}{which}", file=sys.stderr)
        return 1
    card = card_from_record(record)
    print(
        json.dumps(card, indent=2) if args.output == "json" else render_markdown(card),
        end="\n" if args.output == "json" else "",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelfleet", description="ModelFleet: ML models from YAML on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    dc = sub.add_parser(
        "dev-cluster", help="a local control plane (no Docker) with simulated GPU nodes and an executor"
    )
    dc.add_argument(
        "action",
        choices=["up", "down", "status", "kubeconfig", "s3", "kueue", "karpenter"],
        help="s3: start the dev S3 server (versitygw) on demand, put its credentials Secret in each --namespace and "
        "print the operator settings that make its bucket the default artifact store; kueue, karpenter: start Kueue, "
        "or Karpenter with its KWOK provider (each built from its Go module), on demand",
    )
    dc.add_argument("--namespace", action="append", default=[], help="with s3: where the credentials Secret goes")
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

    li = sub.add_parser("lineage", help="every version trained on a dataset, and whether it serves")
    li.add_argument("--dataset", required=True, help="the dataset's sha256 digest (sha256:<hex> or <hex>) or its URI")
    li.add_argument("-n", "--namespace", help="only this namespace (default: all the records you may list)")
    li.add_argument("-o", "--output", choices=["table", "json"], default="table")
    li.set_defaults(func=_lineage)

    au = sub.add_parser("audit", help="a model's history: trained, approved by, served, rolled back, deleted")
    au.add_argument("model", help="the MLModel's name")
    au.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's)")
    au.add_argument("-o", "--output", choices=["table", "json"], default="table")
    au.set_defaults(func=_audit)

    ca = sub.add_parser("card", help="a version's model card (Markdown, or JSON)")
    ca.add_argument("model", help="the MLModel's name")
    ca.add_argument("--version", type=int, help="the version (default: the one serving, else the newest)")
    ca.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's)")
    ca.add_argument("-o", "--output", choices=["markdown", "json"], default="markdown")
    ca.set_defaults(func=_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
