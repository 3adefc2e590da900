"""API errors injected between the operator and the API server: a seeded share of its requests is answered with
503 (nothing happened), 504 after a write landed (a lost response), 409 Conflict before an update and 409
AlreadyExists after a create landed. Two models train, serve, and one retrains through it; the fleet must converge
with nothing twice or left over, the operator must not crash, and its back-off must show in its metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.chaos.proxy import FaultyProxy
from tests.chaos.test_operator_killed import check_converged, prepare, serves
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.support import Kube, OperatorProcess, wait_for

RATE = 0.15  # of every request that is not a watch


def test_injected_5xx_and_409_are_retried_without_duplicates(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("MODELFLEET_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    context = f"seed {seed} (rerun with MODELFLEET_CHAOS_SEED={seed})"
    print(context)
    prepare(kube, namespace)
    proxy = FaultyProxy(kubeconfig, seed, RATE).start()
    faulty = proxy.kubeconfig(tmp_path / "faulty.kubeconfig")
    operator = OperatorProcess(faulty, tmp_path / "operator.log", "--namespace", namespace).start()
    try:
        first, second = model_manifest("first"), model_manifest("second")
        kube.apply([first, second], namespace)
        wait_for(
            lambda: serves(kube, namespace, "first", 1) and serves(kube, namespace, "second", 1),
            TRAIN_TIMEOUT,
            f"{context}: v1 of both to serve",
        )
        second["spec"]["dataset"]["version"] = "2"
        kube.apply(second, namespace)
        wait_for(lambda: serves(kube, namespace, "second", 2), TRAIN_TIMEOUT, f"{context}: v2 to serve")
        proxy.enabled = False
        time.sleep(5)  # anything still retried lands now; a duplicate would appear now
        check_converged(kube, namespace, {"first": 1, "second": 2}, context)
        codes = {code: operator.counter("modelfleet_api_requests_total", code=code) for code in ("503", "504", "409")}
        retried = {c: operator.counter("modelfleet_workqueue_retries_total", cause=c) for c in ("server", "conflict")}
        print(f"{context}: injected {dict(proxy.injected)}; the operator saw {codes}, retried passes {retried}")
        assert all(codes.values()), f"{context}: a fault never reached the operator: {codes}"
        assert all(retried.values()), f"{context}: no back-off in the metrics: {retried}"
        assert operator.proc is not None and operator.proc.poll() is None, "the operator crashed"
    finally:
        operator.stop()
        proxy.stop()
