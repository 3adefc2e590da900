"""Pure operator logic: conditions, reconcilers' status, semantic checks, status diffing."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelfleet.api.v1alpha1 import MLModel
from modelfleet.api.v1alpha1.common import Condition
from modelfleet.config import OperatorConfig
from modelfleet.errors import InvalidSpec
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.mlmodel import plan_mlmodel
from modelfleet.status.conditions import get_condition, set_condition, summarize_ready
from tests.samples import sample

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def test_last_transition_time_moves_only_when_status_flips() -> None:
    c = set_condition([], "Trained", "False", "Training", "running", now=T0, generation=1)
    c = set_condition(c, "Trained", "False", "Training", "still running", now=T1, generation=2)
    got = get_condition(c, "Trained")
    assert got and got.last_transition_time == "2026-11-01T12:00:00Z" and got.message == "still running"
    assert got.observed_generation == 2
    c = set_condition(c, "Trained", "True", "Trained", "v1", now=T1, generation=2)
    assert get_condition(c, "Trained").last_transition_time == "2026-11-01T12:05:00Z"  # type: ignore[union-attr]


def test_ready_summarises_false_before_unknown_and_negative_conditions() -> None:
    c = set_condition([], "Trained", "Unknown", "NotTrainedYet", "no version", now=T0, generation=1)
    c = set_condition(c, "Serving", "False", "RolloutFailed", "pods crash", now=T0, generation=1)
    ready = get_condition(summarize_ready(c, ["Trained", "Serving"], now=T0, generation=1), "Ready")
    assert ready and (ready.status, ready.reason) == ("False", "RolloutFailed")
    c = set_condition(c, "Serving", "True", "Serving", "", now=T0, generation=1)
    c = set_condition(c, "Trained", "True", "Trained", "", now=T0, generation=1)
    c = set_condition(c, "Degraded", "True", "RolledBack", "v2 never became ready", now=T0, generation=1)
    ready = get_condition(
        summarize_ready(c, ["Trained", "Serving"], negative=["Degraded"], now=T0, generation=1), "Ready"
    )
    assert ready and (ready.status, ready.reason) == ("False", "RolledBack")


def model(**changes: object) -> MLModel:
    doc = sample("MLModel", "fraud-detector")
    doc["metadata"].update(generation=1, namespace="ml", uid="m-1")
    for path, value in changes.items():
        node = doc["spec"]
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return parse(MLModel, doc)


def compute_mlmodel_status(m: MLModel, generation: int, config: OperatorConfig, now: datetime.datetime) -> Any:
    from modelfleet.reconcilers.common import check_training

    check_training(m.spec.framework, m.spec.training, m.spec.dataset, config)
    return plan_mlmodel(m, [], fingerprint="f" * 64, generation=generation, config=config, now=now).status


def test_first_visit_sets_every_condition_and_starts_training() -> None:
    status = compute_mlmodel_status(model(), 1, OperatorConfig(), T0)
    conds = {c.type: c for c in status.conditions}
    assert {t: c.status for t, c in conds.items()} == {
        "Trained": "False",
        "Serving": "Unknown",
        "Approved": "True",
        "Drifted": "Unknown",
        "Degraded": "False",
        "Ready": "False",
    }
    assert conds["Trained"].reason == "Training"
    assert status.observed_generation == 1 and status.phase == "Training"


def test_high_risk_models_wait_for_a_version_to_approve() -> None:
    status = compute_mlmodel_status(model(riskClass="high"), 1, OperatorConfig(), T0)
    approved = get_condition(status.conditions, "Approved")
    assert approved and (approved.status, approved.reason) == ("Unknown", "AwaitingVersion")


def test_reconcile_is_idempotent() -> None:
    m = model()
    first = plan_mlmodel(m, [], fingerprint="f" * 64, generation=1, config=OperatorConfig(), now=T0)
    assert first.create is not None
    m.status = first.status
    again = plan_mlmodel(m, [first.create], fingerprint="f" * 64, generation=1, config=OperatorConfig(), now=T1)
    assert again.create is None and again.status == first.status


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training__estimator": "sklearn.cluster.KMeans"}, "not in the operator's allow-list"),
        ({"dataset__target": "amount"}, "also listed in dataset.features"),
        ({"training__hyperparameters": {"n_estimators": [1, 2]}}, "spec.training.hyperparameters.n_estimators"),
    ],
)
def test_semantic_errors_are_invalid_spec(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        compute_mlmodel_status(model(**changes), 1, OperatorConfig(), T0)


def test_status_patch_holds_only_what_changed() -> None:
    from modelfleet.controller.boundary import merge_patch

    current = {
        "observedGeneration": 1,
        "phase": "Pending",
        "conditions": [Condition(type="Ready", status="Unknown").wire()],
    }
    assert merge_patch(current, dict(current)) == {}
    assert merge_patch(current, {**current, "observedGeneration": 2}) == {"observedGeneration": 2}


def test_status_patch_removes_nested_fields_that_went_away() -> None:
    from modelfleet.controller.boundary import merge_patch

    current = {"utilization": {"scaledToZeroTime": "t", "requestRate": 0.0, "gpuHours": 1.0}, "phase": "Serving"}
    desired = {"utilization": {"requestRate": 2.5, "gpuHours": 1.0}, "phase": "Serving"}
    # Without the explicit null, a merge patch would keep scaledToZeroTime: the model would look scaled to zero.
    assert merge_patch(current, desired) == {"utilization": {"scaledToZeroTime": None, "requestRate": 2.5}}
    assert merge_patch(current, current) == {}
    assert merge_patch({"drift": {"score": 1.0}}, {}) == {"drift": None}
