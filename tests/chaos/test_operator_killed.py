"""The operator killed: at each named crash point between two writes of one decision, and with SIGKILL at seeded
random moments across training, approval, rollout, rollback and a drift retrain (a real Prometheus, shifted traffic to
the serving pod). After each run the fleet must have converged with nothing twice and nothing left over: every model
serves the version it should, exactly one Job per TrainingJob, one Deployment per model, versions numbered 1..N
without gaps or repeats, one ModelVersion record per version, and every child owned by an object that exists."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from modelfleet.devcluster.prometheus import PrometheusServer, pod_scrape_job
from modelfleet.faults import CRASH_EXIT_CODE
from tests.datasets import write
from tests.e2e.conftest import claim, dump, jobs_of
from tests.e2e.test_drift import ALL_ROWS
from tests.e2e.test_serving import infer, serving_pod_ip
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, OperatorProcess, has_condition, wait_for

CRASH_POINTS = (
    "after-trainingjob-create",
    "after-job-create",
    "after-status-patch",
    "after-record-create",
    "after-serving-apply",
)


def serves(kube: Kube, namespace: str, name: str, version: int) -> bool:
    """`version` serves. Ready, unless a newer version exists: then Ready=False/AwaitingApproval says so (a
    rollback), and Serving=True is what counts."""
    m = kube.get("mlm", name, namespace)
    status = (m or {}).get("status") or {}
    newer = ((status.get("latestVersion") or {}).get("number") or 0) > version
    return (
        has_condition(m, "Serving" if newer else "Ready")
        and (status.get("servingVersion") or {}).get("number") == version
    )


def check_converged(
    kube: Kube, namespace: str, models: dict[str, int], context: str, serving: dict[str, int] | None = None
) -> None:
    """The properties every run must end with (`models`: name -> newest version; `serving`: name -> the version
    served where it is not the newest)."""
    tjs = kube.items("trainingjobs", namespace)
    owners = {(o["kind"], o["uid"]) for kind in ("mlmodels", "trainingjobs") for o in _uids(kube, kind, namespace)}
    for name, newest in models.items():
        m = kube.get("mlm", name, namespace)
        served = (serving or {}).get(name, newest)
        assert serves(kube, namespace, name, served), f"{context}: {name} {dump(m.get('status') if m else None)}"
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


def prepare(kube: Kube, namespace: str) -> Path:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    return data / "breast_cancer.csv"


def drift_policy(model: str, prometheus: str, **spec: Any) -> dict[str, Any]:
    """A DriftPolicy that retrains `model` on a PSI breach held for 6 s (`spec` overrides)."""
    return {
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": f"{model}-drift"},
        "spec": {
            "modelRef": {"name": model},
            "prometheus": {"url": prometheus},
            "interval": "2s",
            "checks": [{"name": "psi-all", "statistic": "psi", "threshold": 0.2}],
            "trigger": {"for": "6s"},
            "action": "Retrain",
            "cooldown": "30m",
            **spec,
        },
    }


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
    dataset = prepare(kube, namespace)
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

    def latest(name: str) -> int | None:
        status = (kube.get("mlm", name, namespace) or {}).get("status") or {}
        return (status.get("latestVersion") or {}).get("number")

    prom = PrometheusServer(tmp_path / "prometheus", [pod_scrape_job(kubeconfig, interval="1s")]).start()
    try:
        kube.apply([plain, risky], namespace)
        until(lambda: serves(kube, namespace, "plain", 1) and latest("risky") == 1, "v1 of both")
        risky["spec"]["serving"] = {"approvedVersion": 1}
        kube.apply(risky, namespace)
        until(lambda: serves(kube, namespace, "risky", 1), "the approved v1 to serve")
        for m in (plain, risky):
            m["spec"]["dataset"]["version"] = "2"
        kube.apply([plain, risky], namespace)
        until(lambda: serves(kube, namespace, "plain", 2) and latest("risky") == 2, "v2 of both")
        risky["spec"]["serving"] = {"approvedVersion": 2}
        kube.apply(risky, namespace)
        until(lambda: serves(kube, namespace, "risky", 2), "the approved v2 to serve")
        risky["spec"]["serving"] = {"approvedVersion": 1}  # rolled back
        kube.apply(risky, namespace)
        until(lambda: serves(kube, namespace, "risky", 1), "the rollback to v1")

        # Drift: the world shifts, so do the dataset and the traffic to plain's v2; one retrain, on the data as it is.
        write("breast_cancer", dataset, shift={"mean_radius": 3.0})
        shifted = rows("breast_cancer", dataset, ALL_ROWS)
        ip = serving_pod_ip(kube, namespace, "plain", 2)
        for start in range(0, ALL_ROWS, 50):
            infer(ip, "plain", v2_inputs({k: v[start : start + 50] for k, v in shifted.items()}))
        kube.apply(drift_policy("plain", prom.url), namespace)
        until(lambda: serves(kube, namespace, "plain", 3), "the drift retrain to serve v3")
        print(f"{context}: {len(kills)} kills, {sum(kills) / max(1, len(kills)):.1f}s lives on average")
        final = operator()
        try:
            time.sleep(5)  # a last operator that is not killed: anything it would still do, it does now
            check_converged(kube, namespace, {"plain": 3, "risky": 2}, context, serving={"risky": 1})
            v3 = kube.get("tj", "plain-v3", namespace)
            assert v3 and v3["spec"]["reason"] == "drift", f"{context}: {dump(v3)}"
        finally:
            final.stop()
    finally:
        prom.stop()
    assert len(kills) >= 4, f"{context}: too few kills to mean anything ({len(kills)})"
