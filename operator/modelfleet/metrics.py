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
DRIFT_EVALUATIONS = Counter(
    "modelfleet_drift_evaluations_total",
    "DriftPolicy evaluations by result (ok, alert, retrain, suppressed, unavailable, model-missing).",
    ["namespace", "model", "result"],
)
DRIFT_BREACHES = Counter(
    "modelfleet_drift_breaches_total",
    "Evaluations that found drift sustained for trigger.for.",
    ["namespace", "model"],
)
RETRAINS_TRIGGERED = Counter(
    "modelfleet_retrains_triggered_total",
    "TrainingJobs created by DriftPolicies.",
    ["namespace", "model"],
)
RETRAINS_SUPPRESSED = Counter(
    "modelfleet_retrains_suppressed_total",
    "Detected drift that did not retrain, by reason (cooldown, budget, active-run, prometheus-unavailable).",
    ["namespace", "model", "reason"],
)
GPU_HOURS = Counter(
    "modelfleet_gpu_hours",
    "GPU-hours allocated to models, by phase (training: at each run's end; serving: as the operator observes it).",
    ["namespace", "model", "phase"],
)
