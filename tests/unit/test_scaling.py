"""Scale to zero on request idleness, scale-up by annotation, and GPU-idle scale-down, with an injected clock."""

from __future__ import annotations

import datetime
from typing import Any

from modelfleet.api.v1alpha1 import MLModel
from modelfleet.builders.serving import desired_serving
from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.outcome import Event
from modelfleet.reconcilers.scaling import pinned_replicas, record_activity
from modelfleet.reconcilers.utilization import Activity, gpu_percent_query, serving_pods
from modelfleet.status.conditions import TRUE, set_condition
from tests.unit.test_serving_logic import model, version

T0 = datetime.datetime(2026, 11, 2, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def serving_model(**serving: Any) -> MLModel:
    m = model(**{"minReplicas": 0, "maxReplicas": 1, "idleAfter": "30m", **serving})
    m.status.conditions = set_condition([], "Serving", TRUE, "Serving", "", now=T0 - 2 * HOUR, generation=1)
    return m


def decide(
    m: MLModel,
    now: datetime.datetime,
    activity: Activity | None = None,
    policies: list[dict[str, Any]] | None = None,
    scale_up: str | None = None,
) -> tuple[int | None, list[Event]]:
    events: list[Event] = []
    record_activity(m.status, activity, now)
    pinned = pinned_replicas(
        m.spec,
        m.status,
        name="fraud",
        activity=activity,
        policies=policies or [],
        scale_up_request=scale_up,
        now=now,
        events=events,
    )
    return pinned, events


def seen(last_request: datetime.datetime | None) -> Activity:
    return Activity(True, request_rate=0.0, last_request=last_request)


def gpu_policy(action: str, idle: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": "gpus"},
        "spec": {"utilization": {"gpuIdleBelowPercent": 5, "for": "30m", "action": action}},
        "status": {"conditions": [{"type": "GpuIdle", "status": idle}]},
    }


def test_idle_for_idle_after_scales_to_zero_and_says_how_to_scale_up() -> None:
    m = serving_model()
    last = T0 - 10 * datetime.timedelta(minutes=1)
    assert decide(m, T0, seen(last))[0] is None
    # The same reading 21 minutes later (no request since): idle for 31 minutes, past idleAfter 30m.
    pinned, events = decide(m, T0 + 21 * datetime.timedelta(minutes=1), seen(last))
    assert pinned == 0 and m.status.utilization and m.status.utilization.scaled_to_zero_time == "2026-11-02T12:21:00Z"
    assert (
        events[0].reason == "ScaledToZero" and "kubectl annotate mlm fraud modelfleet.io/scale-up=" in events[0].message
    )
    # It stays at zero without new evidence (no reading this pass, or Prometheus down).
    assert decide(m, T0 + HOUR)[0] == 0
    assert decide(m, T0 + HOUR, Activity(False, error="down"))[0] == 0


def test_a_model_that_never_got_a_request_is_idle_from_when_it_started_serving() -> None:
    m = serving_model()
    assert decide(m, T0, seen(None))[0] == 0  # serving since two hours, no request at all


def test_no_evidence_never_scales_down() -> None:
    m = serving_model()
    assert decide(m, T0, Activity(False, error="Prometheus at x is unreachable"))[0] is None
    assert decide(m, T0, None)[0] is None


def test_scale_up_annotation_brings_it_back_and_idle_time_restarts() -> None:
    m = serving_model()
    assert decide(m, T0, seen(None))[0] == 0
    pinned, events = decide(m, T0 + HOUR, scale_up="1")
    assert pinned is None and [e.reason for e in events] == ["ScaledUp"]
    assert m.status.utilization and m.status.utilization.active_since == "2026-11-02T13:00:00Z"
    # Not idle again until idleAfter has passed since the scale-up, and the same annotation value acts once only.
    assert decide(m, T0 + HOUR + datetime.timedelta(minutes=20), seen(None), scale_up="1")[0] is None
    assert decide(m, T0 + HOUR + datetime.timedelta(minutes=31), seen(None), scale_up="1")[0] == 0


def test_min_replicas_above_zero_never_scales_to_zero() -> None:
    m = serving_model(minReplicas=1)
    assert decide(m, T0, seen(None))[0] is None


def test_gpu_idle_policy_pins_to_min_replicas_or_zero_and_alert_only_does_not() -> None:
    m = serving_model(minReplicas=1, maxReplicas=4)
    assert decide(m, T0, seen(T0), [gpu_policy("ScaleDown")])[0] == 1
    assert decide(m, T0, seen(T0), [gpu_policy("Alert")])[0] is None
    assert decide(m, T0, seen(T0), [gpu_policy("ScaleDown", idle="False")])[0] is None
    m0 = serving_model()
    pinned, events = decide(m0, T0, seen(T0), [gpu_policy("ScaleDown")])  # requests are recent, GPUs idle
    assert pinned == 0 and "its GPUs are idle (DriftPolicy gpus)" in events[0].message


def test_pinned_replicas_fix_the_count_and_drop_hpa_and_pdb() -> None:
    m = model(minReplicas=2, maxReplicas=6)
    cfg = OperatorConfig()
    free = {
        o["kind"]: o
        for o in desired_serving(name="f", namespace="ml", uid="u", spec=m.spec, version=version(1), config=cfg)
    }
    assert "HorizontalPodAutoscaler" in free and "PodDisruptionBudget" in free
    for pinned in (0, 2):
        objs = desired_serving(
            name="f", namespace="ml", uid="u", spec=m.spec, version=version(1), config=cfg, pinned_replicas=pinned
        )
        kinds = {o["kind"]: o for o in objs}
        assert kinds["Deployment"]["spec"]["replicas"] == pinned and "HorizontalPodAutoscaler" not in kinds
        assert ("PodDisruptionBudget" in kinds) == (pinned >= 2)


def test_gpu_queries_prefer_the_profiling_metric_and_fall_back() -> None:
    q = gpu_percent_query("ml", serving_pods("fraud"), "10m")
    sel = '{namespace="ml",pod=~"fraud-[a-z0-9]+-[a-z0-9]+"}'
    assert q == (
        f"(avg(avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{sel}[10m])) * 100)"
        f" or (avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL{sel}[10m])))"
    )


def test_server_options_from_the_spec() -> None:
    args = objects_args(model(workers=3, allowPickle=True, driftMonitoring={"statistics": ["psi"], "windowRows": 500}))
    assert args[args.index("--workers") + 1] == "3" and "--allow-pickle" in args
    assert args[args.index("--drift-statistics") + 1] == "psi"
    assert args[args.index("--drift-window-rows") + 1] == "500"
    plain = objects_args(model())
    assert "--workers" not in plain and "--allow-pickle" not in plain
    assert plain[plain.index("--drift-statistics") + 1] == "psi,ks"


def objects_args(m: MLModel) -> list[str]:
    objs = desired_serving(name="f", namespace="ml", uid="u", spec=m.spec, version=version(1), config=OperatorConfig())
    return list(objs[0]["spec"]["template"]["spec"]["containers"][0]["args"])


def test_the_idle_deadline_is_when_the_next_pass_is_due_and_a_newer_request_moves_it() -> None:
    from modelfleet.reconcilers.scaling import idle_deadline

    m = serving_model()  # serving since T0 - 2 h, idleAfter 30m, never a request
    assert idle_deadline(m.spec, m.status, None) == T0 - 2 * HOUR + 30 * datetime.timedelta(minutes=1)
    assert idle_deadline(m.spec, m.status, seen(T0)) == T0 + 30 * datetime.timedelta(minutes=1)
    assert idle_deadline(m.spec, m.status, Activity(False, error="down")) == T0 - 2 * HOUR + 30 * (HOUR / 60)
    assert idle_deadline(model(**{"minReplicas": 1}).spec, m.status, None) is None  # never scales to zero


def test_a_drift_policy_is_due_again_after_its_interval_or_its_back_off() -> None:
    from modelfleet.reconcilers.driftpolicy import seconds_until_due
    from tests.unit.test_drift_policy import policy

    p = policy()  # interval 1m
    p.status.last_evaluation_time = "2026-11-02T12:00:00Z"
    assert seconds_until_due(p.spec, p.status, T0 + datetime.timedelta(seconds=20)) == 40.0
    p.status.failed_evaluations = 3
    assert seconds_until_due(p.spec, p.status, T0) == 480.0  # 1m x 2^3
    p.status.failed_evaluations = 10
    assert seconds_until_due(p.spec, p.status, T0) == 600.0  # at most 10 min
