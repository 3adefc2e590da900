"""GPU utilisation and request activity from Prometheus: the PromQL (pure) and its readers.

GPU series come from NVIDIA's DCGM exporter with its pod mapping on (labels `namespace`, `pod`).
`DCGM_FI_PROF_GR_ENGINE_ACTIVE` (0-1, valid on MIG slices) is preferred; `DCGM_FI_DEV_GPU_UTIL` (0-100) is the
fallback when the profiling metrics are not collected. Request activity comes from the model server's own counters.
A reader returns None for "unknown" (no series, NaN, Prometheus unavailable): callers never act on unknown."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

from modelfleet.errors import PrometheusUnavailable

GPU_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"


def _literal(name: str) -> str:
    """A Kubernetes name as a regex inside a PromQL string (names hold only [a-z0-9.-]; '.' is the one to escape)."""
    return name.replace(".", "\\\\.")


def serving_pods(model: str) -> str:
    """Pods of the model's Deployment: <deployment>-<pod-template-hash>-<suffix>."""
    return f"{_literal(model)}-[a-z0-9]+-[a-z0-9]+"


def job_pods(job: str) -> str:
    return f"{_literal(job)}-[a-z0-9]+"


def gpu_percent_query(namespace: str, pod_regex: str, span: str, *, over: str = "avg", across: str = "avg") -> str:
    """GPU utilisation in percent of the matching pods over `span`: `over` aggregates each GPU's samples in time,
    `across` aggregates the GPUs. Profiling metric first, device utilisation as the fallback."""
    sel = f'namespace="{namespace}",pod=~"{pod_regex}"'
    active = f"{across}({over}_over_time({GPU_ACTIVE}{{{sel}}}[{span}])) * 100"
    util = f"{across}({over}_over_time({GPU_UTIL}{{{sel}}}[{span}]))"
    return f"({active}) or ({util})"


def gpu_coverage_query(namespace: str, pod_regex: str, span: str, step: str) -> str:
    """How many subquery steps over `span` had GPU series for the matching pods."""
    sel = f'namespace="{namespace}",pod=~"{pod_regex}"'
    return f"count_over_time((max({GPU_ACTIVE}{{{sel}}}) or max({GPU_UTIL}{{{sel}}}))[{span}:{step}])"


LAST_REQUEST_SERIES = (
    "modelfleet_server_last_request_timestamp_seconds|modelfleet_gateway_last_request_timestamp_seconds"
)


def namespace_queries(namespace: str) -> dict[str, str]:
    """The request-activity queries of every model in a namespace, each answered per `model` label."""
    sel = f'namespace="{namespace}"'
    return {
        "scraped": f"count by (model) (modelfleet_server_model_info{{{sel}}})",
        "rate": f"sum by (model) (rate(modelfleet_server_requests_total{{{sel}}}[5m]))",
        # The servers' last request, or the gateway's (which also counts requests it held while the model was at
        # zero, and runs in the models' namespace).
        "last": f'max by (model) ({{__name__=~"{LAST_REQUEST_SERIES}",{sel}}})',
    }


def namespace_gpu_query(namespace: str, span: str = "10m") -> str:
    """Each serving pod's GPU utilisation in percent over `span` (profiling metric first, as gpu_percent_query)."""
    sel = f'namespace="{namespace}"'
    active = f"avg by (pod) (avg_over_time({GPU_ACTIVE}{{{sel}}}[{span}])) * 100"
    util = f"avg by (pod) (avg_over_time({GPU_UTIL}{{{sel}}}[{span}]))"
    return f"({active}) or ({util})"


def _one(prometheus: Any, expr: str, at: datetime.datetime | None = None) -> float | None:
    samples = prometheus.query(expr, at=at)
    if not samples or math.isnan(samples[0].value) or math.isinf(samples[0].value):
        return None
    return float(samples[0].value)


@dataclass(frozen=True)
class Activity:
    """The serving pods as Prometheus sees them. `scraped` False means no evidence either way."""

    scraped: bool
    request_rate: float | None = None
    last_request: datetime.datetime | None = None
    gpu_percent: float | None = None
    error: str | None = None


RATE_CHANGE = 0.25  # a request rate that moved by a quarter (or to or from zero) is worth writing down
GPU_CHANGE = 5.0  # points of GPU utilisation


def significant(before: Activity | None, after: Activity) -> bool:
    """Whether `after` differs from `before` enough to be recorded (and to queue the model's pass): it started or
    stopped being scraped, got its first request, its rate moved by a quarter or crossed zero, its GPU use moved
    by 5 points. Anything less waits for a pass that happens anyway: a fleet of steady models writes nothing."""
    if before is None or before.scraped != after.scraped:
        return True
    if (before.last_request is None) != (after.last_request is None):
        return True
    old, new = before.request_rate, after.request_rate
    if (old is None) != (new is None) or (old is not None and new is not None and (old == 0) != (new == 0)):
        return True
    if old and new and abs(new - old) / old > RATE_CHANGE:
        return True
    a, b = before.gpu_percent, after.gpu_percent
    if (a is None) != (b is None):
        return True
    return a is not None and b is not None and abs(a - b) >= GPU_CHANGE


def _by(samples: Any, label: str) -> dict[str, float]:
    return {
        str(x.labels.get(label)): float(x.value)
        for x in samples
        if x.labels.get(label) and not (math.isnan(x.value) or math.isinf(x.value))
    }


def namespace_activity(prometheus: Any, namespace: str, gpu_pods: dict[str, str]) -> dict[str, Activity]:
    """Every scraped model's activity in the namespace, from three queries (four when `gpu_pods`, pod -> model,
    names GPU-serving pods). Raises PrometheusUnavailable; a model without series is simply absent."""
    q = namespace_queries(namespace)
    scraped = _by(prometheus.query(q["scraped"]), "model")
    rates = _by(prometheus.query(q["rate"]), "model")
    last = _by(prometheus.query(q["last"]), "model")
    gpu: dict[str, list[float]] = {}
    if gpu_pods:
        for pod, percent in _by(prometheus.query(namespace_gpu_query(namespace)), "pod").items():
            if pod in gpu_pods:
                gpu.setdefault(gpu_pods[pod], []).append(percent)
    return {
        model: Activity(
            True,
            request_rate=rates.get(model),
            last_request=datetime.datetime.fromtimestamp(last[model], datetime.UTC) if last.get(model) else None,
            gpu_percent=sum(gpu[model]) / len(gpu[model]) if gpu.get(model) else None,
        )
        for model, count in scraped.items()
        if count >= 1
    }


def read_training_gpu_percent(
    prometheus: Any, namespace: str, job: str, start: datetime.datetime, end: datetime.datetime
) -> float | None:
    """Average GPU utilisation of a finished run's pods over the run, read once at completion."""
    seconds = max(1, int((end - start).total_seconds()))
    try:
        return _one(prometheus, gpu_percent_query(namespace, job_pods(job), f"{seconds}s"), at=end)
    except PrometheusUnavailable:
        return None
