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


def request_queries(namespace: str, model: str) -> dict[str, str]:
    sel = f'namespace="{namespace}",model="{model}"'
    return {
        "scraped": f"count(modelfleet_server_model_info{{{sel}}})",
        "rate": f"sum(rate(modelfleet_server_requests_total{{{sel}}}[5m]))",
        "last": f"max(modelfleet_server_last_request_timestamp_seconds{{{sel}}})",
    }


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


def read_activity(prometheus: Any, namespace: str, model: str, gpu: bool) -> Activity:
    try:
        q = request_queries(namespace, model)
        scraped = (_one(prometheus, q["scraped"]) or 0) >= 1
        if not scraped:
            return Activity(False, error="Prometheus has no series of the model's server pods")
        last = _one(prometheus, q["last"])
        gpu_percent = _one(prometheus, gpu_percent_query(namespace, serving_pods(model), "10m")) if gpu else None
        return Activity(
            True,
            request_rate=_one(prometheus, q["rate"]),
            last_request=datetime.datetime.fromtimestamp(last, datetime.UTC) if last else None,
            gpu_percent=gpu_percent,
        )
    except PrometheusUnavailable as e:
        return Activity(False, error=str(e))


def read_training_gpu_percent(
    prometheus: Any, namespace: str, job: str, start: datetime.datetime, end: datetime.datetime
) -> float | None:
    """Average GPU utilisation of a finished run's pods over the run, read once at completion."""
    seconds = max(1, int((end - start).total_seconds()))
    try:
        return _one(prometheus, gpu_percent_query(namespace, job_pods(job), f"{seconds}s"), at=end)
    except PrometheusUnavailable:
        return None
