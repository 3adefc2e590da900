"""Canary rollouts, pure: the verdict on an interval's figures, and the steps a canary takes through plan_serving
(start, wait, step, promote, roll back), with the objects and Events each pass produces."""

from __future__ import annotations

import datetime
from typing import Any

from modelfleet.api.v1alpha1.mlmodel import CanaryAnalysis, MLModelStatus
from modelfleet.builders.serving import desired_serving
from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.canary import CanaryReading, VersionFigures, canary_queries, judge
from modelfleet.reconcilers.mlmodel import ModelPlan, plan_serving
from modelfleet.status.conditions import ConditionEditor
from tests.unit.test_serving_logic import model, version

CFG = OperatorConfig()
T0 = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
CANARY = {"strategy": "Canary", "steps": [10, 50, 100], "interval": "30s", "analysis": {"minRequests": 20}}


def reading(**versions: tuple[float, float, float | None]) -> CanaryReading:
    return CanaryReading({v.lstrip("v"): VersionFigures(*f) for v, f in versions.items()})


def test_the_verdict_compares_the_new_versions_errors_with_the_serving_ones_and_needs_enough_requests() -> None:
    analysis = CanaryAnalysis(max_error_rate=0.02, max_p99_ms=50, min_requests=20)
    verdict, words = judge(analysis, reading(v1=(900, 9, 4.0), v2=(100, 2, 5.0)), 2, 1)
    assert verdict == "pass" and words == (
        "version 2: 100 requests, error ratio 2.0% (version 1: 1.0% of 900), p99 5.0 ms"
    )
    assert judge(analysis, reading(v1=(900, 0, 4.0), v2=(100, 4, 5.0)), 2, 1)[0] == "fail"  # 4 % more errors
    assert judge(analysis, reading(v1=(900, 90, 4.0), v2=(100, 11, 5.0)), 2, 1)[0] == "pass"  # both 10 %: the clients'
    verdict, words = judge(analysis, reading(v1=(900, 0, 4.0), v2=(100, 0, 80.0)), 2, 1)
    assert verdict == "fail" and words.endswith("p99 above 50 ms")
    verdict, words = judge(analysis, reading(v1=(900, 0, 4.0), v2=(19, 19, None)), 2, 1)
    assert verdict == "wait" and words.endswith("fewer than 20 requests: no verdict yet")  # never a verdict on no data
    assert judge(analysis, reading(), 2, 1)[0] == "wait"


def test_the_queries_read_the_gateways_series_by_version_and_do_not_count_a_404_as_the_versions_error() -> None:
    q = canary_queries("ml", "fraud", "30s")
    sel = 'namespace="ml",model="fraud",version!=""'
    assert q["requests"] == f"sum by (version) (increase(modelfleet_gateway_requests_total{{{sel}}}[30s]))"
    assert 'code=~"4..|5..",code!="404"' in q["errors"]
    assert "histogram_quantile(0.99" in q["p99"] and "modelfleet_gateway_request_seconds_bucket" in q["p99"]


def ready_deployment(m: Any, n: int) -> dict[str, Any]:
    d = desired_serving(name="fraud", namespace="ml", uid="m-1", spec=m.spec, version=version(n), config=CFG)[0]
    d["metadata"]["generation"] = 1
    d["status"] = {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 1}
    return d


def serving_v1() -> tuple[Any, MLModelStatus]:
    m = model(rollout=CANARY)
    m.metadata["name"] = "fraud"
    status = MLModelStatus(versions=[version(1), version(2)], serving_version=version(1), latest_version=version(2))
    return m, status


def one_pass(
    m: Any, status: MLModelStatus, now: datetime.datetime, **kw: Any
) -> tuple[ModelPlan, MLModelStatus, dict[str, Any]]:
    status = status.model_copy(deep=True)
    plan = ModelPlan(status=status)
    c = ConditionEditor(status.conditions, now=now, generation=1)
    plan_serving(m, status, c, plan, deployment=ready_deployment(m, 1), pods=[], config=CFG, now=now, **kw)
    status.conditions = c.items
    return plan, status, {c.type: c for c in status.conditions}


def canary_of(plan: ModelPlan) -> dict[str, Any]:
    (canary,) = [o for o in plan.apply if o["metadata"]["name"] == "fraud-canary"]
    return canary


def test_a_canary_starts_beside_the_serving_version_steps_up_and_is_promoted() -> None:
    m, status = serving_v1()
    plan, status, conds = one_pass(m, status, T0)
    assert status.canary and (status.canary.version, status.canary.step, status.canary.weight) == (2, 0, 10)
    assert [e.reason for e in plan.events] == ["CanaryStarted"]
    canary = canary_of(plan)
    labels = canary["spec"]["template"]["metadata"]["labels"]
    assert labels["modelfleet.io/version"] == "2" and labels["app.kubernetes.io/component"] == "serving-canary"
    assert canary["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "serving-canary"
    assert canary["spec"]["replicas"] == 1
    assert not [o for o in plan.apply if o["metadata"]["name"] == "fraud"]  # the serving Deployment stays on v1
    assert conds["Serving"].message == "version 1: 1 replica(s) available; canary: version 2 at 10%"
    running = {**canary, "status": {"observedGeneration": 1, "availableReplicas": 1}}
    running["metadata"] = {**canary["metadata"], "generation": 1}

    # Before the interval is over: nothing changes, nothing is said.
    plan, again, _ = one_pass(m, status, T0 + datetime.timedelta(seconds=10), canary_deployment=running)
    assert again.canary == status.canary and plan.events == [] and plan.apply == []

    good = reading(v1=(270, 0, 3.0), v2=(30, 0, 3.5))
    t1 = T0 + datetime.timedelta(seconds=31)
    plan, status, _ = one_pass(m, status, t1, canary_deployment=running, canary_reading=good)
    assert status.canary and (status.canary.step, status.canary.weight) == (1, 50)
    assert [(e.reason, e.message) for e in plan.events] == [
        (
            "CanaryStep",
            "version 2 passed at 10% (version 2: 30 requests, error ratio 0.0% (version 1: 0.0% of 270), "
            "p99 3.5 ms); now 50%",
        )
    ]
    t2 = t1 + datetime.timedelta(seconds=31)
    plan, status, _ = one_pass(m, status, t2, canary_deployment=running, canary_reading=good)
    assert status.canary and (status.canary.step, status.canary.weight) == (2, 100)
    t3 = t2 + datetime.timedelta(seconds=31)
    plan, status, _ = one_pass(m, status, t3, canary_deployment=running, canary_reading=good)
    assert [e.reason for e in plan.events] == ["CanaryPromoted"]
    (main,) = [o for o in plan.apply if o["kind"] == "Deployment" and o["metadata"]["name"] == "fraud"]
    assert main["spec"]["template"]["metadata"]["labels"]["modelfleet.io/version"] == "2"  # the Deployment rolls
    assert status.canary and status.canary.weight == 100 and plan.delete == []  # the canary serves until then

    # The model's Deployment has rolled: version 2 serves, the canary's Deployment goes.
    status.serving_version = version(2)
    status = status.model_copy(deep=True)
    plan2 = ModelPlan(status=status)
    c = ConditionEditor(status.conditions, now=t3, generation=1)
    plan_serving(
        m, status, c, plan2, deployment=ready_deployment(m, 2), pods=[], config=CFG, now=t3, canary_deployment=running
    )
    assert status.canary is None and plan2.delete == [("Deployment", "fraud-canary")]


def test_a_canary_that_errors_is_rolled_back_at_its_step_with_the_figures() -> None:
    m, status = serving_v1()
    _plan, status, _ = one_pass(m, status, T0)
    bad = reading(v1=(270, 0, 3.0), v2=(30, 30, 2.0))
    running = {"metadata": {"generation": 1, "annotations": {}}, "status": {"observedGeneration": 1}}
    plan, status, conds = one_pass(
        m, status, T0 + datetime.timedelta(seconds=31), canary_deployment=running, canary_reading=bad
    )
    message = (
        "version 2 rolled back at 10%: version 2: 30 requests, error ratio 100.0% (version 1: 0.0% of 270), "
        "p99 2.0 ms; 100.0% more errors than allowed (1.0%); version 1 keeps serving"
    )
    assert [(e.type, e.reason, e.message) for e in plan.events] == [("Warning", "CanaryFailed", message)]
    assert (conds["Degraded"].status, conds["Degraded"].reason, conds["Degraded"].message) == (
        "True",
        "CanaryFailed",
        message,
    )
    assert status.canary is None and plan.delete == [("Deployment", "fraud-canary")]
    assert not status.versions[1].promotable and status.versions[1].rejected_reason.startswith("canary failed at 10%")
    assert conds["Serving"].message == "version 1: 1 replica(s) available"
    # The next pass: version 2 is not tried again; nothing more is said.
    plan, again, _ = one_pass(m, status, T0 + datetime.timedelta(seconds=40))
    assert again.canary is None and plan.events == [] and plan.apply == []


def test_no_reading_or_too_few_requests_waits_another_interval_and_says_why() -> None:
    m, status = serving_v1()
    _plan, status, _ = one_pass(m, status, T0)
    running = {"metadata": {"generation": 1, "annotations": {}}, "status": {"observedGeneration": 1}}
    t1 = T0 + datetime.timedelta(seconds=31)
    plan, status, _ = one_pass(m, status, t1, canary_deployment=running)
    assert status.canary and status.canary.step == 0 and plan.events == []
    assert status.canary.message == "no reading from Prometheus: no verdict yet"
    assert status.canary.step_start_time == "2026-12-04T12:00:31Z"  # a new interval
    plan, status, _ = one_pass(
        m,
        status,
        t1 + datetime.timedelta(seconds=31),
        canary_deployment=running,
        canary_reading=reading(v2=(3, 0, 1.0)),
    )
    assert status.canary and status.canary.step == 0 and status.canary.message.endswith("no verdict yet")


def test_the_rolling_update_strategy_has_no_canary() -> None:
    m, status = serving_v1()
    m.spec.serving.rollout.strategy = "RollingUpdate"
    plan, status, _ = one_pass(m, status, T0)
    assert status.canary is None and [o["metadata"]["name"] for o in plan.apply if o["kind"] == "Deployment"] == [
        "fraud"
    ]


def test_a_high_risk_models_canary_starts_only_once_a_human_approved_the_version() -> None:
    m, status = serving_v1()
    m.spec.risk_class = "high"
    m.spec.serving.approved_version = 1  # version 2 exists, nobody approved it
    plan, after, _ = one_pass(m, status, T0)
    assert after.canary is None and plan.events == [] and plan.apply == []
    m.spec.serving.approved_version = 2
    plan, after, _ = one_pass(m, status, T0)
    assert after.canary and after.canary.version == 2 and [e.reason for e in plan.events] == ["CanaryStarted"]
