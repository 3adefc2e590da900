"""DriftPolicy: watches a model's drift and GPU use in Prometheus and acts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelfleet.api.v1alpha1.common import ApiModel, Conditions, Duration, LocalObjectReference, Timestamp, cel
from modelfleet.api.v1alpha1.shared import Statistic


class PrometheusEndpoint(ApiModel):
    """The Prometheus to query."""

    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://\S+$")
    """Base URL, e.g. http://prometheus-operated.monitoring:9090."""


class Check(ApiModel):
    """One drift check: a built-in statistic over features, or a custom PromQL query."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Name of the check (unique in the policy)."""
    statistic: Statistic | None = None
    """Built-in statistic computed by the model server: psi, ks, jensenshannon or wasserstein."""
    features: list[str] = Field(
        default_factory=list,
        max_length=512,
        json_schema_extra={"x-kubernetes-list-type": "set", "items": {"type": "string", "maxLength": 128}},
    )
    """Features the statistic is checked on (empty: all)."""
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    """A custom PromQL expression ($namespace, $model and $window are filled in). One that does not name $model is
    read once for every policy of the namespace with the same query, and each policy takes the series labelled with
    its model (or all of them when none has a model label)."""
    threshold: float
    """The check breaches when the value is above this."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "has(self.statistic) != has(self.query)",
                    "a check sets exactly one of statistic (built-in) or query (custom PromQL)",
                ),
                cel(
                    "!has(self.features) || size(self.features) == 0 || has(self.statistic)",
                    "features apply to built-in statistics only",
                    ".features",
                ),
            ]
        }
    }


class Trigger(ApiModel):
    """When breaching checks count as drift."""

    for_: Duration = Field(default="5m", alias="for")
    """Checks must breach continuously this long (hysteresis)."""
    min_failing_checks: int = Field(default=1, ge=1, le=32)
    """How many checks must breach at once."""


class Budget(ApiModel):
    """Limits on drift-triggered retraining."""

    max_retrains_per_week: int = Field(default=2, ge=0, le=100)
    """Most drift retrains in any 7 days."""
    gpu_hours_per_month: float | None = Field(default=None, ge=0)
    """Most GPU-hours of the model's training in the calendar month."""


class UtilizationRule(ApiModel):
    """What to do about idle GPUs of the serving pods."""

    gpu_idle_below_percent: float = Field(ge=0, le=100)
    """GPUs below this utilisation count as idle."""
    for_: Duration = Field(default="30m", alias="for")
    """Idle this long before acting."""
    action: Literal["ScaleDown", "Alert"] = "Alert"
    """ScaleDown the serving Deployment, or only Alert."""


class DriftPolicySpec(ApiModel):
    """What to watch and how to act."""

    model_ref: LocalObjectReference
    """The MLModel to watch."""
    prometheus: PrometheusEndpoint | None = None
    """Where to query (default: the operator's setting)."""
    interval: Duration = "1m"
    """How often to evaluate."""
    window: Duration = "1h"
    """The window the statistics cover."""
    checks: list[Check] = Field(
        min_length=1,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The checks (names unique)."""
    trigger: Trigger = Field(default_factory=Trigger)
    """When breaches count as drift."""
    action: Literal["Retrain", "Alert"] = "Alert"
    """Retrain the model, or only Alert (condition and Event)."""
    cooldown: Duration = "6h"
    """At most one retrain per cooldown."""
    budget: Budget = Field(default_factory=Budget)
    """Limits on retraining."""
    retrain_priority_class: str | None = Field(
        default=None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """Kueue WorkloadPriorityClass of the retrains this policy starts (their training.workloadPriorityClass, in place
    of the model's), e.g. one above routine runs so a drifted model's retrain is admitted first."""
    utilization: UtilizationRule | None = None
    """Idle-GPU rule for the serving pods."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.trigger) || !has(self.trigger.minFailingChecks) || self.trigger.minFailingChecks <= "
                    "size(self.checks)",
                    "trigger.minFailingChecks cannot exceed the number of checks",
                    ".trigger.minFailingChecks",
                ),
            ]
        }
    }


class CheckStatus(ApiModel):
    """The last value of one check."""

    name: str = Field(max_length=63)
    """The check."""
    value: float | None = None
    """Its last value (absent when it could not be evaluated)."""
    feature: str | None = Field(default=None, max_length=128)
    """For built-in statistics: the feature with the highest value."""
    sustained_value: float | None = None
    """The lowest value over trigger.for (the check breaches for the trigger only when this is above threshold)."""
    breaching: bool = False
    """Whether the value is above the threshold."""
    message: str | None = Field(default=None, max_length=1024)
    """Why there is no value, when there is none."""


class DriftPolicyStatus(ApiModel):
    """The observed state of a drift policy."""

    observed_generation: int | None = None
    """The .metadata.generation this status was computed from."""
    conditions: Conditions = Field(default_factory=list)
    """Evaluated, DriftDetected, BudgetExhausted."""
    last_evaluation_time: Timestamp | None = None
    """When the checks last ran."""
    checks: list[CheckStatus] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Per-check values."""
    breaching_since: Timestamp | None = None
    """Since when the trigger's condition holds."""
    last_triggered_time: Timestamp | None = None
    """When the last retrain was triggered."""
    retrains_this_week: int | None = Field(default=None, ge=0)
    """Drift retrains in the last 7 days."""
    gpu_hours_this_month: float | None = Field(default=None, ge=0)
    """GPU-hours of the model's training this calendar month."""
    failed_evaluations: int | None = Field(default=None, ge=0)
    """Evaluations failed in a row (Prometheus down, no data, NaN); the next one backs off exponentially."""
    suppressed: str | None = Field(default=None, max_length=1024)
    """Why the last detected drift did not retrain (cooldown, budget, a run in progress), while that holds."""
    gpu_idle_since: Timestamp | None = None
    """Since when the serving GPUs have been idle by the utilization rule."""


class DriftPolicy(ApiModel):
    """Watches a model's drift and GPU use in Prometheus and acts."""

    api_version: Literal["modelfleet.io/v1alpha1"] = "modelfleet.io/v1alpha1"
    kind: Literal["DriftPolicy"] = "DriftPolicy"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: DriftPolicySpec
    status: DriftPolicyStatus = Field(default_factory=DriftPolicyStatus)

    model_config = {"extra": "ignore"}
