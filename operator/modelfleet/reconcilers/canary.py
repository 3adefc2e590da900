"""Canary rollouts (serving.rollout.strategy Canary): the new version runs in a Deployment of its own beside the
serving one and gets each step's share of the traffic through the ModelFleet gateway (which reads the share from
status.canary); after each interval the operator reads both versions' figures from the gateway's series and goes to
the next step, waits (too few requests, or no reading), or rolls back. Passing the last step (100 %) promotes: the
model's Deployment rolls to the new version, then the canary's Deployment goes.

The analysis follows Flagger and Argo Rollouts: an error ratio and a latency bound per interval, with a minimum of
requests below which there is no verdict. The error ratio is compared with the serving version's over the same
interval (answers the client caused, e.g. a malformed request, fail both alike), so `maxErrorRate` is the most the
new version may add. Pure, apart from `read_canary`, which takes the Prometheus port."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelfleet.api.v1alpha1.common import parse_duration
from modelfleet.api.v1alpha1.mlmodel import CanaryAnalysis, CanaryStatus, MLModelStatus, Rollout, TrainedVersion
from modelfleet.clients.ports import PrometheusPort
from modelfleet.reconcilers.outcome import Event
from modelfleet.reconcilers.serving import rollout_failure
from modelfleet.status.conditions import TRUE, ConditionEditor, parse_time, rfc3339

ERROR_CODES = 'code=~"4..|5..",code!="404"'  # 404: a model name the client got wrong, not the version's fault


@dataclass(frozen=True)
class VersionFigures:
    requests: float
    errors: float
    p99_ms: float | None

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class CanaryReading:
    """Each version's figures over the last interval, by version number (as text, the label's value)."""

    by_version: dict[str, VersionFigures]

    def of(self, version: int) -> VersionFigures:
        return self.by_version.get(str(version), VersionFigures(0.0, 0.0, None))


def canary_queries(namespace: str, model: str, window: str) -> dict[str, str]:
    sel = f'namespace="{namespace}",model="{model}",version!=""'
    return {
        "requests": f"sum by (version) (increase(modelfleet_gateway_requests_total{{{sel}}}[{window}]))",
        "errors": f"sum by (version) (increase(modelfleet_gateway_requests_total{{{sel},{ERROR_CODES}}}[{window}]))",
        "p99": (
            "histogram_quantile(0.99, sum by (version, le) "
            f"(rate(modelfleet_gateway_request_seconds_bucket{{{sel}}}[{window}])))"
        ),
    }


def read_canary(prometheus: PrometheusPort, namespace: str, model: str, window: str) -> CanaryReading:
    """Three queries (raises what the port raises: the caller treats it as no reading)."""
    answers = {key: prometheus.query(expr) for key, expr in canary_queries(namespace, model, window).items()}

    def by_version(key: str) -> dict[str, float]:
        return {
            s.labels.get("version", ""): s.value
            for s in answers[key]
            if not (math.isnan(s.value) or math.isinf(s.value))
        }

    requests, errors, p99 = by_version("requests"), by_version("errors"), by_version("p99")
    return CanaryReading(
        {
            v: VersionFigures(requests.get(v, 0.0), errors.get(v, 0.0), p99[v] * 1000 if v in p99 else None)
            for v in set(requests) | set(p99)
        }
    )


def judge(analysis: CanaryAnalysis, reading: CanaryReading, trial: int, serving: int) -> tuple[str, str]:
    """("pass" | "fail" | "wait", the figures in words)."""
    new, old = reading.of(trial), reading.of(serving)
    p99 = "n/a" if new.p99_ms is None else f"{new.p99_ms:.1f} ms"
    words = (
        f"version {trial}: {new.requests:.0f} requests, error ratio {new.error_ratio:.1%} (version {serving}: "
        f"{old.error_ratio:.1%} of {old.requests:.0f}), p99 {p99}"
    )
    if new.requests < analysis.min_requests:
        return "wait", f"{words}; fewer than {analysis.min_requests} requests: no verdict yet"
    excess = new.error_ratio - old.error_ratio
    if excess > analysis.max_error_rate:
        return "fail", f"{words}; {excess:.1%} more errors than allowed ({analysis.max_error_rate:.1%})"
    if analysis.max_p99_ms is not None and new.p99_ms is not None and new.p99_ms > analysis.max_p99_ms:
        return "fail", f"{words}; p99 above {analysis.max_p99_ms:g} ms"
    return "pass", words


def step_due(canary: CanaryStatus, rollout: Rollout) -> datetime.datetime:
    started = parse_time(canary.step_start_time) or datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return started + datetime.timedelta(seconds=parse_duration(rollout.interval))


def promoted(canary: CanaryStatus, rollout: Rollout) -> bool:
    """It passed its last step: the model's Deployment rolls to it."""
    return canary.step >= len(rollout.steps)


def start(version: int, rollout: Rollout, now: datetime.datetime) -> CanaryStatus:
    return CanaryStatus(version=version, step=0, weight=rollout.steps[0], step_start_time=rfc3339(now))


def advance(canary: CanaryStatus, rollout: Rollout, verdict: str, words: str, now: datetime.datetime) -> CanaryStatus:
    """The canary after a verdict other than "fail": the next step on "pass" (or promoted after the last); a new
    interval on "wait"."""
    step = canary.step + 1 if verdict == "pass" else canary.step
    weight = rollout.steps[step] if step < len(rollout.steps) else 100
    return CanaryStatus(version=canary.version, step=step, weight=weight, step_start_time=rfc3339(now), message=words)


def plan_canary(
    status: MLModelStatus,
    c: ConditionEditor,
    events: list[Event],
    *,
    rollout: Rollout,
    target: TrainedVersion,
    serving: TrainedVersion,
    canary_deployment: dict[str, Any] | None,
    canary_pods: Sequence[dict[str, Any]],
    reading: CanaryReading | None,
    now: datetime.datetime,
) -> tuple[TrainedVersion, bool]:
    """One pass of a canary of `target` beside `serving`: sets status.canary (None once rolled back) and returns the
    version the model's Deployment serves now and whether the canary's Deployment is wanted. `reading`: the last
    interval's figures when a step is due (None: not due, or Prometheus gave none)."""
    canary = status.canary if status.canary is not None and status.canary.version == target.number else None
    if canary is None:
        canary = start(target.number, rollout, now)
        events.append(
            Event(
                "Normal",
                "CanaryStarted",
                f"version {target.number} gets {canary.weight}% of the gateway's traffic beside version "
                f"{serving.number}; analysis every {rollout.interval}",
            )
        )
    elif not promoted(canary, rollout):
        failure = rollout_failure(canary_deployment, canary_pods, target.number)
        verdict, words = None, ""
        if failure:
            verdict, words = "fail", f"its pods never became ready: {failure}"
        elif now >= step_due(canary, rollout):
            verdict, words = (
                judge(rollout.analysis, reading, target.number, serving.number)
                if reading is not None
                else ("wait", "no reading from Prometheus: no verdict yet")
            )
        if verdict == "fail":
            for v in status.versions:
                if v.number == target.number:
                    v.promotable, v.rejected_reason = False, f"canary failed at {canary.weight}%: {words}"
            message = (
                f"version {target.number} rolled back at {canary.weight}%: {words}; "
                f"version {serving.number} keeps serving"
            )
            events.append(Event("Warning", "CanaryFailed", message))
            c.set("Degraded", TRUE, "CanaryFailed", message)
            status.canary = None
            return serving, False
        if verdict is not None:
            after = advance(canary, rollout, verdict, words, now)
            if verdict == "pass" and promoted(after, rollout):
                events.append(
                    Event(
                        "Normal",
                        "CanaryPromoted",
                        f"version {target.number} passed its last step ({words}); the model's Deployment rolls to it",
                    )
                )
            elif verdict == "pass":
                events.append(
                    Event(
                        "Normal",
                        "CanaryStep",
                        f"version {target.number} passed at {canary.weight}% ({words}); now {after.weight}%",
                    )
                )
            canary = after
    status.canary = canary
    return (target if promoted(canary, rollout) else serving), True
