"""Drift checks read per namespace, not per policy: the checks of every policy in a namespace that share a statistic,
feature list and `for` span (a fleet's policies come from one template) are one group, answered by one set of
queries `by (model)`. A policy that comes due uses its group's answer while that is fresh (`FRESH_SECONDS`, at most a
quarter of its interval), so 10,000 policies cost a few queries per group per interval, not 10,000.

The queries are the per-policy ones (`check_queries`) with `by (model)` added at every aggregation; the answer for
one model is what the per-policy query gives for it (tested side by side on a real Prometheus).

Custom PromQL joins a group when it does not name `$model` (a fleet query): policies with the same text, window and
span share one answer, and each takes the series labelled with its model, or, when no series carries a `model` label
(a query about something else, such as a shared upstream), the whole answer. A query that names `$model` is its
own query per policy: its text differs per model, so there is nothing to share."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelfleet.api.v1alpha1.driftpolicy import Check
from modelfleet.errors import PrometheusUnavailable
from modelfleet.reconcilers.drift_queries import (
    CheckQueries,
    CheckReading,
    _usable,
    builtin_values,
    custom_values,
    span_queries,
)

FRESH_SECONDS = 30.0


@dataclass(frozen=True)
class GroupKey:
    namespace: str
    url: str
    statistic: str | None  # a built-in statistic, or None for a fleet query
    features: tuple[str, ...]
    for_seconds: float
    query: str | None = None  # a fleet query's PromQL, its variables filled in


def group_queries(key: GroupKey) -> CheckQueries:
    """The check's queries for every model of the namespace at once."""
    if key.query is not None:
        return span_queries("", key.query, key.for_seconds, per_model=True)
    assert key.statistic is not None
    values = builtin_values(key.namespace, key.statistic, key.features, None)
    return span_queries("", values, key.for_seconds, per_model=True)


def read_group(prometheus: Any, queries: CheckQueries, now: datetime.datetime) -> dict[str, CheckReading]:
    """model -> reading (name left empty; the policy's check name goes on when it is handed out). A model without
    series is absent. Raises PrometheusUnavailable."""
    by_model: dict[str, list[Any]] = {}
    for sample in prometheus.query(queries.values, at=now):
        by_model.setdefault(str(sample.labels.get("model", "")), []).append(sample)
    sustained: dict[str, float] = {}
    covered: dict[str, float] = {}
    if queries.sustained is not None and queries.coverage is not None:
        covered = {str(s.labels.get("model", "")): s.value for s in prometheus.query(queries.coverage, at=now)}
        sustained = {str(s.labels.get("model", "")): s.value for s in prometheus.query(queries.sustained, at=now)}
    out: dict[str, CheckReading] = {}
    for model, samples in by_model.items():
        bad = [s for s in samples if not _usable(s.value)]
        if bad:
            labels = {k: v for k, v in bad[0].labels.items() if k != "model"}
            out[model] = CheckReading(
                "", error=f"the query returned {bad[0].value} {labels or ''}", error_reason="NotANumber"
            )
            continue
        worst = max(samples, key=lambda s: s.value)
        held: float | None
        if queries.sustained is None:
            held = worst.value
        else:
            lowest = sustained.get(model)
            enough = covered.get(model, 0) >= queries.points
            held = lowest if enough and lowest is not None and _usable(lowest) else None
        out[model] = CheckReading("", worst.value, worst.labels.get("feature"), held)
    return out


class GroupReadings:
    """The latest answer per group, shared by every policy's pass (thread-safe; one query set in flight per group)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._group_locks: dict[GroupKey, threading.Lock] = {}
        self._answers: dict[GroupKey, tuple[float, dict[str, CheckReading] | str]] = {}
        self.queries_run = 0

    def _group_lock(self, key: GroupKey) -> threading.Lock:
        with self._lock:
            return self._group_locks.setdefault(key, threading.Lock())

    def read(
        self, key: GroupKey, model: str, name: str, prometheus: Any, now: datetime.datetime, fresh: float
    ) -> CheckReading:
        with self._group_lock(key):  # a burst of due policies waits for one answer instead of asking again
            at, answer = self._answers.get(key, (float("-inf"), {}))
            if self._clock() - at > fresh:
                try:
                    answer = read_group(prometheus, group_queries(key), now)
                except PrometheusUnavailable as e:
                    answer = str(e)
                self.queries_run += 1
                self._answers[key] = (self._clock(), answer)
        if isinstance(answer, str):
            return CheckReading(name, error=answer)
        found = answer.get(model)
        if found is None and key.query is not None and set(answer) == {""}:
            found = answer[""]  # a fleet query whose series name no model: the same answer for every policy
        if found is None:
            return CheckReading(name, error="the query returned no data", error_reason="NoData")
        return CheckReading(name, found.value, found.feature, found.sustained, found.error, found.error_reason)


def group_of(check: Check, *, namespace: str, url: str, for_seconds: float, window: str) -> GroupKey | None:
    """The group a check reads through: built-in checks and fleet queries; None for custom PromQL that names
    `$model` (each policy asks its own)."""
    if check.statistic is not None:
        return GroupKey(namespace, url, check.statistic, tuple(sorted(check.features or ())), for_seconds)
    if check.query is None or "$model" in check.query:
        return None
    query = custom_values(check.query, namespace=namespace, model=None, window=window)
    return GroupKey(namespace, url, None, (), for_seconds, query)


def freshness(interval_seconds: float) -> float:
    return min(FRESH_SECONDS, interval_seconds / 4)
