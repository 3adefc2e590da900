"""DriftPolicy: a new spec (and the operator's start) evaluates at once; after each evaluation the policy is due again
when its interval (or its back-off) has passed, as a due time in the reconcile queue, not a timer. The decision is
the reconciler's; this layer counts outcomes once the status has landed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelfleet.api.v1alpha1 import DriftPolicy
from modelfleet.api.v1alpha1.common import Condition
from modelfleet.controller.boundary import PassDeps
from modelfleet.handlers.common import object_key
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
from modelfleet.reconcilers.driftpolicy import initial_status, reconcile_driftpolicy, seconds_until_due
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.status.conditions import TRUE, get_condition
from modelfleet.vocabulary import Key

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


def _count(obj: DriftPolicy, outcome: str, conditions: Iterable[Condition]) -> None:
    labels = (str(obj.metadata.get("namespace", "")), obj.spec.model_ref.name)
    result = outcome.split("-")[0] if outcome.startswith("suppressed") else outcome
    DRIFT_EVALUATIONS.labels(*labels, result).inc()
    if outcome in ("retrain", "alert") or outcome.startswith("suppressed"):
        DRIFT_BREACHES.labels(*labels).inc()
    if outcome == "retrain":
        RETRAINS_TRIGGERED.labels(*labels).inc()
    elif outcome.startswith("suppressed-"):
        RETRAINS_SUPPRESSED.labels(*labels, outcome.removeprefix("suppressed-")).inc()
    elif outcome == "unavailable":
        RETRAINS_SUPPRESSED.labels(*labels, "prometheus-unavailable").inc()
    export_gauges((labels[0], str(obj.metadata.get("name", "")), labels[1]), conditions)


def reconcile(obj: DriftPolicy, generation: int | None, deps: PassDeps, now: Any) -> Outcome:
    if not obj.status.conditions:
        obj.status = initial_status(obj, generation, now)
    plan, _ = reconcile_driftpolicy(obj, generation, deps.kube, deps.config, now, deps.prometheus_for, deps.drift)
    events = [Event(*e, action=e[1] == "RetrainTriggered") for e in plan.events]
    outcome = Outcome(plan.status, events, requeue_after=seconds_until_due(obj.spec, plan.status, now))
    if plan.outcome != "not-due":
        outcome.on_landed.append(lambda: _count(obj, plan.outcome, plan.status.conditions))
    return outcome


def forget(key: Key) -> None:
    """The policy's gauges leave /metrics with it."""
    forget_gauges(object_key(key))
