"""DriftPolicy: PromQL for each check (drift_queries.py, pure) -> read Prometheus (per namespace for built-in checks:
drift_batch.py) -> decide (pure, here) -> create a drift TrainingJob.

Hysteresis lives in Prometheus, not in operator memory: a check breaches "for" `trigger.for` when the lowest value of
the check over that span (a subquery) is above the threshold and the span is fully covered by data. So an operator
restart loses nothing, and the behaviour can be tested with history written into Prometheus' TSDB. Cooldown and the
budgets are judged from the policy's status and the model's TrainingJobs, with an injected clock.

Safety rule: if any check cannot be evaluated (Prometheus down or slow, an empty answer, NaN or ±Inf), the policy is
`Evaluated=Unknown` with the reason, backs off, and never retrains on that evaluation."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelfleet.api.v1alpha1.common import parse_duration
from modelfleet.api.v1alpha1.driftpolicy import Check, CheckStatus, DriftPolicy, DriftPolicyStatus
from modelfleet.api.v1alpha1.mlmodel import MLModel
from modelfleet.builders.training import LABEL_MODEL, LABEL_VERSION, training_fingerprint
from modelfleet.clients.ports import Cluster, PrometheusFor
from modelfleet.config import OperatorConfig
from modelfleet.errors import DependencyNotReady
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.drift_batch import GroupReadings, freshness, group_of
from modelfleet.reconcilers.drift_queries import (
    CheckQueries,
    CheckReading,
    GpuReading,
    policy_queries,
    read_check,
    read_gpu_idle,
)
from modelfleet.reconcilers.mlmodel import desired_model_trainingjob
from modelfleet.status.conditions import FALSE, TRUE, UNKNOWN, ConditionEditor, get_condition, parse_time, rfc3339

MAX_BACKOFF_SECONDS = 600.0
WEEK = datetime.timedelta(days=7)


# --- decision
@dataclass(frozen=True)
class RetrainHistory:
    """What the budgets and the active-run rule need, read from the model's TrainingJobs."""

    drift_runs: Sequence[datetime.datetime] = ()  # creation times of the model's drift TrainingJobs
    active_run: str | None = None
    gpu_hours_this_month: float = 0.0
    model_found: bool = True


@dataclass
class PolicyPlan:
    status: DriftPolicyStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retrain: bool = False
    retrain_message: str = ""
    outcome: str = "not-due"  # for the operator's metrics: ok, unavailable, retrain, suppressed-<why>, alert


def _wait(spec: Any, status: DriftPolicyStatus) -> float:
    """Every `interval`; after failures every interval x 2^failures (at most 10 min)."""
    wait = parse_duration(spec.interval)
    failures = status.failed_evaluations or 0
    if failures:
        wait = min(MAX_BACKOFF_SECONDS, wait * 2 ** min(failures, 10))
    return float(wait)


def evaluation_due(policy: DriftPolicy, generation: int | None, now: datetime.datetime) -> bool:
    """Due when its wait has passed since the last evaluation; at once on a new spec."""
    status = policy.status
    last = parse_time(status.last_evaluation_time)
    if last is None or status.observed_generation != generation:
        return True
    return (now - last).total_seconds() >= _wait(policy.spec, status)


def seconds_until_due(spec: Any, status: DriftPolicyStatus, now: datetime.datetime) -> float:
    """How long until the next evaluation (its due time in the reconcile queue)."""
    last = parse_time(status.last_evaluation_time)
    if last is None:
        return 0.0
    return max(0.5, _wait(spec, status) - (now - last).total_seconds())


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def decide(
    policy: DriftPolicy,
    readings: Sequence[CheckReading],
    history: RetrainHistory,
    *,
    generation: int | None,
    now: datetime.datetime,
) -> PolicyPlan:
    """Pure: the new status, the Events, and whether to create a drift TrainingJob now."""
    spec = policy.spec
    status = policy.status.model_copy(deep=True)
    plan = PolicyPlan(status=status)
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    status.observed_generation = generation
    status.last_evaluation_time = rfc3339(now)
    week_runs = [t for t in history.drift_runs if now - t < WEEK]
    status.retrains_this_week = len(week_runs)
    status.gpu_hours_this_month = round(history.gpu_hours_this_month, 4)
    previous_detected = get_condition(status.conditions, "DriftDetected")
    model = spec.model_ref.name

    if not history.model_found:
        status.failed_evaluations = (status.failed_evaluations or 0) + 1
        c.set("Evaluated", FALSE, "ModelNotFound", f"MLModel {model} does not exist in this namespace")
        c.set("DriftDetected", UNKNOWN, "NotEvaluated", f"MLModel {model} does not exist")
        plan.outcome = "model-missing"
        return _finish(plan, c)

    failed = [r for r in readings if r.error is not None]
    if failed:
        status.failed_evaluations = (status.failed_evaluations or 0) + 1
        first = failed[0]
        message = "; ".join(f"check {r.name}: {r.error}" for r in failed)
        c.set("Evaluated", UNKNOWN, first.error_reason, f"{message} (no retrain while checks cannot be evaluated)")
        c.set("DriftDetected", UNKNOWN, "NotEvaluated", "the last evaluation failed; see Evaluated")
        status.checks = [CheckStatus(name=r.name, message=r.error[:1024] if r.error else None) for r in readings]
        plan.outcome = "unavailable"
        if (status.failed_evaluations or 0) == 1:
            plan.events.append(("Warning", first.error_reason, message[:1024]))
        return _finish(plan, c)

    status.failed_evaluations = 0
    by_name = {check.name: check for check in spec.checks}
    checks, breaching_now, sustained = [], [], []
    for r in readings:
        threshold = by_name[r.name].threshold
        over = r.value is not None and r.value > threshold
        held = r.sustained is not None and r.sustained > threshold
        checks.append(
            CheckStatus(name=r.name, value=r.value, feature=r.feature, sustained_value=r.sustained, breaching=over)
        )
        where = f" on {r.feature}" if r.feature else ""
        if over:
            breaching_now.append(f"{r.name} {_fmt(r.value)} > {threshold:g}{where}")
        if held:
            sustained.append(f"{r.name} {_fmt(r.sustained)} > {threshold:g}{where} for {spec.trigger.for_}")
    status.checks = checks
    c.set("Evaluated", TRUE, "Evaluated", f"{len(readings)} check(s) evaluated")
    needed = spec.trigger.min_failing_checks
    if len(breaching_now) >= needed:
        status.breaching_since = status.breaching_since or rfc3339(now)
    else:
        status.breaching_since = None
    detected = len(sustained) >= needed
    budget_reason, budget_message = _budget(spec, week_runs, history)
    if budget_reason:
        c.set("BudgetExhausted", TRUE, budget_reason, budget_message)
    else:
        c.set("BudgetExhausted", FALSE, "WithinBudget", f"{len(week_runs)} drift retrain(s) in the last 7 days")

    if not detected:
        pending = (
            f"; breaching now, not yet for {spec.trigger.for_}: {', '.join(breaching_now)}" if breaching_now else ""
        )
        c.set("DriftDetected", FALSE, "WithinThresholds", f"no check breached for {spec.trigger.for_}{pending}")
        status.suppressed = None
        plan.outcome = "ok"
        return _finish(plan, c)

    summary = ", ".join(sustained)
    c.set("DriftDetected", TRUE, "ThresholdBreached", summary)
    newly = previous_detected is None or previous_detected.status != TRUE
    if spec.action == "Alert":
        plan.outcome = "alert"
        if newly:
            plan.events.append(("Warning", "DriftDetected", f"drift on model {model}: {summary}"))
        return _finish(plan, c)

    if newly:
        plan.events.append(("Warning", "DriftDetected", f"drift on model {model}: {summary}"))
    why = _suppression(spec, status, history, budget_reason, budget_message, now)
    if why is not None:
        key, message = why
        plan.outcome = f"suppressed-{key}"
        if status.suppressed != message:
            plan.events.append(("Warning" if key == "budget" else "Normal", "RetrainSuppressed", message))
        status.suppressed = message
        return _finish(plan, c)
    status.suppressed = None
    status.last_triggered_time = rfc3339(now)
    status.retrains_this_week = len(week_runs) + 1
    plan.retrain = True
    plan.retrain_message = summary
    plan.outcome = "retrain"
    return _finish(plan, c)


def _budget(spec: Any, week_runs: Sequence[datetime.datetime], history: RetrainHistory) -> tuple[str, str]:
    budget = spec.budget
    if len(week_runs) >= budget.max_retrains_per_week:
        return (
            "MaxRetrainsPerWeek",
            f"{len(week_runs)} drift retrain(s) in the last 7 days reach budget.maxRetrainsPerWeek "
            f"{budget.max_retrains_per_week}",
        )
    if budget.gpu_hours_per_month is not None and history.gpu_hours_this_month >= budget.gpu_hours_per_month:
        return (
            "GpuHoursPerMonth",
            f"{history.gpu_hours_this_month:.2f} GPU-hours of training this month reach budget.gpuHoursPerMonth "
            f"{budget.gpu_hours_per_month:g}",
        )
    return "", ""


def _suppression(
    spec: Any,
    status: DriftPolicyStatus,
    history: RetrainHistory,
    budget_reason: str,
    budget_message: str,
    now: datetime.datetime,
) -> tuple[str, str] | None:
    if history.active_run:
        return "active-run", f"drift detected, no retrain: TrainingJob {history.active_run} is still running"
    last = parse_time(status.last_triggered_time)
    cooldown = parse_duration(spec.cooldown)
    if last is not None and (now - last).total_seconds() < cooldown:
        until = rfc3339(last + datetime.timedelta(seconds=cooldown))
        return "cooldown", f"drift detected, no retrain: cooldown {spec.cooldown} since the last retrain, until {until}"
    if budget_reason:
        return "budget", f"drift detected, no retrain: {budget_message}"
    return None


def _finish(plan: PolicyPlan, c: ConditionEditor) -> PolicyPlan:
    c.default("BudgetExhausted", FALSE, "WithinBudget")
    plan.status.conditions = c.summarize_ready(("Evaluated",), negative=("BudgetExhausted",))
    return plan


def decide_utilization(
    policy: DriftPolicy, plan: PolicyPlan, reading: GpuReading, *, generation: int | None, now: datetime.datetime
) -> None:
    """GpuIdle on the policy (the MLModel reads it and scales down when the rule's action is ScaleDown)."""
    rule = policy.spec.utilization
    status = plan.status
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    if rule is None:
        status.gpu_idle_since = None
        status.conditions = [x for x in status.conditions if x.type != "GpuIdle"]
        return
    previous = get_condition(status.conditions, "GpuIdle")
    if reading.error is not None:
        c.set("GpuIdle", UNKNOWN, "NoData", reading.error)
    elif not reading.covered:
        c.set("GpuIdle", FALSE, "NotEnoughHistory", f"GPU data does not yet cover {rule.for_}")
        status.gpu_idle_since = None
    elif reading.peak_percent is not None and reading.peak_percent < rule.gpu_idle_below_percent:
        message = (
            f"serving GPUs peaked at {reading.peak_percent:.1f}% over {rule.for_} (below "
            f"{rule.gpu_idle_below_percent:g}%); action {rule.action}"
        )
        c.set("GpuIdle", TRUE, "BelowThreshold", message)
        status.gpu_idle_since = status.gpu_idle_since or rfc3339(now)
        if previous is None or previous.status != TRUE:
            plan.events.append(("Warning", "GpuIdle", message))
    else:
        c.set("GpuIdle", FALSE, "InUse", f"serving GPUs peaked at {_fmt(reading.peak_percent)}% over {rule.for_}")
        status.gpu_idle_since = None
    status.conditions = c.items


def initial_status(policy: DriftPolicy, generation: int | None, now: datetime.datetime) -> DriftPolicyStatus:
    """The status before the first evaluation."""
    status = policy.status.model_copy(deep=True)
    c = ConditionEditor(status.conditions, now=now, generation=generation)
    c.default("Evaluated", UNKNOWN, "NotEvaluatedYet", "the checks have not run yet")
    c.default("DriftDetected", UNKNOWN, "NotEvaluatedYet")
    c.default("BudgetExhausted", FALSE, "WithinBudget")
    status.conditions = c.summarize_ready(("Evaluated",), negative=("BudgetExhausted",))
    return status


# --- I/O
def history_of(trainingjobs: Sequence[dict[str, Any]], now: datetime.datetime) -> RetrainHistory:
    drift_runs, active, gpu_seconds = [], None, 0.0
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for tj in trainingjobs:
        created = parse_time(tj["metadata"].get("creationTimestamp"))
        status = tj.get("status") or {}
        finished = any(
            c.get("type") in ("Succeeded", "Failed") and c.get("status") == TRUE for c in status.get("conditions") or []
        )
        if not finished and active is None:
            active = tj["metadata"]["name"]
        if (tj.get("spec") or {}).get("reason") == "drift" and created is not None:
            drift_runs.append(created)
        if created is not None and created >= month_start:
            gpu_seconds += float(status.get("gpuSeconds") or 0.0)
    return RetrainHistory(tuple(drift_runs), active, gpu_seconds / 3600.0)


def unmeasured_reference(model: MLModel) -> str | None:
    """Why the served version's (else the latest version's) training data cannot be a drift reference, if so: the
    server exports no built-in statistics for it, so the checks evaluate to Unknown with this reason, not to a
    number that cannot be trusted and never to "no data"."""
    version = model.status.serving_version or model.status.latest_version
    reference = version.drift_reference if version is not None else None
    if reference is None or not reference.insufficient:
        return None
    return f"version {version.number if version else '?'}: {reference.insufficient}"


def reconcile_driftpolicy(
    policy: DriftPolicy,
    generation: int | None,
    kube: Cluster,
    config: OperatorConfig,
    now: datetime.datetime,
    prometheus_for: PrometheusFor,
    groups: GroupReadings | None = None,
) -> tuple[PolicyPlan, str | None]:
    """One evaluation when due: (plan, name of the TrainingJob created or None). `prometheus_for(url)` gives a
    client; tests and the operator pass the real one. Built-in checks, and custom queries that do not name `$model`,
    are read for the whole namespace at once through `groups` (drift_batch.py), shared between the policies that
    share it (the operator's one) or, without, asked for this policy alone."""
    if not evaluation_due(policy, generation, now):
        return PolicyPlan(status=policy.status), None
    groups = groups if groups is not None else GroupReadings()
    namespace = str(policy.metadata["namespace"])
    model_name = policy.spec.model_ref.name
    raw_model = kube.get_custom(namespace, "mlmodels", model_name)
    if raw_model is None:
        return decide(policy, [], RetrainHistory(model_found=False), generation=generation, now=now), None
    tjs = kube.list_custom(namespace, "trainingjobs", f"{LABEL_MODEL}={model_name}")
    history = history_of(tjs, now)
    url = policy.spec.prometheus.url if policy.spec.prometheus else config.prometheus_url
    prometheus = prometheus_for(url)
    model = parse(MLModel, raw_model)
    too_small = unmeasured_reference(model)
    for_seconds = parse_duration(policy.spec.trigger.for_)

    def reading(check: Check, q: CheckQueries) -> CheckReading:
        if too_small and check.statistic is not None:
            return CheckReading(q.name, error=too_small, error_reason="ReferenceTooSmall")
        group = group_of(check, namespace=namespace, url=url, for_seconds=for_seconds, window=policy.spec.window)
        if group is not None:
            fresh = freshness(parse_duration(policy.spec.interval))
            return groups.read(group, model_name, q.name, prometheus, now, fresh)
        return read_check(prometheus, q, now)

    readings = [reading(c, q) for c, q in zip(policy.spec.checks, policy_queries(policy, namespace), strict=True)]
    plan = decide(policy, readings, history, generation=generation, now=now)
    if policy.spec.utilization is not None:
        gpu = read_gpu_idle(prometheus, namespace, model_name, parse_duration(policy.spec.utilization.for_), now)
        decide_utilization(policy, plan, gpu, generation=generation, now=now)
    else:
        decide_utilization(policy, plan, GpuReading(), generation=generation, now=now)
    if not plan.retrain:
        return plan, None
    numbers = [v.number for v in model.status.versions]
    numbers += [int((tj["metadata"].get("labels") or {}).get(LABEL_VERSION, "0") or 0) for tj in tjs]
    number = max(numbers, default=0) + 1
    spec = model.spec
    fingerprint = training_fingerprint(spec.framework, spec.task, spec.dataset, spec.training, config.trainer_image)
    body = desired_model_trainingjob(
        model, namespace=namespace, number=number, reason="drift", fingerprint=fingerprint, config=config
    )
    body["metadata"].setdefault("annotations", {})["modelfleet.io/triggered-by"] = (
        f"driftpolicy/{policy.metadata['name']}"
    )
    if policy.spec.retrain_priority_class:
        body["spec"]["training"]["workloadPriorityClass"] = policy.spec.retrain_priority_class
    if not kube.create_custom(namespace, "trainingjobs", body):
        # The MLModel took this version number a moment ago: try again on the next pass, status untouched.
        raise DependencyNotReady(f"TrainingJob {body['metadata']['name']} already exists; retrying", delay=2.0)
    name = body["metadata"]["name"]
    plan.events.append(
        ("Normal", "RetrainTriggered", f"created TrainingJob {name} (reason drift): {plan.retrain_message}")
    )
    return plan, name
