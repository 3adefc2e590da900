"""DriftPolicy: the status the operator derives from the spec. Evaluation comes with the monitoring stage."""

from __future__ import annotations

import datetime

from modelfleet.api.v1alpha1.driftpolicy import DriftPolicy, DriftPolicyStatus
from modelfleet.config import OperatorConfig
from modelfleet.status.conditions import FALSE, UNKNOWN, ConditionEditor


def compute_driftpolicy_status(
    policy: DriftPolicy, generation: int | None, config: OperatorConfig, now: datetime.datetime
) -> DriftPolicyStatus:
    status = policy.status.model_copy(deep=True)
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    c.default("Evaluated", UNKNOWN, "NotEvaluatedYet", "the checks have not run yet")
    c.default("DriftDetected", UNKNOWN, "NotEvaluatedYet")
    c.default("BudgetExhausted", FALSE, "WithinBudget")
    status.conditions = c.summarize_ready(("Evaluated",), negative=("BudgetExhausted",))
    status.observed_generation = generation
    return status
