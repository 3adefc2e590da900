"""DriftPolicy handlers: create, spec update and operator restart evaluate at once; a timer evaluates whenever the
policy's interval (or its back-off) has passed. The decision is the reconciler's; this layer counts outcomes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, DriftPolicy
from modelfleet.api.v1alpha1.common import Condition
from modelfleet.config import OperatorConfig
from modelfleet.handlers.common import is_invalid_for_this_generation, run_reconcile
from modelfleet.metrics import (
    BUDGET_EXHAUSTED,
    DRIFT_BREACHES,
    DRIFT_DETECTED,
    DRIFT_EVALUATIONS,
    GPU_IDLE,
    RETRAINS_SUPPRESSED,
    RETRAINS_TRIGGERED,
    ObjectSeries,
)
from modelfleet.reconcilers.driftpolicy import initial_status, reconcile_driftpolicy
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.status.conditions import TRUE, get_condition

POLL_SECONDS = OperatorConfig.from_env().poll_seconds
# The gauges that follow a policy's conditions, by (namespace, policy, model); alerts fire on them.
_CONDITION_GAUGES = ((DRIFT_DETECTED, "DriftDetected"), (BUDGET_EXHAUSTED, "BudgetExhausted"), (GPU_IDLE, "GpuIdle"))
_SERIES = ObjectSeries(*(gauge for gauge, _ in _CONDITION_GAUGES))


def forget_gauges(key: tuple[str, str]) -> None:
    """Remove the gauges of the (namespace, policy) from /metrics."""
    _SERIES.forget(key)


def export_gauges(labels: tuple[str, str, str], conditions: Iterable[Condition]) -> None:
    """Set the (namespace, policy, model) gauges from conditions that are True or False (Unknown keeps the last)."""
    _SERIES.track(labels[:2], labels)
    for gauge, ctype in _CONDITION_GAUGES:
        condition = get_condition(conditions, ctype)
        if condition is not None and condition.status in ("True", "False"):
            gauge.labels(*labels).set(1 if condition.status == TRUE else 0)


def _reconcile(obj: DriftPolicy, generation: int | None, deps: Any, now: Any) -> Outcome:
    if not obj.status.conditions:
        obj.status = initial_status(obj, generation, now)
    plan, _ = reconcile_driftpolicy(obj, generation, deps.kube, deps.config, now, deps.prometheus_for)
    if plan.outcome != "not-due":
        labels = (str(obj.metadata.get("namespace", "")), obj.spec.model_ref.name)
        result = plan.outcome.split("-")[0] if plan.outcome.startswith("suppressed") else plan.outcome
        DRIFT_EVALUATIONS.labels(*labels, result).inc()
        if plan.outcome in ("retrain", "alert") or plan.outcome.startswith("suppressed"):
            DRIFT_BREACHES.labels(*labels).inc()
        if plan.outcome == "retrain":
            RETRAINS_TRIGGERED.labels(*labels).inc()
        elif plan.outcome.startswith("suppressed-"):
            RETRAINS_SUPPRESSED.labels(*labels, plan.outcome.removeprefix("suppressed-")).inc()
        elif plan.outcome == "unavailable":
            RETRAINS_SUPPRESSED.labels(*labels, "prometheus-unavailable").inc()
        export_gauges((labels[0], str(obj.metadata.get("name", "")), labels[1]), plan.status.conditions)
    return Outcome(plan.status, [Event(*e) for e in plan.events])


@kopf.on.resume(GROUP, VERSION, "driftpolicies")
@kopf.on.create(GROUP, VERSION, "driftpolicies")
@kopf.on.update(GROUP, VERSION, "driftpolicies", field="spec")
def driftpolicy_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    run_reconcile("DriftPolicy", DriftPolicy, _reconcile, body, patch, memo)


@kopf.timer(GROUP, VERSION, "driftpolicies", interval=POLL_SECONDS, initial_delay=POLL_SECONDS)
def driftpolicy_evaluate(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    if is_invalid_for_this_generation(body):
        return
    run_reconcile("DriftPolicy", DriftPolicy, _reconcile, body, patch, memo)


@kopf.on.delete(GROUP, VERSION, "driftpolicies", optional=True)
def driftpolicy_forget(body: kopf.Body, **_: Any) -> None:
    """The policy's gauges leave /metrics with it (optional: never blocks deletion)."""
    metadata = body.get("metadata", {})
    forget_gauges((str(metadata.get("namespace", "")), str(metadata.get("name", ""))))
