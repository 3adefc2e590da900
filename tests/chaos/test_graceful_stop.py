"""SIGTERM to an operator in the middle of a busy fleet: passes in flight get MODELFLEET_STOP_SECONDS, then are
abandoned; the process exits 0 well inside the chart's terminationGracePeriodSeconds (30 s), and the next start
finishes the work, with no duplicates. The fleet is made busy by a client-side rate limit of 2 requests per second
against 120 new models (each pass wants to create a TrainingJob), so nearly every pass is in flight, waiting."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.samples import sample
from tests.support import Kube, OperatorProcess, wait_for

MODELS = 120
STOP_SECONDS = 3.0


def fleet(namespace: str) -> str:
    items = []
    for i in range(MODELS):
        doc = sample("MLModel", "first")
        doc["metadata"] = {"name": f"busy-{i:03d}", "namespace": namespace}
        # Queued for Kueue, which is not installed: the Jobs stay suspended and nothing runs (cheap to create).
        doc["spec"]["training"] = {"queueName": "nowhere"}
        items.append(doc)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def test_sigterm_under_load_exits_in_bounded_time_and_the_next_start_finishes(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    env = {"MODELFLEET_STOP_SECONDS": str(STOP_SECONDS)}
    busy = OperatorProcess(
        kubeconfig, tmp_path / "busy.log", "--namespace", namespace, "--api-qps", "2", "--api-burst", "2", env=env
    ).start()
    kube.run("apply", "-f", "-", input=fleet(namespace))
    wait_for(lambda: len(kube.items("trainingjobs", namespace)) >= 3, 60, "the busy operator to create a few runs")
    assert busy.proc is not None
    started = time.monotonic()
    busy.proc.send_signal(signal.SIGTERM)
    code = busy.wait_exit(30)
    took = time.monotonic() - started
    print(f"exit {code} after SIGTERM in {took:.1f}s (stop grace {STOP_SECONDS:.0f}s)")
    assert code == 0 and took <= STOP_SECONDS + 5, (code, took)
    assert "abandoning" in busy.log.read_text()  # it did have passes in flight
    left = len(kube.items("trainingjobs", namespace))
    assert left < MODELS  # work remained for the next start

    after = OperatorProcess(kubeconfig, tmp_path / "after.log", "--namespace", namespace, env=env).start()
    try:
        runs = wait_for(
            lambda: len(r := kube.items("trainingjobs", namespace)) >= MODELS and r, 120, "a run for every model"
        )
        time.sleep(2)  # a duplicate would show up now
        runs = kube.items("trainingjobs", namespace)
        owners = sorted(r["spec"]["modelRef"]["name"] for r in runs)
        assert owners == sorted(f"busy-{i:03d}" for i in range(MODELS)), "one run per model, none twice"
        assert {r["metadata"]["name"] for r in runs} == {f"busy-{i:03d}-v1" for i in range(MODELS)}
    finally:
        after.stop()
