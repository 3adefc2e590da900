"""The operator's own Prometheus metrics."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_TOTAL = Counter(
    "modelfleet_reconcile_total",
    "Reconciliations by kind and result (success, unchanged: inputs as the last pass found them, so not run; "
    "invalid, waiting, conflict, retry, error, gone).",
    ["kind", "result"],
)
API_REQUESTS = Counter(
    "modelfleet_api_requests_total",
    "Requests the operator's Kubernetes client sent, by verb, resource and HTTP code (watches are Kopf's, not here).",
    ["verb", "resource", "code"],
)
WORKQUEUE_DEPTH = Gauge("modelfleet_workqueue_depth", "Keys waiting in the reconcile queue (due now or later).")
WORKQUEUE_RETRIES = Counter(
    "modelfleet_workqueue_retries_total", "Passes scheduled again after an error, by kind and cause.", ["kind", "cause"]
)
CACHE_OBJECTS = Gauge("modelfleet_cache_objects", "Objects kept in the watch-fed cache, by kind.", ["kind"])
CACHE_PRUNED = Counter(
    "modelfleet_cache_pruned_total",
    "Cached objects found gone by the membership check (a deletion the watch never delivered), by kind.",
    ["kind"],
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
OPERATOR_INFO = Gauge("modelfleet_operator_info", "The running operator (value 1).", ["version"])
TRAININGJOBS_FINISHED = Counter(
    "modelfleet_trainingjobs_finished",
    "TrainingJobs that reached an end, by result (succeeded, failed, cachehit).",
    ["namespace", "model", "result"],
)
DRIFT_DETECTED = Gauge(
    "modelfleet_drift_detected",
    "1 while a DriftPolicy sees drift sustained for its trigger.for, 0 otherwise (absent before its first evaluation).",
    ["namespace", "policy", "model"],
)
BUDGET_EXHAUSTED = Gauge(
    "modelfleet_budget_exhausted",
    "1 while a DriftPolicy's retraining budget is spent.",
    ["namespace", "policy", "model"],
)
GPU_IDLE = Gauge(
    "modelfleet_gpu_idle",
    "1 while a DriftPolicy's utilization rule finds the model's serving GPUs idle.",
    ["namespace", "policy", "model"],
)
MODEL_INFO = Gauge(
    "modelfleet_model_info",
    "One series per MLModel (value 1) with its owner team and phase; for dashboards and joins.",
    ["namespace", "model", "team", "risk_class", "phase"],
)
SERVING_VERSION = Gauge(
    "modelfleet_model_serving_version",
    "The version number an MLModel serves (absent before the first one).",
    ["namespace", "model"],
)


class ObjectSeries:
    """The series some gauges export for each object (namespace, name): when the object's labels change (a new phase,
    a new modelRef) the series of its previous labels are removed, and all of them go when the object is deleted,
    so nothing outlives what it describes (an alert on a stale series would keep firing)."""

    def __init__(self, *gauges: Gauge) -> None:
        self.gauges = gauges
        self._labels: dict[tuple[str, str], tuple[str, ...]] = {}

    def track(self, key: tuple[str, str], labels: tuple[str, ...]) -> tuple[str, ...]:
        """Record the object's labels (removing its series under other labels) and return them, for .labels()."""
        if self._labels.get(key, labels) != labels:
            self.forget(key)
        self._labels[key] = labels
        return labels

    def forget(self, key: tuple[str, str]) -> None:
        labels = self._labels.pop(key, None)
        if labels is not None:
            for gauge in self.gauges:
                with contextlib.suppress(KeyError):  # a gauge this object never set
                    gauge.remove(*labels)
