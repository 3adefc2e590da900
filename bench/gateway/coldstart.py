"""Cold starts through the gateway, on a dev cluster of its own: one model (the real trainer, the real model server
on the executor node) with minReplicas 0 and a short idleAfter; each round waits until it is at zero, then sends a
burst of concurrent requests to the gateway and times them. Prints the first answer's latency per cold start (p50 /
p99 over the rounds), the spread within bursts, and the failed requests (target: 0).

    .venv/bin/python -m bench.gateway.coldstart [--rounds 20] [--burst 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics

from tests.datasets import write
from tests.e2e.conftest import claim, watched_namespace
from tests.e2e.test_gateway import post
from tests.e2e.test_training import model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import has_condition, wait_for

from bench.cluster import bench_cluster

NAMESPACE = "coldstart"
NAME = "cold"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--idle-after", default="5s")
    args = parser.parse_args()
    with bench_cluster("bench-coldstart-") as (kube, tmp):
        kube.run("create", "namespace", NAMESPACE)
        wait_for(lambda: kube.get("serviceaccount", "default", NAMESPACE), 60, "the default ServiceAccount")
        with watched_namespace(kube.kubeconfig, NAMESPACE, tmp, gateway=True) as watched:
            assert watched.gateway is not None
            gateway = watched.gateway
            data = claim(kube, NAMESPACE, "datasets")
            claim(kube, NAMESPACE, "model-store")
            write("breast_cancer", data / "breast_cancer.csv")
            manifest = model_manifest(NAME)
            manifest["spec"]["serving"] = {"minReplicas": 0, "idleAfter": args.idle_after, "coldStartTimeout": "120s"}
            kube.apply(manifest, NAMESPACE)
            wait_for(
                lambda: (m := kube.get("mlm", NAME, NAMESPACE)) and has_condition(m, "Ready"), 300, "version 1 served"
            )
            body = v2_inputs(rows("breast_cancer", data / "breast_cancer.csv", 3))
            url = f"{gateway.url}/v2/models/{NAME}/infer"
            selector = f"modelfleet.io/model={NAME},app.kubernetes.io/component=serving"
            firsts, lasts, failed, total = [], [], 0, 0
            for i in range(args.rounds):
                wait_for(
                    lambda: (
                        (d := kube.get("deployment", NAME, NAMESPACE))
                        and d["spec"].get("replicas") == 0
                        and not kube.items("pods", NAMESPACE, selector=selector)
                    ),
                    180,
                    "the model at zero",
                )
                with concurrent.futures.ThreadPoolExecutor(args.burst) as pool:
                    answers = list(pool.map(lambda _j: post(url, body, timeout=150), range(args.burst)))
                times = sorted(t for _s, _b, t in answers)
                bad = [s for s, _b, _t in answers if s != 200]
                failed, total = failed + len(bad), total + len(answers)
                firsts.append(times[0])
                lasts.append(times[-1])
                print(f"cold start {i + 1}: first answer {times[0]:.2f} s, last {times[-1]:.2f} s, failed {len(bad)}")
    print(
        f"\n{args.rounds} cold starts through the gateway, bursts of {args.burst}: first answer p50 "
        f"{statistics.median(firsts):.2f} s, p99 {percentile(firsts, 99):.2f} s (min {min(firsts):.2f}, max "
        f"{max(firsts):.2f}); last answer of a burst p50 {statistics.median(lasts):.2f} s; failed {failed} of {total}"
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
