"""Reconcile cost: what one MLModel asks of the API server, measured against the dev cluster's real kube-apiserver.

    .venv/bin/python -m bench.operator.run [--passes 40] [--policies 20]

The real operator trains and serves one model (as the e2e tests do) and is then stopped; the MLModel's reconcile pass
(`reconcile_mlmodel`, what the operator's timer runs every MODELFLEET_POLL_SECONDS) then runs in this process against
the same API server, on an API client that counts its HTTP requests. Printed: the requests of one steady-state pass
(serving, nothing to change), by verb and path, and the pass's time next to the floor measured in the same run: one
GET of the MLModel (a level-triggered pass cannot read its world in less than one round trip). `--policies`
DriftPolicies of other models share the namespace, as they would in a team's namespace. From the request count it
derives the API load of N models at the default poll interval. Prometheus reads (request activity, every
MODELFLEET_ACTIVITY_SECONDS) are left out: they do not touch the API server.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import secrets
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.datasets import write
from tests.e2e.conftest import claim
from tests.e2e.test_training import model_manifest
from tests.samples import sample
from tests.support import Kube, OperatorProcess, has_condition, wait_for

from modelfleet.api.v1alpha1 import MLModel
from modelfleet.clients.kube import Kube as OperatorKube
from modelfleet.clients.kube import api_client
from modelfleet.config import OperatorConfig
from modelfleet.devcluster import ClusterConfig, DevCluster, SetupError, default_state_dir
from modelfleet.devcluster.binaries import find_binaries
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.mlmodel import reconcile_mlmodel

ROOT = Path(__file__).resolve().parents[2]
MODEL = "bench-model"


def counting(api: Any) -> collections.Counter[str]:
    """Counts the HTTP requests the client sends, by verb, path and selectors."""
    calls: collections.Counter[str] = collections.Counter()
    send = api.call_api

    def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls[f"{method} /api{urllib.parse.unquote(url).split('/api', 1)[-1]}"] += 1
        return send(method, url, *args, **kwargs)

    api.call_api = call_api
    return calls


def other_policies(kube: Kube, namespace: str, count: int) -> None:
    """DriftPolicies of other models in the same namespace (the shipped sample, renamed): what a pass must skip."""
    for i in range(count):
        policy = sample("DriftPolicy")
        policy["metadata"] = {"name": f"other-{i}"}
        policy["spec"]["modelRef"] = {"name": f"other-{i}"}
        kube.apply(policy, namespace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=40)
    parser.add_argument("--policies", type=int, default=20)
    args = parser.parse_args()

    cluster = DevCluster(ClusterConfig(state_dir=default_state_dir()))
    try:
        cluster.up(progress=lambda m: print(f"  {m}", file=sys.stderr))
    except SetupError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    kube = Kube(cluster.kubeconfig, find_binaries() / "kubectl")
    kube.run("apply", "--server-side", "-f", str(ROOT / "crds"))
    kube.run("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=modelfleet")
    namespace = f"bench-reconcile-{secrets.token_hex(3)}"
    kube.run("create", "namespace", namespace)
    wait_for(lambda: kube.get("serviceaccount", "default", namespace), 60, "the default ServiceAccount")
    try:
        return measure(kube, cluster.kubeconfig, namespace, args)
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)
        print("the dev cluster keeps running; stop it with `.venv/bin/modelfleet dev-cluster down`", file=sys.stderr)


def measure(kube: Kube, kubeconfig: Path, namespace: str, args: argparse.Namespace) -> int:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    with tempfile.TemporaryDirectory() as tmp:
        op = OperatorProcess(kubeconfig, Path(tmp) / "operator.log", "--namespace", namespace).start()
        try:
            other_policies(kube, namespace, args.policies)
            kube.apply(model_manifest(MODEL), namespace)
            wait_for(
                lambda: (m := kube.get("mlm", MODEL, namespace)) and has_condition(m, "Ready") and m,
                300,
                "the model to be trained and served",
            )
        finally:
            op.stop()
    body = kube.get("mlm", MODEL, namespace)
    assert body is not None
    model = parse(MLModel, body)
    config = OperatorConfig.from_env()
    api = api_client(str(kubeconfig))
    calls = counting(api)
    operator_kube = OperatorKube(api)

    def one_pass() -> Any:
        now = datetime.datetime.now(datetime.UTC)
        return reconcile_mlmodel(model, body["metadata"].get("generation"), operator_kube, config, now, None)

    def one_get() -> Any:
        return operator_kube.get_custom(namespace, "mlmodels", MODEL)

    one_pass(), one_get()  # connections open, caches warm
    calls.clear()
    outcome = one_pass()
    per_pass = dict(calls)
    writes = {k: v for k, v in per_pass.items() if not k.startswith("GET ")}
    pass_times, get_times = [], []
    for _ in range(args.passes):  # alternately, so drift in the machine's speed hits both
        started = time.perf_counter()
        one_pass()
        pass_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        one_get()
        get_times.append(time.perf_counter() - started)
    pass_ms, get_ms = statistics.median(pass_times) * 1000, statistics.median(get_times) * 1000
    requests = sum(per_pass.values())

    print(f"## One steady-state MLModel pass (phase {outcome.status.phase}), {args.policies} other DriftPolicies in")
    print(f"## the namespace; median of {args.passes} passes")
    for call, count in sorted(per_pass.items()):
        print(f"  {count} x {call}")
    print(f"requests per pass: {requests}, of them writes: {sum(writes.values())}")
    print(
        f"pass: {pass_ms:.1f} ms; floor (one GET of the MLModel): {get_ms:.1f} ms -> {pass_ms / get_ms:.1f}x the floor"
    )
    poll = config.poll_seconds
    for models in (10, 100, 1000):
        print(f"  {models:>5} models at the {poll:g} s poll: {models * requests / poll:,.0f} API requests/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
