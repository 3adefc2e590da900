"""A soak: a small fleet kept busy for a long time on a dev cluster of its own (real kube-apiserver, etcd,
controller-manager, scheduler, the local executor running the trainer and the model servers, a real Prometheus):

    .venv/bin/python -m bench.soak.run [--minutes 30] [--models 4] [--flip-minutes 5]

Every model trains for real, serves, takes steady traffic (50 rows per model every 2 s) and has a DriftPolicy that
retrains on drift (3 minute cooldown, 4 retrains a week). Every `--flip-minutes` the world flips: the dataset and the
traffic move between the training distribution and one with `mean_radius` shifted, so drift is detected, retrained on
the data as it is now, and the new version served; once a model's budget is spent, its drift is only reported.

Printed at the end, as a table:
- the operator's RSS: mean in the first and the last quarter, and the least-squares slope in MiB/hour and in % of its
  mean per hour (after a warm-up of one flip period); the same for each model server process that lived through at
  least half of the run (a model without a DriftPolicy, `soak-steady`, keeps one server for the whole run);
- Events: how many, by reason, and any "storm": the same reason and message on one object more often than the world
  flipped, plus one (each decision can come once per flip; posted per pass, it would come every 5 s evaluation);
- the log scan: Python tracebacks in the operator's log (there must be none);
- traffic: requests, and answers that were 5xx or no answer (a rollout in progress may refuse a connection; a 5xx
  is a bug).

It exits 1 when the log has a traceback, an Event storm was seen, or a server answered 5xx. Not run in CI (30 minutes
is the point); its last figures are in the README's fault table.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

from tests.chaos.test_operator_killed import drift_policy
from tests.datasets import write
from tests.e2e.conftest import claim
from tests.e2e.test_serving import infer
from tests.e2e.test_training import model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, OperatorProcess, has_condition, wait_for

from bench.cluster import bench_cluster
from modelfleet.clients.kube import Kube as KubeClient
from modelfleet.devcluster.prometheus import PrometheusServer, pod_scrape_job

NAMESPACE = "soak"
BATCH = 50
TRAFFIC_EVERY = 2.0
SAMPLE_EVERY = 15.0
SHIFT = {"mean_radius": 3.0}


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def server_pids() -> dict[int, str]:
    """The model server processes the executor runs, by pid: {pid: model name}."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"modelfleet.server" in args:
            words = [a.decode(errors="replace") for a in args]
            name = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--model-name"), "?")
            found[int(proc.name)] = name
    return found


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per hour."""
    if len(samples) < 3:
        return float("nan")
    ts, ys = [t for t, _ in samples], [y for _, y in samples]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 3600 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else float("nan")


def rss_summary(samples: list[tuple[float, float]], warm_up: float) -> dict[str, float]:
    steady = [(t, y) for t, y in samples if t >= warm_up] or samples
    quarter = max(1, len(steady) // 4)
    mean = statistics.fmean(y for _, y in steady)
    slope = slope_per_hour(steady)
    return {
        "first": statistics.fmean(y for _, y in steady[:quarter]),
        "last": statistics.fmean(y for _, y in steady[-quarter:]),
        "slope": slope,
        "slope_pct": 100 * slope / mean if mean else float("nan"),
    }


def serving_ip(kube: Kube, name: str) -> str | None:
    m = kube.get("mlm", name, NAMESPACE) or {}
    number = ((m.get("status") or {}).get("servingVersion") or {}).get("number")
    if number is None:
        return None
    for pod in kube.items("pods", NAMESPACE, selector=f"modelfleet.io/model={name},modelfleet.io/version={number}"):
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
        if ready and pod["status"].get("podIP"):
            return str(pod["status"]["podIP"])
    return None


def storms(events: list[dict[str, Any]], bound: int) -> tuple[collections.Counter[str], list[str]]:
    """Events by reason, and each (object, reason, message) of ours posted more than `bound` times."""
    by_reason: collections.Counter[str] = collections.Counter()
    repeats: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for e in events:
        n = (e.get("series") or {}).get("count") or e.get("count") or 1
        by_reason[e.get("reason", "?")] += n
        obj = e.get("involvedObject") or {}
        if e.get("reportingComponent") == KubeClient.FIELD_MANAGER:
            repeats[(f"{obj.get('kind')}/{obj.get('name')}", e.get("reason", "?"), e.get("message", ""))] += n
    return by_reason, [f"{o} {r} x{n}: {m[:100]}" for (o, r, m), n in repeats.items() if n > bound]


def soak(kube: Kube, kubeconfig: Path, args: argparse.Namespace, tmp: Path) -> int:
    kube.run("create", "namespace", NAMESPACE)
    data = claim(kube, NAMESPACE, "datasets")
    claim(kube, NAMESPACE, "model-store")
    dataset = data / "breast_cancer.csv"
    write("breast_cancer", dataset)
    traffic = {False: rows("breast_cancer", dataset, 569)}
    prom = PrometheusServer(tmp / "prometheus", [pod_scrape_job(kubeconfig, interval="2s")]).start()
    operator = OperatorProcess(kubeconfig, tmp / "operator.log", "--namespace", NAMESPACE).start()
    assert operator.proc is not None
    names = [f"soak-{i}" for i in range(args.models)]
    steady = "soak-steady"  # no DriftPolicy: one server that lives through the whole run, for its RSS
    requests = errors = server_errors = 0
    op_rss: list[tuple[float, float]] = []
    cached: list[float] = []  # objects in the operator's cache at each sample
    server_rss: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    server_model: dict[int, str] = {}
    try:
        kube.apply([model_manifest(n) for n in [*names, steady]], NAMESPACE)
        wait_for(
            lambda: all(has_condition(kube.get("mlm", n, NAMESPACE), "Ready") for n in [*names, steady]), 600, "Ready"
        )
        quick = {"interval": "5s", "trigger": {"for": "15s"}, "cooldown": "3m", "budget": {"maxRetrainsPerWeek": 4}}
        kube.apply([drift_policy(n, prom.url, **quick) for n in names], NAMESPACE)
        began = time.monotonic()
        end = began + args.minutes * 60
        shifted, next_flip, next_sample, offset = False, began + args.flip_minutes * 60, began, 0
        ips: dict[str, str | None] = {}
        print(f"soak: {args.models} models Ready; {args.minutes} minutes from now", file=sys.stderr)
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_flip:
                shifted = not shifted
                write("breast_cancer", dataset, shift=SHIFT if shifted else None)
                traffic.setdefault(shifted, rows("breast_cancer", dataset, 569))
                next_flip += args.flip_minutes * 60
                print(f"soak: {(now - began) / 60:.1f} min: the world flips (shifted={shifted})", file=sys.stderr)
            if now >= next_sample:
                op_rss.append((now - began, rss_mib(operator.proc.pid) or float("nan")))
                cached.append(operator.counter("modelfleet_cache_objects"))
                for pid, model in server_pids().items():
                    server_model[pid] = model
                    if (mib := rss_mib(pid)) is not None:
                        server_rss[pid].append((now - began, mib))
                next_sample += SAMPLE_EVERY
                ips = {}  # a new version may serve now
            cols = traffic[shifted]
            offset = (offset + BATCH) % (569 - BATCH)
            for name in [*names, steady]:
                ip = ips.get(name) or serving_ip(kube, name)
                ips[name] = ip
                if ip is None:
                    continue
                requests += 1
                try:
                    infer(ip, name, v2_inputs({k: v[offset : offset + BATCH] for k, v in cols.items()}))
                except urllib.error.HTTPError as e:
                    errors += 1
                    server_errors += e.code >= 500
                except OSError:
                    errors += 1
                    ips[name] = None
            time.sleep(max(0.0, TRAFFIC_EVERY - (time.monotonic() - now)))
        assert operator.proc.poll() is None, "the operator exited during the soak"
        events = json.loads(kube.run("get", "events", "-n", NAMESPACE, "-o", "json").stdout)["items"]
        tjs = kube.items("trainingjobs", NAMESPACE)
    finally:
        operator.stop()
        prom.stop()
    warm_up = args.flip_minutes * 60
    tracebacks = operator.log.read_text(errors="replace").count("Traceback (most recent call last)")
    # Each model meets at most one new world per flip, so each decision (drift, retrain, a new version with no
    # data yet) can come once per flip; an Event posted per pass instead would come once per 5 s evaluation.
    bound = int(args.minutes // args.flip_minutes) + 1
    by_reason, repeated = storms(events, bound)
    drift_runs = sum(1 for t in tjs if t["spec"].get("reason") == "drift")
    op = rss_summary(op_rss, warm_up)
    print(f"\n## Soak: {args.models} models, {args.minutes} min, the world flipping every {args.flip_minutes} min\n")
    print("| process | RSS first / last quarter (MiB) | slope (MiB/h) | slope (% of mean per hour) |")
    print("|---|---|---|---|")
    print(f"| operator | {op['first']:.1f} / {op['last']:.1f} | {op['slope']:+.2f} | {op['slope_pct']:+.2f} |")
    for pid, samples in sorted(server_rss.items()):
        if samples[-1][0] - samples[0][0] < args.minutes * 30:
            continue
        s = rss_summary(samples, warm_up)
        line = f"{s['first']:.1f} / {s['last']:.1f} | {s['slope']:+.2f} | {s['slope_pct']:+.2f} |"
        print(f"| model server of {server_model.get(pid, '?')} (pid {pid}, {len(samples)} samples) | {line}")
    if cached:
        print(f"\nthe operator's cache held {cached[0]:.0f} objects at the start and {cached[-1]:.0f} at the end")
    print(
        f"training runs: {len(tjs)} ({drift_runs} for drift); inference requests {requests}, "
        f"failed {errors} (5xx: {server_errors})"
    )
    print(f"Events: {sum(by_reason.values())} ({', '.join(f'{r} {n}' for r, n in by_reason.most_common())})")
    print(f"Event storms (the same reason and message on one object more than {bound} times): {len(repeated)}")
    for line in repeated[:10]:
        print(f"  {line}")
    print(f"tracebacks in the operator's log: {tracebacks}")
    return 1 if tracebacks or repeated or server_errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--flip-minutes", type=float, default=5)
    args = parser.parse_args()
    with bench_cluster("bench-soak-") as (kube, tmp):
        return soak(kube, kube.kubeconfig, args, tmp)


if __name__ == "__main__":
    sys.exit(main())
