"""MLModel: the status the operator derives from the spec. Training, serving and drift fill it in later stages."""

from __future__ import annotations

import datetime

from modelfleet.api.v1alpha1.mlmodel import MLModel, MLModelStatus
from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.common import check_training
from modelfleet.status.conditions import FALSE, TRUE, UNKNOWN, ConditionEditor, get_condition

READY_NEEDS = ("Trained", "Serving", "Approved")


def compute_phase(status: MLModelStatus) -> str:
    """A one-word summary for the printer column (never used for decisions)."""
    ready = get_condition(status.conditions, "Ready")
    if ready and ready.reason == "InvalidSpec":
        return "Invalid"
    if ready and ready.status == TRUE:
        return "Serving"
    degraded = get_condition(status.conditions, "Degraded")
    if degraded and degraded.status == TRUE:
        return "Degraded"
    return "Pending"


def compute_mlmodel_status(
    model: MLModel, generation: int | None, config: OperatorConfig, now: datetime.datetime
) -> MLModelStatus:
    spec = model.spec
    check_training(spec.framework, spec.training, spec.dataset, config)
    status = model.status.model_copy(deep=True)
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    c.default("Trained", UNKNOWN, "NotTrainedYet", "no version has been trained yet")
    c.default("Serving", UNKNOWN, "NoVersion", "nothing is served until a version is trained")
    if spec.risk_class == "high":
        c.default(
            "Approved", UNKNOWN, "AwaitingVersion", "riskClass high: each new version needs serving.approvedVersion"
        )
    else:
        c.set("Approved", TRUE, "NotRequired", f"riskClass {spec.risk_class} needs no approval")
    c.default("Drifted", UNKNOWN, "NotEvaluated", "no DriftPolicy has evaluated this model")
    c.default("Degraded", FALSE, "AsExpected")
    status.conditions = c.summarize_ready(READY_NEEDS, negative=("Degraded",))
    status.observed_generation = generation
    status.phase = compute_phase(status)
    return status
