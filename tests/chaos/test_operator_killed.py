"""The operator killed: at each named crash point between two writes of one decision, and with SIGKILL at seeded
random moments across training, approval, rollout and retraining. After each run the fleet must have converged
with nothing twice and nothing left over: every model serves its newest version, exactly one Job per TrainingJob,
one Deployment per model, versions numbered 1..N without gaps or repeats, one ModelVersion record per version, and
every child owned by an object that exists."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from modelfleet.faults import CRASH_EXIT_CODE
from tests.datasets import write
from tests.e2e.conftest import claim, dump, jobs_of
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.support import Kube, OperatorProcess, has_condition, wait_for

CRASH_POINTS = (
    "after-trainingjob-create",
    "after-job-create",
    "after-status-patch",
    "after-record-create",
    "after-serving-apply",
)


def serves(kube: Kube, namespace: str, name: str, version: int) -> bool:
    m = kube.get("mlm", name, namespace)
    status = (m or {}).get("status") or {}
    return has_condition(m, "Ready") and (status.get("servingVersion") or {}).get("number") == version


def check_converged(kube: Kube, namespace: str, models: dict[str, int], context: str) -> None:
    """The properties every run must end with (`models`: name -> newest version)."""
    tjs = kube.items("trainingjobs", namespace)
    owners = {(o["kind"], o["uid"]) for kind in ("mlmodels", "trainingjobs") for o in _uids(kube, kind, namespace)}
    for name, newest in models.items():
        m = kube.get("mlm", name, namespace)
        assert serves(kube, namespace, name, newest), f"{context}: {name} {dump(m.get('status') if m else None)}"
        assert [v["number"] for v in m["status"]["versions"]] == list(range(1, newest + 1)), context
        mine = sorted(t["metadata"]["name"] for t in tjs if t["spec"].get("modelRef", {}).get("name") == name)
        assert mine == [f"{name}-v{n}" for n in range(1, newest + 1)], f"{context}: {mine}"
        records = kube.items("modelversions", namespace, selector=f"modelfleet.io/model={name}")
        assert sorted(r["spec"]["version"] for r in records) == list(range(1, newest + 1)), context
    for tj in tjs:
        if not (tj.get("status") or {}).get("cachedFrom"):
            assert len(jobs_of(kube, namespace, tj["metadata"]["name"])) == 1, f"{context}: {tj['metadata']['name']}"
    deployments = kube.items("deployments", namespace)
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(models), context
    for kind in ("jobs", "deployments", "services"):
        for child in kube.items(kind, namespace):
            refs = child["metadata"].get("ownerReferences") or []
            assert refs and all(
                ("MLModel" if r["kind"] == "MLModel" else r["kind"], r["uid"]) in owners for r in refs
            ), f"{context}: orphaned {kind} {child['metadata']['name']}"


def _uids(kube: Kube, plural: str, namespace: str) -> list[dict[str, str]]:
    kind = {"mlmodels": "MLModel", "trainingjobs": "TrainingJob"}[plural]
    return [{"kind": kind, "uid": o["metadata"]["uid"]} for o in kube.items(plural, namespace)]


def prepare(kube: Kube, namespace: str) -> None:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")


def test_a_crash_at_each_point_between_two_writes_converges(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    prepare(kube, namespace)
    kube.apply(model_manifest("pointed"), namespace)
    for point in CRASH_POINTS:
        crashing = OperatorProcess(
            kubeconfig, tmp_path / f"{point}.log", "--namespace", namespace, env={"MODELFLEET_CRASH_AT": point}
        ).start()
        try:
            code = crashing.wait_exit(TRAIN_TIMEOUT)
        finally:
            crashing.stop()
        assert code == CRASH_EXIT_CODE, f"the operator never reached {point} (exit {code})"
    final = OperatorProcess(kubeconfig, tmp_path / "final.log", "--namespace", namespace).start()
    try:
        wait_for(lambda: serves(kube, namespace, "pointed", 1), TRAIN_TIMEOUT, "version 1 to serve")
        time.sleep(3)  # a duplicate would appear now
        check_converged(kube, namespace, {"pointed": 1}, "after the crash points")
    finally:
        final.stop()


def test_sigkill_at_random_moments_converges_without_duplicates(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("MODELFLEET_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    context = f"seed {seed} (rerun with MODELFLEET_CHAOS_SEED={seed})"
    print(context)
    prepare(kube, namespace)
    plain, risky = model_manifest("plain"), model_manifest("risky")
    risky["spec"]["riskClass"] = "high"
    kills: list[float] = []
    count = 0

    def operator() -> OperatorProcess:
        nonlocal count
        count += 1
        return OperatorProcess(kubeconfig, tmp_path / f"op-{count}.log", "--namespace", namespace).start()

    def until(done: Any, what: str) -> None:
        """Runs operators, each killed after a random 1-8 s, until `done()`."""
        deadline = time.monotonic() + TRAIN_TIMEOUT * 2
        while not done():
            assert time.monotonic() < deadline, f"{context}: {what} never happened"
            op = operator()
            life = rng.uniform(1.0, 8.0)
            stop = time.monotonic() + life
            while time.monotonic() < stop and not done():
                time.sleep(0.2)
            assert op.proc is not None
            op.proc.send_signal(signal.SIGKILL)
            op.proc.wait(timeout=30)
            kills.append(life)

    kube.apply([plain, risky], namespace)
    until(
        lambda: (
            serves(kube, namespace, "plain", 1)
            and ((kube.get("mlm", "risky", namespace) or {}).get("status") or {}).get("latestVersion")
        ),
        "v1 of both",
    )
    risky["spec"]["serving"] = {"approvedVersion": 1}
    kube.apply(risky, namespace)
    until(lambda: serves(kube, namespace, "risky", 1), "the approved v1 to serve")
    for m in (plain, risky):
        m["spec"]["dataset"]["version"] = "2"
    kube.apply([plain, risky], namespace)
    until(
        lambda: (
            serves(kube, namespace, "plain", 2)
            and ((kube.get("mlm", "risky", namespace) or {}).get("status") or {}).get("latestVersion", {}).get("number")
            == 2
        ),
        "v2 of both",
    )
    risky["spec"]["serving"] = {"approvedVersion": 2}
    kube.apply(risky, namespace)
    until(lambda: serves(kube, namespace, "risky", 2), "the approved v2 to serve")
    print(f"{context}: {len(kills)} kills, {sum(kills) / max(1, len(kills)):.1f}s lives on average")
    final = operator()
    try:
        time.sleep(5)  # a last operator that is not killed: anything it would still do, it does now
        check_converged(kube, namespace, {"plain": 2, "risky": 2}, context)
    finally:
        final.stop()
    assert len(kills) >= 4, f"{context}: too few kills to mean anything ({len(kills)})"
