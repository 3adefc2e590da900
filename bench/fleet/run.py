"""A fleet on one operator, measured on a dev cluster of its own (a fresh state directory; real kube-apiserver, etcd,
controller-manager, scheduler and KWOK):

    .venv/bin/python -m bench.fleet.run [--models 1000 [--models 5000 ...]] [--api-qps 50] [--workers 8]

For each size N: one model trains for real (the local executor runs the trainer), N-1 more with the same training
inputs are cache hits; every model serves one replica on KWOK nodes the benchmark adds; every tenth model has a
DriftPolicy. Measured in one run, printed as a table:

- time until all N are Ready, next to the **write floor**: a direct client (as many threads as the operator has
  workers, no rate limit) creating and status-patching the same objects the operator creates (model, TrainingJob
  and its status, Deployment, Service, two model status patches, four Events), in another namespace, until those
  Deployments are available (one replica each on KWOK nodes, as the operator's);
- the operator's peak and idle RSS, and its CPU while idle (the idle window is one resync period, 660 s, so every
  model's slow resync and every policy's evaluation falls in it), and the passes run and not run in it;
- idle API requests/s, from the API server's own `apiserver_request_total` (watches excluded), minus the same window
  before the operator started, and the operator's own request counter;
- spec change -> child updated: p50/p99 over 50 random models (a serving memory request, which changes the
  Deployment's template);
- a restart with nothing changed: writes, and seconds until the first pass;
- deleting all N models with the operator stopped: seconds until they are gone.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from tests.datasets import write
from tests.e2e.conftest import claim
from tests.e2e.test_event_driven import ON_KWOK
from tests.e2e.test_first_model import shortest_model
from tests.support import Kube, OperatorProcess, has_condition, samples, wait_for

from bench.cluster import bench_cluster
from modelfleet.api.v1alpha1 import GROUP, VERSION
from modelfleet.builders.serving import DESIRED_HASH
from modelfleet.clients.kube import api_client
from modelfleet.devcluster.cluster import desired_gpu_node

PODS_PER_NODE = 100
BASELINE_WINDOW = 30.0
# The idle columns cover one resync period of the operator (600 s, jittered by up to 10 %) and two DriftPolicy
# intervals: the first idle minute after a fleet is built holds none of them and understates the steady state.
IDLE_WINDOW = 660.0


def apiserver_requests(kube: Kube) -> dict[str, float]:
    """Requests the API server has served, by "VERB resource" (every client; watches and non-resource paths
    excluded)."""
    text = kube.run("get", "--raw", "/metrics").stdout
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        fields = dict(kv.split("=", 1) for kv in labels.split(",") if "=" in kv)
        verb, resource = fields.get("verb", "").strip('"'), fields.get("resource", "").strip('"')
        if verb == "WATCH" or not resource:
            continue
        key = f"{verb} {resource}"
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {k: (after.get(k, 0.0) - before.get(k, 0.0)) / seconds for k in after if after.get(k) != before.get(k)}


def proc_stat(pid: int) -> tuple[float, float, float]:
    """(CPU seconds, RSS MiB, peak RSS MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = float(fields[11]) + float(fields[12])
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss = float(status["VmRSS"].split()[0]) / 1024
    peak = float(status["VmHWM"].split()[0]) / 1024
    return ticks / 100.0, rss, peak


def parallel(fn: Callable[[int], Any], n: int, threads: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(fn, i) for i in range(n)]:
            f.result()


def model(name: str) -> dict[str, Any]:
    doc = shortest_model(name)
    doc["spec"]["serving"] = json.loads(json.dumps(ON_KWOK))
    return doc


def policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DriftPolicy",
        "metadata": {"name": f"{name}-drift"},
        "spec": {
            "modelRef": {"name": name},
            "interval": "5m",
            "checks": [{"name": "psi", "statistic": "psi", "threshold": 0.2}],
            "action": "Alert",
        },
    }


class Counter:
    """How many objects of a list call pass a test, kept from one watch stream (relisted when it expires). Polling
    with lists instead cost the API server a full serialisation of the fleet every few seconds (about 20 MB at
    5,000 models), which competed with the operator being measured."""

    def __init__(
        self, api: client.ApiClient, list_call: Callable[..., Any], *args: Any, test: Callable[[dict[str, Any]], bool]
    ) -> None:
        self.api, self.list_call, self.args, self.test = api, list_call, args, test
        self.passing: set[str] = set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> Counter:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()

    def count(self) -> int:
        return len(self.passing)

    def _follow(self) -> None:
        while not self.stopped.is_set():
            try:
                for event in watch.Watch().stream(
                    self.list_call, *self.args, timeout_seconds=300, _request_timeout=330
                ):
                    if self.stopped.is_set():
                        return
                    obj = self.api.sanitize_for_serialization(event["object"])  # typed (apps/v1) or a dict
                    name = obj["metadata"]["name"]
                    if event["type"] != "DELETED" and self.test(obj):
                        self.passing.add(name)
                    else:
                        self.passing.discard(name)
            except Exception as e:  # an expired or broken stream: list again
                print(f"bench: watch restarted ({e})", file=sys.stderr, flush=True)
                time.sleep(1)


def is_ready(obj: dict[str, Any]) -> bool:
    return has_condition(obj, "Ready")


def is_available(obj: dict[str, Any]) -> bool:
    return ((obj.get("status") or {}).get("availableReplicas") or 0) >= 1


def settle(op: OperatorProcess, quiet: float = 10.0, limit: float = 600.0) -> None:
    """Until the operator has written nothing for `quiet` seconds. Not "no pass": at 5,000 models the resyncs and
    the failed DriftPolicy evaluations (no Prometheus here) never leave a 5 s gap, and the first 5,000 run waited
    here for an hour."""
    last, since, started = writes(op), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - started < limit:
        time.sleep(0.5)
        now = writes(op)
        if now != last:
            last, since = now, time.monotonic()


def passes(op: OperatorProcess) -> tuple[float, float]:
    """Passes run, and passes not run as their inputs were unchanged (every kind)."""
    total = op.counter("modelfleet_reconcile_total")
    unchanged = op.counter("modelfleet_reconcile_total", result="unchanged")
    return total - unchanged, unchanged


WRITE_VERBS = ("POST", "PATCH", "PUT", "DELETE")


def writes(op: OperatorProcess) -> float:
    return sum(op.counter("modelfleet_api_requests_total", verb=v) for v in WRITE_VERBS)


def writes_by_request(op: OperatorProcess) -> str:
    """The operator's writes as "verb resource count" (what a restart with nothing changed still wrote)."""
    counts: dict[str, float] = {}
    for labels, value in samples(op.metrics() or "", "modelfleet_api_requests_total"):
        if labels.get("verb") in WRITE_VERBS and value:
            request = f"{labels['verb']} {labels.get('resource', '')}"
            counts[request] = counts.get(request, 0) + value
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(counts.items())) or "none"


def write_floor(
    api: client.ApiClient, namespace: str, n: int, threads: int, apps: client.AppsV1Api, timeout: float
) -> float:
    """Seconds a direct client takes for the writes the operator makes for n served models, until their
    Deployments are available (one replica each on the KWOK nodes, as the operator's)."""
    custom, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)

    def one(i: int) -> None:
        name = f"f{i:05d}"
        doc = model(name)
        made = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "mlmodels", doc)
        owner = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "MLModel", "name": name, "uid": made["metadata"]["uid"]}]
        tj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TrainingJob",
            "metadata": {"name": f"{name}-v1", "ownerReferences": owner},
            "spec": {**doc["spec"], "modelRef": {"name": name}},
        }
        tj["spec"].pop("serving", None)
        tj["spec"]["training"] = {"estimator": "sklearn.ensemble.RandomForestClassifier"}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs", tj)
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "trainingjobs", f"{name}-v1", {"status": {"phase": "Succeeded"}}
        )
        labels = {"app": name}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": owner},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {"name": "s", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}
                        ],
                        "nodeSelector": ON_KWOK["nodeSelector"],
                        "tolerations": ON_KWOK["tolerations"],
                    },
                },
            },
        }
        apps.patch_namespaced_deployment(
            name, namespace, deployment, field_manager="floor", _content_type="application/apply-patch+yaml"
        )
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": owner},
            "spec": {"selector": labels, "ports": [{"port": 8080}]},
        }
        core.patch_namespaced_service(
            name, namespace, service, field_manager="floor", _content_type="application/apply-patch+yaml"
        )
        for phase in ("Training", "Serving"):
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "mlmodels", name, {"status": {"phase": phase}}
            )
        for reason in ("TrainingRequested", "CacheHit", "VersionTrained", "Serving"):
            core.create_namespaced_event(
                namespace,
                {
                    "metadata": {"generateName": f"{name}."},
                    "involvedObject": {"kind": "MLModel", "name": name, "namespace": namespace},
                    "reason": reason,
                    "message": reason,
                    "type": "Normal",
                },
            )

    with Counter(api, apps.list_namespaced_deployment, namespace, test=is_available) as available:
        started = time.monotonic()
        parallel(one, n, threads)
        while time.monotonic() - started < timeout:
            if available.count() >= n:
                return time.monotonic() - started
            time.sleep(1)
    raise SystemExit(f"bench: the floor's Deployments did not become available in {timeout:.0f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def measure(kube: Kube, kubeconfig: Path, n: int, args: argparse.Namespace, tmp: Path, seed: int) -> dict[str, Any]:
    api = api_client(str(kubeconfig))
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    namespace, floor_ns = f"fleet-{n}", f"floor-{n}"
    for ns in (namespace, floor_ns):
        kube.run("create", "namespace", ns)
        wait_for(lambda ns=ns: kube.get("serviceaccount", "default", ns), 60, "the default ServiceAccount")
    data = claim(kube, namespace, "datasets")
    write("breast_cancer", data / "breast_cancer.csv")
    row: dict[str, Any] = {"models": n}

    before = apiserver_requests(kube)
    time.sleep(BASELINE_WINDOW)
    baseline = sum(rates(before, apiserver_requests(kube), BASELINE_WINDOW).values())

    extra = [f"--namespace={namespace}", f"--workers={args.workers}"]
    if args.api_qps:
        extra += [f"--api-qps={args.api_qps}", f"--api-burst={int(args.api_qps * 2)}"]
    op = OperatorProcess(kubeconfig, tmp / f"operator-{n}.log", *extra).start()
    assert op.proc is not None
    try:
        # The one real training first, so the other N-1 find its result (as a fleet of retrains would).
        kube.apply(model("m00000"), namespace)
        wait_for(
            lambda: (m := kube.get("mlm", "m00000", namespace)) and has_condition(m, "Trained"), 600, "the training"
        )
        started = time.monotonic()

        def create(i: int) -> None:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "mlmodels", model(f"m{i:05d}"))
            if i % 10 == 0:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "driftpolicies", policy(f"m{i:05d}"))

        with Counter(
            api, custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "mlmodels", test=is_ready
        ) as ready:
            parallel(lambda i: create(i + 1), n - 1, 8)
            said = started
            while ready.count() < n:
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"bench: only {ready.count()}/{n} Ready after {args.timeout}s")
                if time.monotonic() - said >= 60:  # progress, for runs that take an hour
                    said = time.monotonic()
                    print(f"bench: {ready.count()}/{n} Ready after {said - started:.0f}s", file=sys.stderr, flush=True)
                time.sleep(1)
        row["ready_s"] = time.monotonic() - started
        _, _, peak = proc_stat(op.proc.pid)
        row["floor_s"] = (
            float("nan") if args.skip_floor else write_floor(api, floor_ns, n - 1, args.workers, apps, args.timeout)
        )
        settle(op)

        cpu0, _, _ = proc_stat(op.proc.pid)
        api0, own0 = apiserver_requests(kube), op.counter("modelfleet_api_requests_total")
        ran0, skipped0 = passes(op)
        time.sleep(args.idle_seconds)
        cpu1, rss, peak = proc_stat(op.proc.pid)
        api1, own1 = apiserver_requests(kube), op.counter("modelfleet_api_requests_total")
        ran1, skipped1 = passes(op)
        idle = rates(api0, api1, args.idle_seconds)
        row.update(
            peak_rss=peak,
            idle_rss=rss,
            idle_cpu=100 * (cpu1 - cpu0) / args.idle_seconds,
            idle_api=sum(idle.values()) - baseline,
            idle_own=(own1 - own0) / args.idle_seconds,
            idle_ran=(ran1 - ran0) / args.idle_seconds,
            idle_unchanged=(skipped1 - skipped0) / args.idle_seconds,
            idle_top=", ".join(f"{k} {v:.1f}/s" for k, v in sorted(idle.items(), key=lambda kv: -kv[1])[:4]),
        )

        rng = random.Random(seed)
        latencies = []
        for i, name in enumerate(rng.sample([f"m{i:05d}" for i in range(n)], min(50, n))):
            old = apps.read_namespaced_deployment(name, namespace).metadata.annotations.get(DESIRED_HASH)
            body = {"spec": {"serving": {"resources": {"memory": f"{129 + i}Mi"}}}}
            t0 = time.monotonic()
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "mlmodels", name, body)
            while apps.read_namespaced_deployment(name, namespace).metadata.annotations.get(DESIRED_HASH) == old:
                if time.monotonic() - t0 > 60:
                    raise SystemExit(f"bench: the Deployment of {name} never changed")
                time.sleep(0.02)
            latencies.append(time.monotonic() - t0)
        row["change_p50"], row["change_p99"] = statistics.median(latencies), percentile(latencies, 0.99)
        settle(op)
    finally:
        op.stop()

    again = OperatorProcess(kubeconfig, tmp / f"operator-{n}-restart.log", *extra)
    t0 = time.monotonic()
    again.start()
    try:
        wait_for(lambda: again.counter("modelfleet_reconcile_total") > 0, 300, "the first pass after the restart")
        row["restart_first_s"] = time.monotonic() - t0
        settle(again)
        row["restart_writes"], row["restart_what"] = writes(again), writes_by_request(again)
        assert again.proc is not None
        _, _, row["restart_peak_rss"] = proc_stat(again.proc.pid)  # every object listed at once: the start's peak
    finally:
        again.stop()

    t0 = time.monotonic()
    kube.run("delete", "mlm", "--all", "-n", namespace, "--wait=false")
    wait_for(lambda: not custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "mlmodels")["items"], 600, "")
    row["delete_s"] = time.monotonic() - t0
    for ns in (namespace, floor_ns):
        kube.run("delete", "namespace", ns, "--wait=false", check=False)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, action="append", help="fleet sizes (repeatable; default 1000)")
    parser.add_argument("--api-qps", type=float, default=0, help="the operator's --api-qps (default: its own)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--idle-seconds", type=float, default=IDLE_WINDOW, help="the idle window (default: one resync period, 660)"
    )
    parser.add_argument(
        "--skip-floor", action="store_true", help="no write floor (it takes as long as the fleet itself on two cores)"
    )
    args = parser.parse_args()
    sizes = args.models or [1000]
    print(
        "| models | Ready (s) | write floor (s) | ratio | peak / idle RSS (MiB) | idle CPU | idle API req/s "
        "(operator's own) | change p50 / p99 (s) | restart: writes, first pass (s), peak RSS (MiB) "
        "| delete, operator down (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    with bench_cluster("bench-fleet-") as (kube, tmp):
        nodes = math.ceil(2 * max(sizes) / PODS_PER_NODE) + 1  # the operator's serving pods and the floor's
        for i in range(2, nodes + 2):
            node = json.dumps(desired_gpu_node(i, 0))  # server-side: a Node's status is kept on create
            kube.run("apply", "--server-side", "--force-conflicts", "-f", "-", input=node)
        for n in sizes:
            r = measure(kube, kube.kubeconfig, n, args, tmp, args.seed)
            rows.append(r)
            print(
                f"| {r['models']:,} | {r['ready_s']:.0f} | {r['floor_s']:.0f} | {r['ready_s'] / r['floor_s']:.2f}x "
                f"| {r['peak_rss']:.0f} / {r['idle_rss']:.0f} | {r['idle_cpu']:.1f} % | {r['idle_api']:.2f} "
                f"({r['idle_own']:.2f}) | {r['change_p50']:.2f} / {r['change_p99']:.2f} "
                f"| {r['restart_writes']:.0f}, {r['restart_first_s']:.1f}, {r['restart_peak_rss']:.0f} "
                f"| {r['delete_s']:.1f} |",
                flush=True,
            )
            # The next size starts on a cluster that has finished deleting this one (its garbage collection
            # would otherwise load the API server while the next fleet is built).
            gone = (f"namespace/fleet-{n}", f"namespace/floor-{n}")
            wait_for(
                lambda gone=gone: not set(gone) & set(kube.run("get", "namespace", "-o", "name").stdout.split()),
                1200,
                "the deletion of the namespaces",
            )
    for r in rows:
        print(f"idle API requests at {r['models']:,} models, busiest: {r['idle_top']}")
        print(f"writes of the restart at {r['models']:,} models: {r['restart_what']}")
        print(
            f"idle passes at {r['models']:,} models: {r['idle_ran']:.2f}/s run, "
            f"{r['idle_unchanged']:.2f}/s not run (inputs unchanged)"
        )
        print(
            f"idle cost per model at {r['models']:,}: {r['idle_api'] / r['models'] * 1000:.3f} req/s and "
            f"{r['idle_cpu'] / r['models'] * 1000:.3f} % of a core per 1,000 models"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
