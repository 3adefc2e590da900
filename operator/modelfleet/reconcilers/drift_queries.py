"""Drift checks as PromQL (pure) and their readers: a check's value now, and its lowest value over `for` with how much
of that span data covers; the serving GPUs' peak for a utilization rule. Every failure becomes a reading with an error,
never an exception (the decision treats it as "cannot evaluate", never as "no drift")."""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelfleet.api.v1alpha1.common import parse_duration
from modelfleet.api.v1alpha1.driftpolicy import Check, DriftPolicy
from modelfleet.errors import PrometheusUnavailable
from modelfleet.reconcilers.utilization import gpu_coverage_query, gpu_percent_query, serving_pods


# --- PromQL
def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_alternatives(values: Sequence[str]) -> str:
    return "|".join(re.sub(r"([.*+?^${}()|\[\]\\])", r"\\\1", v) for v in values)


def subquery_step(for_seconds: float) -> float:
    """Resolution of the `for` subquery: a sixtieth of the span, between 1 s and 15 s. At or below the usual scrape
    intervals (15-60 s), so the subquery sees every sample and a dip between two steps cannot be missed (a coarser
    step aliased a value flapping at the scrape rate into "always breaching")."""
    return min(15.0, max(1.0, for_seconds / 60))


def _seconds(value: float) -> str:
    return f"{round(value)}s"


@dataclass(frozen=True)
class CheckQueries:
    name: str
    values: str  # an instant vector: per feature for built-in checks, the user's series for custom ones
    sustained: str | None  # min over `for` of the check's value; None when `for` is zero
    coverage: str | None  # how many subquery points had data
    points: int  # how many points a fully covered span has


def builtin_values(namespace: str, statistic: str, features: Sequence[str], model: str | None) -> str:
    """A built-in check's value per feature: across the model's pods, each pod's value weighted by the rows in its
    window. With `model` None, the same for every model of the namespace at once (`by (model, feature)`)."""
    selector = f"namespace={_quote(namespace)}" + (f",model={_quote(model)}" if model is not None else "")
    drift_selector = f"{selector},statistic={_quote(statistic)}"
    if features:
        drift_selector += f",feature=~{_quote(_regex_alternatives(features))}"
    drift = f"modelfleet_feature_drift{{{drift_selector}}}"
    rows = f"modelfleet_drift_window_rows{{{selector}}}"
    by = "feature" if model is not None else "model, feature"
    return (
        f"sum by ({by}) ({drift} * on (instance) group_left {rows})"
        f" / sum by ({by}) (({drift} * 0 + 1) * on (instance) group_left {rows})"
    )


def span_queries(name: str, values: str, for_seconds: float, *, per_model: bool = False) -> CheckQueries:
    """The check's value now, and its lowest value over `for` with the span's coverage (per model when asked)."""
    if for_seconds <= 0:
        return CheckQueries(name, values, None, None, 0)
    step = subquery_step(for_seconds)
    span = f"[{_seconds(for_seconds)}:{_seconds(step)}]"
    worst = f"max by (model) ({values})" if per_model else f"max({values})"
    return CheckQueries(
        name,
        values,
        sustained=f"min_over_time(({worst}){span})",
        coverage=f"count_over_time(({worst}){span})",
        points=int(for_seconds // step),
    )


def custom_values(query: str, *, namespace: str, model: str | None, window: str) -> str:
    """A custom check's PromQL with its variables filled in (`$model` only when a model is given: a query without it
    is a fleet query, read once for every policy of the namespace)."""
    filled = query.replace("$namespace", _quote(namespace)[1:-1]).replace("$window", window)
    return filled.replace("$model", _quote(model)[1:-1]) if model is not None else filled


def check_queries(check: Check, *, namespace: str, model: str, for_seconds: float, window: str) -> CheckQueries:
    if check.statistic is not None:
        values = builtin_values(namespace, check.statistic, check.features or (), model)
    else:
        assert check.query is not None
        values = custom_values(check.query, namespace=namespace, model=model, window=window)
    return span_queries(check.name, values, for_seconds)


def policy_queries(policy: DriftPolicy, namespace: str) -> list[CheckQueries]:
    for_seconds = parse_duration(policy.spec.trigger.for_)
    model = policy.spec.model_ref.name
    return [
        check_queries(c, namespace=namespace, model=model, for_seconds=for_seconds, window=policy.spec.window)
        for c in policy.spec.checks
    ]


# --- readings
@dataclass(frozen=True)
class CheckReading:
    name: str
    value: float | None = None
    feature: str | None = None
    sustained: float | None = None  # None when the span is not fully covered (or `for` is zero: use value)
    error: str | None = None
    error_reason: str = "PrometheusUnavailable"


def _usable(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def read_check(prometheus: Any, queries: CheckQueries, now: datetime.datetime) -> CheckReading:
    """Runs one check's queries. Every failure becomes a reading with an error, never an exception."""
    try:
        samples = prometheus.query(queries.values, at=now)
        if not samples:
            return CheckReading(queries.name, error="the query returned no data", error_reason="NoData")
        bad = [s for s in samples if not _usable(s.value)]
        if bad:
            return CheckReading(
                queries.name,
                error=f"the query returned {bad[0].value} {bad[0].labels or ''}",
                error_reason="NotANumber",
            )
        worst = max(samples, key=lambda s: s.value)
        sustained = None
        if queries.sustained is not None and queries.coverage is not None:
            covered = prometheus.query(queries.coverage, at=now)
            lowest = prometheus.query(queries.sustained, at=now)
            enough = bool(covered) and covered[0].value >= queries.points
            if enough and lowest and _usable(lowest[0].value):
                sustained = lowest[0].value
        else:
            sustained = worst.value
        return CheckReading(queries.name, worst.value, worst.labels.get("feature"), sustained)
    except PrometheusUnavailable as e:
        return CheckReading(queries.name, error=str(e))


@dataclass(frozen=True)
class GpuReading:
    """The serving GPUs' highest utilisation over the rule's `for`, and whether data covers that whole span."""

    peak_percent: float | None = None
    covered: bool = False
    error: str | None = None


def read_gpu_idle(
    prometheus: Any, namespace: str, model: str, for_seconds: float, now: datetime.datetime
) -> GpuReading:
    span, step = _seconds(for_seconds), subquery_step(for_seconds)
    pods = serving_pods(model)
    try:
        peak = prometheus.query(gpu_percent_query(namespace, pods, span, over="max", across="max"), at=now)
        covered = prometheus.query(gpu_coverage_query(namespace, pods, span, _seconds(step)), at=now)
    except PrometheusUnavailable as e:
        return GpuReading(error=str(e))
    if not peak or not _usable(peak[0].value):
        return GpuReading(error="no GPU series (DCGM exporter) for the model's serving pods")
    return GpuReading(peak[0].value, bool(covered) and covered[0].value >= int(for_seconds // step))
