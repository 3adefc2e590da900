"""The CRDs install and the API server itself rejects invalid resources with messages that name the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.samples import all_samples, sample
from tests.support import Kube, has_condition

Mutation = Callable[[dict[str, Any]], None]


def setp(path: str, value: Any) -> Mutation:
    def apply(obj: dict[str, Any]) -> None:
        keys = path.split(".")
        node = obj
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value

    return apply


def delp(path: str) -> Mutation:
    def apply(obj: dict[str, Any]) -> None:
        keys = path.split(".")
        node = obj
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        del node[keys[-1]]

    return apply


def both(*mutations: Mutation) -> Mutation:
    def apply(obj: dict[str, Any]) -> None:
        for m in mutations:
            m(obj)

    return apply


def features(n: int) -> list[dict[str, str]]:
    return [{"name": f"f{i}", "type": "numeric"} for i in range(n)]


MLM, DPOL, TJ = "MLModel", "DriftPolicy", "TrainingJob"
BASE = {MLM: "fraud-detector", DPOL: "fraud-detector-drift", TJ: "fraud-detector-experiment-1"}
# (id, kind, mutation, text the error must contain: the offending field)
CASES: list[tuple[str, str, Mutation, str]] = [
    ("wrong-type-replicas", MLM, setp("spec.serving.minReplicas", "two"), "spec.serving.minReplicas"),
    (
        "drift-min-rows-above-window",
        MLM,
        setp("spec.serving.driftMonitoring", {"windowRows": 300}),  # minRows defaults to 500
        "spec.serving.driftMonitoring.minRows",
    ),
    ("wrong-type-features", MLM, setp("spec.dataset.features", "amount"), "spec.dataset.features"),
    ("unknown-risk-class", MLM, setp("spec.riskClass", "extreme"), "spec.riskClass"),
    ("unknown-framework", MLM, setp("spec.framework", "tensorflow"), "spec.framework"),
    ("unknown-task", MLM, setp("spec.task", "clustering"), "spec.task"),
    ("unknown-format", MLM, setp("spec.dataset.format", "xlsx"), "spec.dataset.format"),
    ("unknown-feature-type", MLM, setp("spec.dataset.features.0.type", "text"), "spec.dataset.features[0].type"),
    ("max-replicas-zero", MLM, setp("spec.serving.maxReplicas", 0), "spec.serving.maxReplicas"),
    ("min-replicas-negative", MLM, setp("spec.serving.minReplicas", -1), "spec.serving.minReplicas"),
    ("max-retries-too-high", MLM, setp("spec.training.maxRetries", 11), "spec.training.maxRetries"),
    ("split-zero", MLM, setp("spec.training.validation.split", 0), "spec.training.validation.split"),
    ("split-too-large", MLM, setp("spec.training.validation.split", 0.6), "spec.training.validation.split"),
    ("gpu-negative", MLM, setp("spec.training.resources.gpu", -1), "spec.training.resources.gpu"),
    (
        "approved-version-zero",
        MLM,
        both(setp("spec.riskClass", "high"), setp("spec.serving.approvedVersion", 0)),
        "spec.serving.approvedVersion",
    ),
    ("team-too-long", MLM, setp("spec.owner.team", "t" * 64), "spec.owner.team"),
    ("team-not-a-dns-label", MLM, setp("spec.owner.team", "Payments_Risk"), "spec.owner.team"),
    ("estimator-too-long", MLM, setp("spec.training.estimator", "sklearn." + "a" * 300), "spec.training.estimator"),
    ("uri-too-long", MLM, setp("spec.dataset.uri", "s3://b/" + "k" * 2100), "spec.dataset.uri"),
    ("too-many-features", MLM, setp("spec.dataset.features", features(513)), "spec.dataset.features"),
    ("no-features", MLM, setp("spec.dataset.features", []), "spec.dataset.features"),
    (
        "duplicate-feature-names",
        MLM,
        setp("spec.dataset.features", [{"name": "amount"}, {"name": "amount"}]),
        "spec.dataset.features[1]",
    ),
    (
        "too-many-hyperparameters",
        MLM,
        setp("spec.training.hyperparameters", {f"p{i}": i for i in range(65)}),
        "spec.training.hyperparameters",
    ),
    (
        "too-many-tolerations",
        MLM,
        setp("spec.training.tolerations", [{"key": f"k{i}"} for i in range(17)]),
        "spec.training.tolerations",
    ),
    (
        "bad-toleration-operator",
        MLM,
        setp("spec.training.tolerations", [{"key": "a", "operator": "Like"}]),
        "spec.training.tolerations[0].operator",
    ),
    ("bad-dataset-scheme", MLM, setp("spec.dataset.uri", "ftp://data.example.com/x.csv"), "spec.dataset.uri"),
    ("bad-artifacts-scheme", MLM, setp("spec.artifacts", {"uri": "http://store/models"}), "spec.artifacts.uri"),
    ("bad-cpu-quantity", MLM, setp("spec.training.resources.cpu", "lots"), "spec.training.resources.cpu"),
    ("bad-contact", MLM, setp("spec.owner.contact", "call me maybe"), "spec.owner.contact"),
    (
        "min-above-max-replicas",
        MLM,
        both(setp("spec.serving.minReplicas", 3), setp("spec.serving.maxReplicas", 2)),
        "spec.serving.minReplicas",
    ),
    ("bad-timeout-duration", MLM, setp("spec.training.timeout", "two hours"), "spec.training.timeout"),
    ("bad-idle-duration", MLM, setp("spec.serving.idleAfter", "10 minutes"), "spec.serving.idleAfter"),
    (
        "high-risk-without-contact",
        MLM,
        both(setp("spec.riskClass", "high"), delp("spec.owner.contact")),
        "spec.owner.contact",
    ),
    ("approval-on-low-risk", MLM, setp("spec.serving.approvedVersion", 2), "spec.serving.approvedVersion"),
    ("gpu-with-sklearn", MLM, setp("spec.training.resources.gpu", 1), "spec.training.resources.gpu"),
    ("pytorch-with-sklearn-estimator", MLM, setp("spec.framework", "pytorch"), "spec.training.estimator"),
    (
        "sklearn-with-foreign-estimator",
        MLM,
        setp("spec.training.estimator", "xgboost.XGBClassifier"),
        "spec.training.estimator",
    ),
    (
        "metric-does-not-suit-task",
        MLM,
        setp("spec.training.validation.metric", "rmse"),
        "spec.training.validation.metric",
    ),
    ("missing-owner", MLM, delp("spec.owner"), "spec.owner"),
    ("missing-target", MLM, delp("spec.dataset.target"), "spec.dataset.target"),
    ("empty-estimator", MLM, setp("spec.training.estimator", ""), "spec.training.estimator"),
    (
        "misspelt-affinity",
        MLM,
        setp("spec.serving.affinity", {"nodeAfinity": {}}),
        "spec.serving.affinity.nodeAfinity",
    ),
    (
        "bad-serving-toleration-effect",
        MLM,
        setp("spec.serving.tolerations", [{"key": "gpu", "effect": "Never"}]),
        "spec.serving.tolerations[0].effect",
    ),
    ("bad-serving-gpu-resource", MLM, setp("spec.serving.resources.gpuResource", "gpu"), "spec.serving.resources"),
    ("missing-spec", MLM, delp("spec"), "spec"),
    ("unknown-field-training", MLM, setp("spec.training.learningRate", 0.1), "spec.training.learningRate"),
    ("unknown-field-spec", MLM, setp("spec.replicas", 3), "spec.replicas"),
    ("check-with-statistic-and-query", DPOL, setp("spec.checks.0.query", "up"), "spec.checks[0]"),
    (
        "check-with-neither",
        DPOL,
        both(delp("spec.checks.0.statistic"), delp("spec.checks.0.features")),
        "spec.checks[0]",
    ),
    ("unknown-statistic", DPOL, setp("spec.checks.0.statistic", "chi2"), "spec.checks[0].statistic"),
    ("duplicate-check-names", DPOL, setp("spec.checks.1.name", "amount-psi"), "spec.checks[1]"),
    ("features-on-query-check", DPOL, setp("spec.checks.2.features", ["amount"]), "spec.checks[2].features"),
    ("bad-trigger-for", DPOL, setp("spec.trigger.for", "soon"), "spec.trigger.for"),
    ("bad-cooldown", DPOL, setp("spec.cooldown", "1 day"), "spec.cooldown"),
    ("too-many-failing-checks", DPOL, setp("spec.trigger.minFailingChecks", 5), "spec.trigger.minFailingChecks"),
    ("unknown-action", DPOL, setp("spec.action", "Delete"), "spec.action"),
    ("missing-model-ref", DPOL, delp("spec.modelRef"), "spec.modelRef"),
    (
        "idle-percent-over-100",
        DPOL,
        setp("spec.utilization.gpuIdleBelowPercent", 150),
        "spec.utilization.gpuIdleBelowPercent",
    ),
    ("bad-prometheus-url", DPOL, setp("spec.prometheus.url", "prometheus:9090"), "spec.prometheus.url"),
    ("unknown-training-reason", TJ, setp("spec.reason", "because"), "spec.reason"),
    ("bad-output-scheme", TJ, setp("spec.output.uri", "ftp://x/y"), "spec.output.uri"),
    ("output-leaves-its-claim", TJ, setp("spec.output.uri", "pvc://store/../../etc"), "spec.output.uri"),
    ("dataset-leaves-its-claim", MLM, setp("spec.dataset.uri", "pvc://data/x/../../../root/a.csv"), "spec.dataset.uri"),
    ("artifacts-leave-their-claim", MLM, setp("spec.artifacts.uri", "pvc://store/.."), "spec.artifacts.uri"),
    ("trainingjob-gpu-with-sklearn", TJ, setp("spec.training.resources.gpu", 2), "spec.training.resources.gpu"),
    ("canary-steps-not-ending-at-100", MLM, setp("spec.serving.rollout.steps", [10, 50]), "spec.serving.rollout.steps"),
    ("canary-steps-decreasing", MLM, setp("spec.serving.rollout.steps", [50, 10, 100]), "spec.serving.rollout.steps"),
    ("canary-steps-repeated", MLM, setp("spec.serving.rollout.steps", [10, 10, 100]), "spec.serving.rollout.steps"),
    ("canary-step-over-100", MLM, setp("spec.serving.rollout.steps", [10, 150]), "spec.serving.rollout.steps[1]"),
    (
        "unknown-rollout-strategy",
        MLM,
        setp("spec.serving.rollout.strategy", "BlueGreen"),
        "spec.serving.rollout.strategy",
    ),
    (
        "canary-error-rate-over-1",
        MLM,
        setp("spec.serving.rollout.analysis", {"maxErrorRate": 5}),
        "spec.serving.rollout.analysis.maxErrorRate",
    ),
    ("bad-cold-start-timeout", MLM, setp("spec.serving.coldStartTimeout", "a minute"), "spec.serving.coldStartTimeout"),
]


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_crds_are_established_with_names_categories_and_columns(kube: Kube, crds: Path) -> None:
    for plural, short in (("mlmodels", "mlm"), ("trainingjobs", "tj"), ("driftpolicies", "dpol")):
        crd = kube.get("crd", f"{plural}.modelfleet.io")
        assert crd and has_condition(crd, "Established")
        assert crd["spec"]["names"]["shortNames"] == [short]
        assert crd["spec"]["names"]["categories"] == ["modelfleet"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_every_sample_applies_and_shows_in_the_printer_columns(kube: Kube, crds: Path, namespace: str) -> None:
    for _, doc in all_samples():
        kube.apply(doc, namespace)
    out = kube.run("get", "mlm,tj,dpol", "-n", namespace).stdout
    for header in (
        "READY",
        "PHASE",
        "SERVING",
        "LATEST",
        "DRIFT",
        "STATUS",
        "DURATION",
        "CACHE HIT",
        "DRIFT DETECTED",
        "LAST EVALUATED",
        "RETRAINS THIS WEEK",
    ):
        assert header in out
    everything = kube.run("get", "modelfleet", "-n", namespace, "-o", "name").stdout.split()
    assert len(everything) == len(all_samples())
    # Defaults come from the schema, so GitOps tools see no drift between what they applied and what is stored.
    stored = kube.get("mlm", "fraud-detector", namespace)
    assert stored and stored["spec"]["serving"]["idleAfter"] == "30m"
    assert stored["spec"]["training"]["resources"]["gpuResource"] == "nvidia.com/gpu"


def test_explain_prints_the_field_docs(kube: Kube, crds: Path) -> None:
    out = kube.run("explain", "mlmodel.spec.training").stdout
    assert "allow-list" in out and "queueName" in out and "Kueue LocalQueue" in out


@pytest.mark.parametrize(("case", "kind", "mutate", "field"), CASES, ids=[c[0] for c in CASES])
def test_invalid_resource_is_rejected_naming_the_field(
    kube: Kube, crds: Path, case: str, kind: str, mutate: Mutation, field: str
) -> None:
    obj = sample(kind, BASE[kind])
    obj["metadata"] = {"name": f"invalid-{case}"[:63], "namespace": "default"}
    mutate(obj)
    res = kube.run("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    assert res.returncode != 0, f"{case}: the API server accepted it"
    assert field in res.stderr, f"{case}: the error does not name {field}: {res.stderr}"


def test_a_trainingjob_spec_is_immutable(kube: Kube, crds: Path, namespace: str) -> None:
    tj = sample("TrainingJob")
    kube.apply(tj, namespace)
    tj["spec"]["training"]["hyperparameters"]["n_estimators"] = 300
    res = kube.run("apply", "-n", namespace, "-f", "-", input=json.dumps(tj), check=False)
    assert res.returncode != 0 and "immutable" in res.stderr


def test_the_shortest_model_is_accepted_and_stored_with_the_schemas_defaults(
    kube: Kube, crds: Path, namespace: str
) -> None:
    shortest = sample("MLModel", "first")  # manifests/samples/shortest-model.yaml, as the README shows it
    kube.apply(shortest, namespace)
    stored = kube.get("mlm", "first", namespace)
    assert stored and "features" not in stored["spec"]["dataset"] and "estimator" not in stored["spec"]["training"]
    assert stored["spec"]["training"]["resources"]["cpu"] == "1" and stored["spec"]["serving"]["minReplicas"] == 1


def test_valid_but_odd_input_is_accepted(kube: Kube, crds: Path, namespace: str) -> None:
    obj = sample("MLModel", "fraud-detector")
    obj["metadata"]["name"] = "odd"
    obj["metadata"]["annotations"] = {"description": "Modèle de détection — ünïcödé ✓"}
    obj["spec"]["dataset"]["features"] = features(512)
    obj["spec"]["training"]["hyperparameters"] = {}
    obj["spec"]["owner"]["team"] = "t" * 63
    kube.apply(obj, namespace)
    assert kube.get("mlm", "odd", namespace)
