"""The operator's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILE_TOTAL = Counter(
    "modelfleet_reconcile_total",
    "Reconciliations by kind and result (success, invalid, retry, error).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "modelfleet_reconcile_seconds",
    "Time spent in one reconciliation.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
