"""TrainingJob: the status the operator derives from the spec. The Job itself comes with the training stage."""

from __future__ import annotations

import datetime

from modelfleet.api.v1alpha1.trainingjob import TrainingJob, TrainingJobStatus
from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.common import check_training
from modelfleet.status.conditions import FALSE, UNKNOWN, ConditionEditor, get_condition


def compute_trainingjob_status(
    job: TrainingJob, generation: int | None, config: OperatorConfig, now: datetime.datetime
) -> TrainingJobStatus:
    spec = job.spec
    check_training(spec.framework, spec.training, spec.dataset, config)
    status = job.status.model_copy(deep=True)
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    c.default("Running", UNKNOWN, "NotStarted", "no training Job yet")
    c.default("Succeeded", UNKNOWN, "NotStarted", "no training Job yet")
    c.default("Failed", FALSE, "NotFailed")
    c.default("CacheHit", UNKNOWN, "NotChecked")
    status.conditions = c.summarize_ready(("Succeeded",), negative=("Failed",))
    status.observed_generation = generation
    ready = get_condition(status.conditions, "Ready")
    status.phase = "Invalid" if ready and ready.reason == "InvalidSpec" else (status.phase or "Pending")
    return status
