"""Scale to zero when idle, and down to minReplicas while the serving GPUs idle (pure).

Evidence comes from Prometheus (the server's request counter and last-request time, read per namespace by
`namespace_activity`) and from
the model's DriftPolicies (their GpuIdle condition). No evidence means no change: a model is never scaled down because
Prometheus is down or has not scraped its pods yet.

While at zero no pod answers: a request to the model's Service fails (no endpoints), while one sent to the ModelFleet
gateway is held until a pod is ready (docs/traffic.md). Serving scales up when the `modelfleet.io/scale-up` annotation
gets a new value (any value, e.g. a timestamp; the gateway sets one when it holds a request), or when the spec asks
for replicas (minReplicas > 0)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from modelfleet.api.v1alpha1.common import parse_duration
from modelfleet.api.v1alpha1.mlmodel import MLModelSpec, MLModelStatus, Utilization
from modelfleet.reconcilers.outcome import Event
from modelfleet.reconcilers.utilization import Activity, significant
from modelfleet.status.conditions import TRUE, get_condition, parse_time, rfc3339

SCALE_UP_ANNOTATION = "modelfleet.io/scale-up"
GPU_ACCRUAL_SECONDS = 3600.0  # serving GPU-seconds are written down at least this often while GPUs serve


def gpu_idle_scale_down(policies: Sequence[dict[str, Any]]) -> str | None:
    """The name of a DriftPolicy whose utilization rule says ScaleDown and whose GpuIdle is True, if any."""
    for p in policies:
        rule = (p.get("spec") or {}).get("utilization") or {}
        conditions = (p.get("status") or {}).get("conditions") or []
        idle: dict[str, Any] = next((c for c in conditions if c.get("type") == "GpuIdle"), {})
        if rule.get("action") == "ScaleDown" and idle.get("status") == TRUE:
            return str(p["metadata"]["name"])
    return None


def recorded(u: Utilization) -> Activity:
    """The activity status.utilization holds, as a reading (to tell whether a new one says anything new)."""
    return Activity(
        True,
        request_rate=u.request_rate,
        last_request=parse_time(u.last_request_time),
        gpu_percent=u.gpu_percent,
    )


def record_activity(
    status: MLModelStatus, activity: Activity | None, now: datetime.datetime, serving_gpus: int = 0
) -> float:
    """Copies a reading into status.utilization when it says something new (`significant`), or when serving GPUs
    have run an hour since the last record; returns the serving GPU-seconds added. A steady model writes nothing."""
    if activity is None:
        return 0.0
    u = status.utilization = status.utilization or Utilization()
    previous = parse_time(u.observed_time)
    news = previous is None or (activity.scraped and significant(recorded(u), activity))
    accrual_due = bool(serving_gpus and previous and (now - previous).total_seconds() >= GPU_ACCRUAL_SECONDS)
    if not (news or accrual_due):
        return 0.0
    added = max(0.0, (now - previous).total_seconds()) * serving_gpus if previous else 0.0
    if added:
        u.serving_gpu_seconds = round((u.serving_gpu_seconds or 0.0) + added, 3)
    u.observed_time = rfc3339(now)
    if activity.scraped:
        u.request_rate = None if activity.request_rate is None else round(activity.request_rate, 4)
        if activity.last_request is not None:
            u.last_request_time = rfc3339(activity.last_request)
        if activity.gpu_percent is not None:
            u.gpu_percent = round(activity.gpu_percent, 2)
    return added


def idle_since(status: MLModelStatus, activity: Activity | None) -> datetime.datetime | None:
    """The moment a serving model's idleness counts from: its last request (the reading's, which may be newer than
    the recorded one), its last scale-up, or when it started serving; None while it is not serving."""
    u = status.utilization or Utilization()
    serving_cond = get_condition(status.conditions, "Serving")
    serving_since = (
        parse_time(serving_cond.last_transition_time) if serving_cond and serving_cond.status == TRUE else None
    )
    if serving_since is None:
        return None
    seen = activity.last_request if activity is not None and activity.scraped else None
    moments = (parse_time(u.last_request_time), seen, parse_time(u.active_since), serving_since)
    return max(t for t in moments if t is not None)


def idle_deadline(spec: MLModelSpec, status: MLModelStatus, activity: Activity | None) -> datetime.datetime | None:
    """When a model that may scale to zero would become idle, if nothing happens before (None: not applicable)."""
    u = status.utilization or Utilization()
    if spec.serving.min_replicas > 0 or u.scaled_to_zero_time:
        return None
    since = idle_since(status, activity)
    return since + datetime.timedelta(seconds=parse_duration(spec.serving.idle_after)) if since else None


def pinned_replicas(
    spec: MLModelSpec,
    status: MLModelStatus,
    *,
    name: str,
    activity: Activity | None,
    policies: Sequence[dict[str, Any]],
    scale_up_request: str | None,
    now: datetime.datetime,
    events: list[Event],
) -> int | None:
    """None: serve as the spec says. 0: scaled to zero. n: pinned to minReplicas while GPUs idle."""
    serving = spec.serving
    u = status.utilization = status.utilization or Utilization()
    if scale_up_request and scale_up_request != u.scale_up_request:
        u.scale_up_request = scale_up_request
        u.active_since = rfc3339(now)
        if u.scaled_to_zero_time:
            events.append(Event("Normal", "ScaledUp", f"scale-up requested ({SCALE_UP_ANNOTATION}); serving again"))
            u.scaled_to_zero_time = None
    gpu_policy = gpu_idle_scale_down(policies)
    if serving.min_replicas > 0:
        u.scaled_to_zero_time = None
        if gpu_policy and serving.max_replicas > serving.min_replicas:
            return serving.min_replicas
        return None
    if u.scaled_to_zero_time:
        return 0
    if activity is None or not activity.scraped:
        return None  # no evidence either way: keep serving
    last = idle_since(status, activity)
    if last is None:
        return None  # not serving yet (first rollout): nothing to be idle from
    idle_after = parse_duration(serving.idle_after)
    idle = (now - last).total_seconds() >= idle_after
    if not idle and not gpu_policy:
        return None
    why = f"its GPUs are idle (DriftPolicy {gpu_policy})" if gpu_policy else f"no requests for {serving.idle_after}"
    u.scaled_to_zero_time = rfc3339(now)
    events.append(
        Event(
            "Normal",
            "ScaledToZero",
            f"scaled to zero: {why}; requests to the gateway scale it up, direct ones fail until then: "
            f"kubectl annotate mlm {name} {SCALE_UP_ANNOTATION}=$(date +%s) --overwrite",
        )
    )
    return 0
