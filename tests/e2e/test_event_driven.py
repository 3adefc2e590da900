"""The reconcile core is driven by watch events, not timers: a finished Job reaches its model within 2 s with the
resync set to an hour, and an idle namespace of 20 served models costs the operator no API request at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.datasets import write
from tests.e2e.conftest import claim, dump
from tests.e2e.test_first_model import shortest_model
from tests.e2e.test_training import TRAIN_TIMEOUT
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for

FLEET = 20
ON_KWOK = {  # serving pods on the simulated nodes: KWOK reports them running and ready, no process is started
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "resources": {"cpu": "100m", "memory": "128Mi"},
}


def operator_resyncing_every(seconds: int, kubeconfig: Path, namespace: str, tmp_path: Path) -> OperatorProcess:
    """An operator for `namespace` whose slow resync comes every `seconds` (activity scans: hourly)."""
    return OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        "--namespace",
        namespace,
        env={"MODELFLEET_RESYNC_SECONDS": str(seconds), "MODELFLEET_ACTIVITY_SECONDS": "3600"},
    ).start()


@pytest.fixture
def hour_resync_operator(kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = operator_resyncing_every(3600, kubeconfig, namespace, tmp_path)
    yield op
    op.stop()


def requests(op: OperatorProcess) -> float:
    return op.counter("modelfleet_api_requests_total")


def settle(op: OperatorProcess, quiet: float = 3.0, timeout: float = 60.0) -> None:
    """Returns once no pass has run for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = op.counter("modelfleet_reconcile_total"), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the operator never went quiet"
        time.sleep(0.5)
        now = op.counter("modelfleet_reconcile_total")
        if now != last:
            last, since = now, time.monotonic()


def kwok_model(name: str) -> dict[str, Any]:
    doc = shortest_model(name)
    doc["spec"]["serving"] = dict(ON_KWOK)
    return doc


def test_a_finished_job_reaches_its_model_within_two_seconds_and_an_idle_fleet_sends_nothing(
    kube: Kube, hour_resync_operator: OperatorProcess, namespace: str
) -> None:
    op = hour_resync_operator
    data = claim(kube, namespace, "datasets")
    write("breast_cancer", data / "breast_cancer.csv")
    kube.apply(kwok_model("m00"), namespace)
    job_name = wait_for(
        lambda: (tj := kube.get("tj", "m00-v1", namespace)) and (tj.get("status") or {}).get("jobName"),
        60,
        "the first TrainingJob's Job",
    )

    def job_complete() -> float | None:
        job = kube.get("job", job_name, namespace)
        return time.monotonic() if job and has_condition(job, "Complete") else None

    completed_at = wait_for(job_complete, TRAIN_TIMEOUT, "the training Job to complete", interval=0.1)
    trained_at = wait_for(
        lambda: (m := kube.get("mlm", "m00", namespace)) and has_condition(m, "Trained") and time.monotonic(),
        10,
        "the model to record version 1",
        interval=0.1,
    )
    # No timer runs (the resync is an hour): the Job's watch event queued the TrainingJob, whose status change
    # queued the model. Two seconds include both passes and this test's own polling.
    assert trained_at - completed_at <= 2.0, f"{trained_at - completed_at:.2f}s"

    # Nineteen more with the same training inputs: cache hits, served on KWOK nodes.
    for i in range(1, FLEET):
        kube.apply(kwok_model(f"m{i:02d}"), namespace)

    def all_ready() -> bool:
        models = kube.items("mlm", namespace)
        return len(models) == FLEET and all(has_condition(m, "Ready") for m in models)

    wait_for(all_ready, 180, f"{FLEET} models Ready")
    for m in kube.items("mlm", namespace):
        assert condition(m, "Trained")["status"] == "True", dump(m["status"])  # type: ignore[index]
    settle(op)  # the passes that follow the last status writes have run
    before, passes = requests(op), op.counter("modelfleet_reconcile_total")
    time.sleep(30)
    after, passes_after = requests(op), op.counter("modelfleet_reconcile_total")
    assert after - before == 0, f"{after - before} API requests in 30 s of an idle fleet of {FLEET}"
    assert passes_after == passes  # not even a pass from the cache: nothing changed, nothing was due


def test_a_resync_of_an_idle_fleet_runs_no_pass_whose_inputs_are_unchanged(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    """The resync (here every 4 s) still comes round, but a pass whose object and reads are as its last quiet pass
    found them is not run: counted as "unchanged", nothing written (the only requests are the membership lists that
    come with each resync period). A model's first resync after it settles may run once (its records' status
    changed after its last pass), so the window starts a resync period later."""
    op = operator_resyncing_every(4, kubeconfig, namespace, tmp_path)
    try:
        data = claim(kube, namespace, "datasets")
        write("breast_cancer", data / "breast_cancer.csv")
        kube.apply(kwok_model("m00"), namespace)
        wait_for(lambda: (m := kube.get("mlm", "m00", namespace)) and has_condition(m, "Trained"), TRAIN_TIMEOUT, "")
        for i in range(1, 5):
            kube.apply(kwok_model(f"m{i:02d}"), namespace)
        wait_for(lambda: all(has_condition(m, "Ready") for m in kube.items("mlm", namespace)), 120, "5 models Ready")
        time.sleep(10)  # every model's first resync after the build has come round

        def runs() -> float:
            return sum(
                op.counter("modelfleet_reconcile_total", kind=k, result="success") for k in ("MLModel", "ModelVersion")
            )

        def writes() -> float:
            return sum(op.counter("modelfleet_api_requests_total", verb=v) for v in ("POST", "PATCH", "PUT", "DELETE"))

        before, ran, skipped = writes(), runs(), op.counter("modelfleet_reconcile_total", result="unchanged")
        time.sleep(12)
        assert runs() == ran, f"{runs() - ran} passes run in 12 s of an idle fleet"
        # 5 models and their 5 records, each resynced every 3.6-4.4 s: at least 20 resyncs in 12 s, none run.
        assert op.counter("modelfleet_reconcile_total", result="unchanged") - skipped >= 20
        assert writes() == before
    finally:
        op.stop()
