"""DriftPolicy decisions with an injected clock: hysteresis, cooldown, budgets, the active-run rule, and the rule that
an evaluation that fails never retrains. (The same logic against a real Prometheus: tests/integration.)"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelfleet.api.v1alpha1.driftpolicy import DriftPolicy
from modelfleet.clients.prometheus import Sample
from modelfleet.errors import PrometheusUnavailable
from modelfleet.reconcilers.drift_queries import CheckReading, check_queries, policy_queries, read_check
from modelfleet.reconcilers.driftpolicy import RetrainHistory, decide, evaluation_due, history_of
from modelfleet.status.conditions import get_condition

T0 = datetime.datetime(2026, 11, 2, 12, 0, tzinfo=datetime.UTC)


def policy(**spec: Any) -> DriftPolicy:
    base: dict[str, Any] = {
        "modelRef": {"name": "churn"},
        "interval": "1m",
        "checks": [{"name": "psi", "statistic": "psi", "threshold": 0.2}],
        "trigger": {"for": "5m"},
        "action": "Retrain",
        "cooldown": "6h",
        "budget": {"maxRetrainsPerWeek": 2},
    }
    base.update(spec)
    return DriftPolicy.model_validate({"metadata": {"name": "p", "namespace": "ml"}, "spec": base})


def step(
    p: DriftPolicy, readings: list[CheckReading], now: datetime.datetime, history: RetrainHistory | None = None
) -> Any:
    plan = decide(p, readings, history or RetrainHistory(), generation=1, now=now)
    p.status = plan.status
    return plan


def cond(p: DriftPolicy, ctype: str) -> tuple[str, str]:
    c = get_condition(p.status.conditions, ctype)
    assert c is not None
    return c.status, c.reason


def breach(value: float = 0.5, sustained: float | None = 0.4) -> list[CheckReading]:
    return [CheckReading("psi", value, "tenure", sustained)]


def test_builtin_check_weights_pods_by_window_rows_and_escapes_feature_names() -> None:
    p = policy(checks=[{"name": "c", "statistic": "ks", "features": ["a.b", 'x"y'], "threshold": 0.1}])
    q = policy_queries(p, "team-a")[0]
    assert (
        'modelfleet_feature_drift{namespace="team-a",model="churn",statistic="ks",feature=~"a\\\\.b|x\\"y"}' in q.values
    )
    assert "* on (instance) group_left modelfleet_drift_window_rows" in q.values
    assert q.sustained == f"min_over_time((max({q.values}))[300s:5s])"
    assert q.coverage is not None and q.coverage.startswith("count_over_time(") and q.points == 60


def test_custom_query_templates_and_zero_for() -> None:
    p = policy(checks=[{"name": "err", "query": 'rate(x{namespace="$namespace",m="$model"}[$window])', "threshold": 1}])
    q = check_queries(p.spec.checks[0], namespace="ns", model="churn", for_seconds=0, window="1h")
    assert q.values == 'rate(x{namespace="ns",m="churn"}[1h])'
    assert q.sustained is None and q.points == 0


def test_evaluation_is_due_each_interval_backs_off_after_failures_and_runs_at_once_on_a_new_spec() -> None:
    p = policy()
    assert evaluation_due(p, 1, T0)
    step(p, breach(0.1, 0.1), T0)
    assert not evaluation_due(p, 1, T0 + datetime.timedelta(seconds=59))
    assert evaluation_due(p, 1, T0 + datetime.timedelta(seconds=60))
    assert evaluation_due(p, 2, T0 + datetime.timedelta(seconds=1))  # spec changed
    for failures in (1, 2, 3):
        step(p, [CheckReading("psi", error="down")], T0)
        wait = 60 * 2**failures
        assert not evaluation_due(p, 1, T0 + datetime.timedelta(seconds=wait - 1))
        assert evaluation_due(p, 1, T0 + datetime.timedelta(seconds=wait))
    for _ in range(10):
        step(p, [CheckReading("psi", error="down")], T0)
    assert evaluation_due(p, 1, T0 + datetime.timedelta(minutes=10))  # capped at 10 min


def test_a_failed_evaluation_is_unknown_never_retrains_and_warns_once() -> None:
    p = policy()
    first = step(p, [CheckReading("psi", error="Prometheus at http://x is unreachable: refused")], T0)
    assert not first.retrain and cond(p, "Evaluated") == ("Unknown", "PrometheusUnavailable")
    assert cond(p, "DriftDetected") == ("Unknown", "NotEvaluated")
    assert [e[1] for e in first.events] == ["PrometheusUnavailable"]
    second = step(p, [CheckReading("psi", error="still down")], T0 + datetime.timedelta(minutes=2))
    assert second.events == [] and p.status.failed_evaluations == 2
    # One failing check among breaching ones still blocks the retrain.
    p2 = policy(
        checks=[{"name": "psi", "statistic": "psi", "threshold": 0.2}, {"name": "q", "query": "x", "threshold": 1}]
    )
    plan = step(p2, [*breach(), CheckReading("q", error="the query returned no data", error_reason="NoData")], T0)
    assert not plan.retrain and cond(p2, "Evaluated") == ("Unknown", "NoData")


def test_breaching_now_is_not_drift_until_it_holds_for_the_trigger_span() -> None:
    p = policy()
    plan = step(p, breach(0.5, sustained=None), T0)  # span not yet covered
    assert not plan.retrain and cond(p, "DriftDetected") == ("False", "WithinThresholds")
    assert p.status.breaching_since == "2026-11-02T12:00:00Z" and p.status.checks[0].breaching
    plan = step(p, breach(0.5, sustained=0.15), T0 + datetime.timedelta(minutes=1))  # dipped below within the span
    assert not plan.retrain
    plan = step(p, breach(0.5, sustained=0.3), T0 + datetime.timedelta(minutes=6))
    assert plan.retrain and cond(p, "DriftDetected") == ("True", "ThresholdBreached")
    assert "psi 0.3 > 0.2 on tenure for 5m" in plan.retrain_message
    assert p.status.last_triggered_time == "2026-11-02T12:06:00Z" and p.status.retrains_this_week == 1
    step(p, breach(0.1, 0.1), T0 + datetime.timedelta(minutes=7))
    assert p.status.breaching_since is None


def test_cooldown_allows_one_retrain_per_span_and_says_so_once() -> None:
    p = policy(budget={"maxRetrainsPerWeek": 10})
    assert step(p, breach(), T0).retrain
    runs = [T0]
    suppressed = [step(p, breach(), T0 + datetime.timedelta(minutes=m), RetrainHistory(runs)) for m in (10, 20, 30)]
    assert not any(s.retrain for s in suppressed)
    messages = [e for s in suppressed for e in s.events if e[1] == "RetrainSuppressed"]
    assert len(messages) == 1 and "cooldown 6h" in messages[0][2]
    assert p.status.suppressed is not None
    assert step(p, breach(), T0 + datetime.timedelta(hours=6), RetrainHistory(runs)).retrain


def test_weekly_budget_counts_drift_runs_of_the_last_seven_days() -> None:
    p = policy(cooldown="1m")
    old = T0 - datetime.timedelta(days=8)
    recent = [T0 - datetime.timedelta(days=3), T0 - datetime.timedelta(days=1)]
    plan = step(p, breach(), T0, RetrainHistory([old, *recent]))
    assert not plan.retrain and plan.outcome == "suppressed-budget"
    assert cond(p, "BudgetExhausted") == ("True", "MaxRetrainsPerWeek")
    assert any(e[0] == "Warning" and "maxRetrainsPerWeek 2" in e[2] for e in plan.events)
    assert cond(p, "Ready")[0] == "False"  # an exhausted budget is worth a look
    later = T0 + datetime.timedelta(days=4)  # the older of the two recent runs has left the week
    assert step(p, breach(), later, RetrainHistory([old, *recent])).retrain
    assert cond(p, "BudgetExhausted") == ("False", "WithinBudget")


def test_gpu_hour_budget_and_an_active_run_suppress() -> None:
    p = policy(budget={"maxRetrainsPerWeek": 5, "gpuHoursPerMonth": 10})
    plan = step(p, breach(), T0, RetrainHistory(gpu_hours_this_month=10.5))
    assert plan.outcome == "suppressed-budget" and cond(p, "BudgetExhausted") == ("True", "GpuHoursPerMonth")
    p = policy()
    plan = step(p, breach(), T0, RetrainHistory(active_run="churn-v3"))
    assert plan.outcome == "suppressed-active-run" and "churn-v3 is still running" in (p.status.suppressed or "")


def test_alert_action_never_retrains_and_posts_on_the_transition_only() -> None:
    p = policy(action="Alert")
    first = step(p, breach(), T0)
    second = step(p, breach(), T0 + datetime.timedelta(minutes=1))
    assert not first.retrain and not second.retrain
    assert [e[1] for e in first.events] == ["DriftDetected"] and second.events == []


def test_min_failing_checks() -> None:
    checks = [{"name": n, "statistic": "psi", "features": [n], "threshold": 0.2} for n in ("a", "b")]
    p = policy(checks=checks, trigger={"for": "5m", "minFailingChecks": 2})
    plan = step(p, [CheckReading("a", 0.5, "a", 0.4), CheckReading("b", 0.1, "b", 0.1)], T0)
    assert not plan.retrain and cond(p, "DriftDetected")[0] == "False"
    plan = step(p, [CheckReading("a", 0.5, "a", 0.4), CheckReading("b", 0.3, "b", 0.25)], T0)
    assert plan.retrain


def test_a_missing_model_is_not_an_error_loop() -> None:
    p = policy()
    plan = step(p, [], T0, RetrainHistory(model_found=False))
    assert not plan.retrain and cond(p, "Evaluated") == ("False", "ModelNotFound")


class FakeAnswers:
    """Stands in for the HTTP layer only, to pin read_check's handling of answers (integration tests use a real
    Prometheus)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def query(self, expr: str, at: Any = None) -> list[Sample]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([[]], "NoData"),
        ([[Sample({"feature": "a"}, float("nan"))]], "NotANumber"),
        ([[Sample({}, float("inf"))]], "NotANumber"),
        ([PrometheusUnavailable("Prometheus at x did not answer within 5s")], "PrometheusUnavailable"),
    ],
)
def test_read_check_turns_bad_answers_into_errors(answers: list[Any], reason: str) -> None:
    q = policy_queries(policy(), "ns")[0]
    reading = read_check(FakeAnswers(answers), q, T0)
    assert reading.error is not None and reading.error_reason == reason and reading.value is None


def test_read_check_needs_a_fully_covered_span() -> None:
    q = policy_queries(policy(), "ns")[0]
    values = [Sample({"feature": "a"}, 0.1), Sample({"feature": "b"}, 0.7)]
    full = read_check(FakeAnswers([values, [Sample({}, 60)], [Sample({}, 0.3)]]), q, T0)
    assert (full.value, full.feature, full.sustained) == (0.7, "b", 0.3)
    partial = read_check(FakeAnswers([values, [Sample({}, 24)], [Sample({}, 0.3)]]), q, T0)
    assert partial.sustained is None


def test_history_from_trainingjobs() -> None:
    def tj(name: str, created: str, reason: str, done: bool, gpu: float = 0) -> dict[str, Any]:
        conditions = [{"type": "Succeeded", "status": "True"}] if done else []
        return {
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"reason": reason},
            "status": {"conditions": conditions, "gpuSeconds": gpu},
        }

    h = history_of(
        [
            tj("m-v1", "2026-10-20T00:00:00Z", "initial", True, gpu=7200),
            tj("m-v2", "2026-11-01T00:00:00Z", "drift", True, gpu=3600),
            tj("m-v3", "2026-11-02T11:00:00Z", "drift", False),
        ],
        T0,
    )
    assert len(h.drift_runs) == 2 and h.active_run == "m-v3" and h.gpu_hours_this_month == 1.0


def test_policy_gauges_follow_the_model_ref_and_leave_with_the_policy() -> None:
    """An alert fires on modelfleet_drift_detected, so a series must not outlive its policy or its old modelRef."""
    from prometheus_client import REGISTRY

    from modelfleet.api.v1alpha1.common import Condition
    from modelfleet.handlers.driftpolicy import export_gauges, forget_gauges

    def drift(model: str) -> float | None:
        labels = {"namespace": "gauges", "policy": "watch", "model": model}
        return REGISTRY.get_sample_value("modelfleet_drift_detected", labels)

    def detected(status: str) -> list[Condition]:
        return [Condition(type="DriftDetected", status=status, reason="Test")]

    export_gauges(("gauges", "watch", "churn"), detected("True"))
    assert drift("churn") == 1.0
    export_gauges(("gauges", "watch", "churn"), detected("Unknown"))
    assert drift("churn") == 1.0  # an evaluation that could not decide keeps the last answer
    export_gauges(("gauges", "watch", "fraud"), detected("False"))  # the policy now watches another model
    assert (drift("churn"), drift("fraud")) == (None, 0.0)
    forget_gauges(("gauges", "watch"))
    assert drift("fraud") is None
    forget_gauges(("gauges", "watch"))  # deleting twice (or a policy never evaluated) is fine


def test_custom_queries_without_model_share_one_group_per_query_window_and_span() -> None:
    from modelfleet.reconcilers.drift_batch import GroupReadings, group_of

    fleet = policy(
        checks=[{"name": "e", "query": 'max by (model) (x{namespace="$namespace"}[$window])', "threshold": 1}]
    )
    own = policy(checks=[{"name": "e", "query": 'x{namespace="$namespace",model="$model"}', "threshold": 1}])

    def key(p: DriftPolicy, namespace: str = "ns", window: str = "1h", for_seconds: float = 0.0) -> Any:
        return group_of(
            p.spec.checks[0], namespace=namespace, url="http://p:9090", for_seconds=for_seconds, window=window
        )

    assert key(fleet).query == 'max by (model) (x{namespace="ns"}[1h])'
    assert key(fleet) == key(fleet) and len({key(fleet), key(fleet, "other"), key(fleet, window="2h")}) == 3
    assert key(fleet, for_seconds=300) != key(fleet)
    assert key(own) is None  # names $model: its text differs per model, nothing to share

    # One answer, asked once, handed to each model; a model it has no series for gets NoData.
    prometheus = FakeAnswers([[Sample({"model": "a"}, 0.5), Sample({"model": "b"}, 2.0)]])
    groups = GroupReadings(clock=lambda: 0.0)
    readings = {m: groups.read(key(fleet), m, "e", prometheus, T0, fresh=30) for m in ("a", "b", "c")}
    assert (readings["a"].value, readings["b"].value) == (0.5, 2.0) and groups.queries_run == 1
    assert readings["c"].error_reason == "NoData"
    # Series that name no model answer for every policy; with some series labelled, an unlabelled one does not.
    groups = GroupReadings(clock=lambda: 0.0)
    assert groups.read(key(fleet), "a", "e", FakeAnswers([[Sample({}, 3.0)]]), T0, fresh=30).value == 3.0
    groups = GroupReadings(clock=lambda: 0.0)
    mixed = FakeAnswers([[Sample({"model": "b"}, 1.0), Sample({}, 3.0)]])
    assert groups.read(key(fleet), "a", "e", mixed, T0, fresh=30).error_reason == "NoData"
