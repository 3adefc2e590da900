"""The operator against the real API server: conditions and observedGeneration, semantically invalid specs, zero writes
on restart, and its metrics and liveness endpoints."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.argocd import check_health
from tests.samples import all_samples, sample
from tests.support import Kube, OperatorProcess, condition, wait_for


@pytest.fixture(scope="module")
def operator(kubeconfig: Path, crds: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield op
    op.stop()


def reconciled(kube: Kube, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    obj = kube.get(kind, name, ns)
    status = (obj or {}).get("status") or {}
    if obj and status.get("observedGeneration") == obj["metadata"]["generation"] and condition(obj, "Ready"):
        return obj
    return None


def test_new_model_gets_observed_generation_and_every_condition(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(sample("MLModel", "fraud-detector"), namespace)
    obj = wait_for(lambda: reconciled(kube, "mlm", "fraud-detector", namespace), 30, "the first reconcile")
    types = {c["type"]: c for c in obj["status"]["conditions"]}
    assert set(types) == {"Ready", "Trained", "Serving", "Approved", "Drifted", "Degraded"}
    assert (types["Trained"]["status"], types["Trained"]["reason"]) == ("False", "Training")  # v1 requested
    assert types["Ready"]["status"] == "False" and types["Serving"]["status"] == "Unknown"
    assert types["Approved"]["status"] == "True"  # riskClass limited needs no approval
    assert all(c["observedGeneration"] == 1 for c in types.values())
    assert obj["status"]["phase"] == "Training"
    check_health(obj, "Progressing", "training-first-version")


def test_editing_the_spec_bumps_observed_generation(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    model = sample("MLModel", "fraud-detector")
    kube.apply(model, namespace)
    first = wait_for(lambda: reconciled(kube, "mlm", "fraud-detector", namespace), 30, "the first reconcile")
    since = condition(first, "Trained")["lastTransitionTime"]  # type: ignore[index]
    model["spec"]["serving"]["maxReplicas"] = 5
    kube.apply(model, namespace)
    second = wait_for(
        lambda: (o := reconciled(kube, "mlm", "fraud-detector", namespace)) and o["metadata"]["generation"] == 2 and o,
        30,
        "observedGeneration 2",
    )
    assert second["status"]["observedGeneration"] == 2
    assert condition(second, "Trained")["lastTransitionTime"] == since  # type: ignore[index]  # no flip, same time


def test_every_kind_gets_initial_conditions(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    for _, doc in all_samples():
        kube.apply(doc, namespace)
    for _, doc in all_samples():
        kind, name = doc["kind"].lower(), doc["metadata"]["name"]
        obj = wait_for(lambda k=kind, n=name: reconciled(kube, k, n, namespace), 30, f"{kind}/{name}")
        assert obj["status"]["observedGeneration"] == 1
    dpol = kube.get("dpol", "fraud-detector-drift", namespace)
    # Its model may not exist yet when it first evaluates, and no Prometheus runs here: never Evaluated=True.
    evaluated = condition(dpol, "Evaluated") or {}
    assert (evaluated.get("status"), evaluated.get("reason")) in {
        ("Unknown", "PrometheusUnavailable"),
        ("False", "ModelNotFound"),
        ("Unknown", "NotEvaluatedYet"),
    }, evaluated
    check_health(dpol, "Degraded", "not-evaluable-" + evaluated["reason"].lower())
    check_health({**dpol, "status": None}, "Progressing", "no-status-yet")
    assert condition(dpol, "BudgetExhausted")["status"] == "False"  # type: ignore[index]


def test_semantically_invalid_spec_ends_invalid_with_one_event_and_no_retries(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    model = sample("MLModel", "fraud-detector")
    model["metadata"]["name"] = "bad"
    model["spec"]["training"]["estimator"] = "sklearn.cluster.KMeans"  # passes the schema, not the allow-list
    kube.apply(model, namespace)
    res = kube.run("wait", "--for=condition=Ready=false", "mlm/bad", "-n", namespace, "--timeout=60s", check=False)
    assert res.returncode == 0, res.stderr
    obj = kube.get("mlm", "bad", namespace)
    ready = condition(obj, "Ready")
    assert ready and ready["reason"] == "InvalidSpec" and "sklearn.cluster.KMeans" in ready["message"]
    assert obj["status"]["phase"] == "Invalid"  # type: ignore[index]
    check_health(obj, "Degraded", "invalid-spec")

    def invalid_events() -> list[dict[str, Any]]:
        return [
            e
            for e in kube.items("events", namespace, field_selector="involvedObject.name=bad")
            if e["reason"] == "InvalidSpec"
        ]

    wait_for(invalid_events, 30, "the InvalidSpec Event")
    version = obj["metadata"]["resourceVersion"]  # type: ignore[index]
    attempts = operator.counter("modelfleet_reconcile_total", kind="MLModel", result="invalid")
    time.sleep(5)  # a retry storm would show within seconds
    assert kube.get("mlm", "bad", namespace)["metadata"]["resourceVersion"] == version  # type: ignore[index]
    assert operator.counter("modelfleet_reconcile_total", kind="MLModel", result="invalid") == attempts
    assert len(invalid_events()) == 1 and invalid_events()[0].get("count", 1) == 1

    model["spec"]["training"]["estimator"] = "sklearn.ensemble.RandomForestClassifier"  # fixing the spec recovers
    kube.apply(model, namespace)
    fixed = wait_for(
        lambda: (o := reconciled(kube, "mlm", "bad", namespace)) and o["metadata"]["generation"] == 2 and o,
        30,
        "the fixed spec to be reconciled",
    )
    assert condition(fixed, "Ready")["reason"] != "InvalidSpec"  # type: ignore[index]
    assert fixed["status"]["phase"] == "Training"


def versions_of(kube: Kube, namespace: str) -> dict[str, str]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in kube.items("mlm,tj,dpol", namespace)
    }


def settled(kube: Kube, namespace: str, quiet: float = 4.0) -> dict[str, str]:
    """The objects' resource versions once nothing has changed for `quiet` seconds."""
    last, since = versions_of(kube, namespace), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = versions_of(kube, namespace)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_restarting_the_operator_with_nothing_changed_writes_nothing(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    first = OperatorProcess(kubeconfig, tmp_path / "first.log", "--namespace", namespace).start()
    try:
        for _, doc in all_samples():
            kube.apply(doc, namespace)
        invalid = sample("MLModel", "fraud-detector")
        invalid["metadata"]["name"] = "invalid"
        invalid["spec"]["training"]["estimator"] = "sklearn.cluster.KMeans"
        kube.apply(invalid, namespace)
        for _, doc in [*all_samples(), ("", invalid)]:
            wait_for(
                lambda d=doc: reconciled(kube, d["kind"].lower(), d["metadata"]["name"], namespace),
                30,
                f"{doc['metadata']['name']} to be reconciled",
            )
        # The models requested their first TrainingJobs (whose pods cannot start here: no data volumes); wait
        # until the operator has nothing left to write.
        before = settled(kube, namespace)
    finally:
        first.stop()
    assert len(before) >= len(all_samples()) + 1
    second = OperatorProcess(kubeconfig, tmp_path / "second.log", "--namespace", namespace).start()
    try:
        # Every object gets one pass once the cache is filled (the invalid model none: its spec did not change).
        wait_for(lambda: second.counter("modelfleet_reconcile_total") >= len(before) - 1, 60, "the first passes")
        time.sleep(3)
        after = versions_of(kube, namespace)
    finally:
        second.stop()
    assert after == before


def test_metrics_and_liveness_endpoints(operator: OperatorProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    text = operator.metrics() or ""
    assert "modelfleet_reconcile_total" in text and "modelfleet_reconcile_seconds_bucket" in text


def test_crd_check_names_what_is_missing(kubeconfig: Path, crds: Path) -> None:
    # The same check as at start-up, pointed at CRDs that do not exist on this cluster (the session's cluster has
    # ours installed; tests/integration/test_devcluster_lifecycle.py runs the real CLI on a cluster without them).
    from modelfleet.clients.kube import api_client, missing_crds

    api = api_client(str(kubeconfig))
    assert missing_crds(api) == []
    assert missing_crds(api, plurals=("mlmodels", "nonexistents")) == ["nonexistents.modelfleet.io"]
    assert missing_crds(api, group="nothing.example.com") == [
        "mlmodels.nothing.example.com",
        "trainingjobs.nothing.example.com",
        "driftpolicies.nothing.example.com",
        "modelversions.nothing.example.com",
    ]


def test_valid_but_odd_input_is_handled(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    odd = sample("MLModel", "fraud-detector")
    odd["metadata"] = {"name": "odd", "annotations": {"description": "Modèle — ünïcödé ✓ 模型"}}
    odd["spec"]["dataset"]["features"] = [{"name": f"feature_{i}"} for i in range(512)]
    odd["spec"]["training"]["hyperparameters"] = {}
    odd["spec"]["owner"]["team"] = "t" * 63
    policy = sample("DriftPolicy")
    policy["spec"]["checks"] = [{"name": "all-psi", "statistic": "psi", "features": [], "threshold": 0.2}]
    kube.apply([odd, policy], namespace)
    assert wait_for(lambda: reconciled(kube, "mlm", "odd", namespace), 30, "the odd model")
    assert wait_for(lambda: reconciled(kube, "dpol", policy["metadata"]["name"], namespace), 30, "the policy")
    assert operator.proc is not None and operator.proc.poll() is None  # still running


def test_json_logs(kubeconfig: Path, crds: Path, tmp_path: Path) -> None:
    op = OperatorProcess(kubeconfig, tmp_path / "json.log", "--log-format=json").start()
    op.stop()
    records = [json.loads(line) for line in (tmp_path / "json.log").read_text().splitlines() if line.startswith("{")]
    assert records and all("message" in r for r in records)
