"""DriftPolicy evaluation against a real Prometheus (3.16, built from its Go module) and the real API server.

History is written into Prometheus' TSDB with promtool before it starts, so `trigger.for` is tested on ten minutes of
data without waiting ten minutes. The reconciler runs in-process here against the real API server (the MLModel and the
TrainingJobs it creates are real objects; no operator runs, so nothing trains); the operator process, the Kopf
handlers and the MLModel mirror are covered at the end and in tests/e2e."""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfleet.api.v1alpha1.driftpolicy import DriftPolicy
from modelfleet.clients.kube import Kube as ApiKube
from modelfleet.clients.kube import api_client
from modelfleet.clients.prometheus import Prometheus
from modelfleet.config import OperatorConfig
from modelfleet.devcluster.prometheus import PrometheusServer, openmetrics, static_job
from modelfleet.reconcilers.driftpolicy import reconcile_driftpolicy
from modelfleet.status.conditions import get_condition
from tests.argocd import check_health
from tests.samples import sample
from tests.support import Kube, OperatorProcess, condition, wait_for

MODEL = "churn"


@pytest.fixture
def api(kubeconfig: Path) -> ApiKube:
    return ApiKube(api_client(str(kubeconfig)))


@pytest.fixture
def model(kube: Kube, crds: Path, namespace: str) -> dict[str, Any]:
    body = sample("MLModel", "fraud-detector")
    body["metadata"]["name"] = MODEL
    kube.apply(body, namespace)
    got = kube.get("mlm", MODEL, namespace)
    assert got
    return got


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "prometheus"


def drift_history(
    namespace: str, values: list[float], *, feature: str = "tenure", step: float = 15.0, pods: int = 1
) -> str:
    """Series as two model-server pods would export them, the last value at `now`."""
    now = time.time()
    times = [now - step * (len(values) - 1 - i) for i in range(len(values))]
    series = []
    for pod in range(pods):
        instance = f"10.0.0.{pod + 1}:8080"
        labels = {"namespace": namespace, "model": MODEL, "version": "1", "instance": instance}
        series.append(
            (
                "modelfleet_feature_drift",
                {**labels, "feature": feature, "statistic": "psi"},
                list(zip(times, values, strict=True)),
            )
        )
        series.append(
            ("modelfleet_feature_drift", {**labels, "feature": "age", "statistic": "psi"}, [(t, 0.01) for t in times])
        )
        series.append(("modelfleet_drift_window_rows", labels, [(t, 1000.0) for t in times]))
    return openmetrics(series)


def new_policy(namespace: str, **spec: Any) -> DriftPolicy:
    base: dict[str, Any] = {
        "modelRef": {"name": MODEL},
        "interval": "1m",
        "checks": [{"name": "psi-all", "statistic": "psi", "threshold": 0.2}],
        "trigger": {"for": "5m"},
        "action": "Retrain",
        "cooldown": "6h",
        "budget": {"maxRetrainsPerWeek": 2},
    }
    base.update(spec)
    return DriftPolicy.model_validate(
        {"metadata": {"name": "watch", "namespace": namespace, "generation": 1}, "spec": base}
    )


def evaluate(policy: DriftPolicy, api: ApiKube, url: str, timeout: float = 5.0) -> tuple[Any, str | None]:
    """One due evaluation (as the timer would run it), with the status carried over like the API server would."""
    now = datetime.datetime.now(datetime.UTC)
    policy.status.last_evaluation_time = None  # due now
    config = OperatorConfig(prometheus_url=url)
    plan, created = reconcile_driftpolicy(policy, 1, api, config, now, lambda u: Prometheus(u, timeout=timeout))
    policy.status = plan.status
    return plan, created


def cond(policy: DriftPolicy, ctype: str) -> tuple[str, str, str]:
    c = get_condition(policy.status.conditions, ctype)
    assert c is not None
    return c.status, c.reason, c.message


def test_drift_sustained_for_the_trigger_span_retrains_once_with_a_real_trainingjob(
    kube: Kube, api: ApiKube, model: dict[str, Any], namespace: str, prometheus_dir: Path
) -> None:
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(drift_history(namespace, [0.05] * 10 + [0.6] * 30, pods=2))  # above 0.2 for the last 7.5 min
    prom.start()
    try:
        policy = new_policy(namespace, retrainPriorityClass="drift-retrain")
        plan, created = evaluate(policy, api, prom.url)
        assert cond(policy, "Evaluated")[0] == "True"
        assert plan.retrain and created == f"{MODEL}-v1"
        check = policy.status.checks[0]
        assert (
            check.value == pytest.approx(0.6)
            and check.feature == "tenure"
            and check.sustained_value == pytest.approx(0.6)
        )
        tj = kube.get("trainingjob", created, namespace)
        assert tj and tj["spec"]["reason"] == "drift"
        assert tj["metadata"]["ownerReferences"][0]["uid"] == model["metadata"]["uid"]
        assert tj["metadata"]["annotations"]["modelfleet.io/triggered-by"] == "driftpolicy/watch"
        assert tj["spec"]["dataset"] == model["spec"]["dataset"] and tj["spec"]["training"]["estimator"]
        assert tj["spec"]["training"]["workloadPriorityClass"] == "drift-retrain"  # Kueue's priority, from the policy

        # Still drifting: the run it started is active, then the cooldown holds. Never a second TrainingJob.
        plan, created = evaluate(policy, api, prom.url)
        assert not plan.retrain and plan.outcome == "suppressed-active-run" and created is None
        kube.run(
            "patch", "trainingjob", f"{MODEL}-v1", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", '{"status":{"conditions":[{"type":"Succeeded","status":"True","reason":"Completed",'
            '"lastTransitionTime":"2026-01-01T00:00:00Z","message":""}]}}',
        )  # fmt: skip
        plan, created = evaluate(policy, api, prom.url)
        assert plan.outcome == "suppressed-cooldown" and created is None
        assert "cooldown 6h" in (policy.status.suppressed or "")
        assert len(kube.items("trainingjobs", namespace)) == 1
    finally:
        prom.stop()


def test_a_reference_too_small_to_bin_is_unknown_with_its_reason_and_never_retrains(
    kube: Kube, api: ApiKube, model: dict[str, Any], namespace: str, prometheus_dir: Path
) -> None:
    """The served version was trained on 40 rows: whatever Prometheus holds (here a breach), its built-in checks are
    not evaluated, the policy says why, and nothing is retrained."""
    version = {
        "number": 1,
        "trainingJob": f"{MODEL}-v1",
        "artifactUri": "pvc://artifacts/churn/v1",
        "artifactDigest": "sha256:" + "0" * 64,
        "driftReference": {"rows": 40, "psiBins": 0, "insufficient": "the reference has 40 finite values; ..."},
    }
    status = {"versions": [version], "latestVersion": version, "servingVersion": version}
    kube.run(
        "patch", "mlm", MODEL, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(drift_history(namespace, [0.9] * 40))
    prom.start()
    try:
        policy = new_policy(namespace)
        plan, created = evaluate(policy, api, prom.url)
        assert not plan.retrain and created is None
        status_, reason, message = cond(policy, "Evaluated")
        assert (status_, reason) == ("Unknown", "ReferenceTooSmall")
        assert "version 1: the reference has 40 finite values" in message
        assert cond(policy, "DriftDetected")[0] == "Unknown"
        assert [e[1] for e in plan.events] == ["ReferenceTooSmall"]
        assert kube.items("trainingjobs", namespace) == []
    finally:
        prom.stop()


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ([0.05] * 32 + [0.6] * 8, "breaching for the last 2 minutes only"),
        ([0.25, 0.15] * 20, "flapping around the threshold"),
    ],
)
def test_drift_that_does_not_hold_for_the_span_never_retrains(
    api: ApiKube, model: dict[str, Any], namespace: str, prometheus_dir: Path, values: list[float], why: str
) -> None:
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(drift_history(namespace, values))
    prom.start()
    try:
        policy = new_policy(namespace)
        plan, created = evaluate(policy, api, prom.url)
        assert not plan.retrain and created is None, why
        status, reason, message = cond(policy, "DriftDetected")
        assert (status, reason) == ("False", "WithinThresholds")
        if values[-1] > 0.2:
            assert "breaching now, not yet for 5m: psi-all" in message
    finally:
        prom.stop()


def test_data_younger_than_the_span_is_not_sustained(
    api: ApiKube, model: dict[str, Any], namespace: str, prometheus_dir: Path
) -> None:
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(drift_history(namespace, [0.9] * 8))  # two minutes of data, all breaching
    prom.start()
    try:
        policy = new_policy(namespace)
        plan, _ = evaluate(policy, api, prom.url)
        assert not plan.retrain and policy.status.checks[0].sustained_value is None
    finally:
        prom.stop()


def test_weekly_budget_counts_real_trainingjobs(
    kube: Kube, api: ApiKube, model: dict[str, Any], namespace: str, prometheus_dir: Path
) -> None:
    for n in (1, 2):  # two drift retrains this week already
        kube.apply(
            {
                "apiVersion": "modelfleet.io/v1alpha1",
                "kind": "TrainingJob",
                "metadata": {
                    "name": f"{MODEL}-v{n}",
                    "labels": {"modelfleet.io/model": MODEL, "modelfleet.io/version": str(n)},
                },
                "spec": {
                    **{k: model["spec"][k] for k in ("framework", "task", "dataset", "training")},
                    "reason": "drift",
                },
            },
            namespace,
        )
        kube.run(
            "patch", "trainingjob", f"{MODEL}-v{n}", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", '{"status":{"conditions":[{"type":"Succeeded","status":"True","reason":"Completed",'
            '"lastTransitionTime":"2026-01-01T00:00:00Z","message":""}]}}',
        )  # fmt: skip
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(drift_history(namespace, [0.6] * 40))
    prom.start()
    try:
        policy = new_policy(namespace, cooldown="1m")
        plan, created = evaluate(policy, api, prom.url)
        assert not plan.retrain and created is None
        assert cond(policy, "BudgetExhausted")[:2] == ("True", "MaxRetrainsPerWeek")
        assert policy.status.retrains_this_week == 2
        assert any(e[1] == "RetrainSuppressed" and "maxRetrainsPerWeek 2" in e[2] for e in plan.events)
        # The status the reconciler computed, as the operator writes it.
        body = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "watch", "generation": 1},
        }
        check_health(
            {**body, "spec": policy.spec.wire(), "status": policy.status.wire()}, "Degraded", "budget-exhausted"
        )
    finally:
        prom.stop()


def _silent_server() -> tuple[socket.socket, int]:
    """A TCP port that accepts connections and never answers: a Prometheus that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return sock, sock.getsockname()[1]


def test_prometheus_down_slow_empty_or_nan_is_unknown_and_never_retrains(
    kube: Kube, api: ApiKube, model: dict[str, Any], namespace: str, prometheus_dir: Path
) -> None:
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(drift_history(namespace, [0.6] * 40))
    prom.start()
    prom.stop()  # down: nothing listens on its port any more
    policy = new_policy(namespace)
    plan, created = evaluate(policy, api, prom.url)
    status, reason, message = cond(policy, "Evaluated")
    assert (status, reason) == ("Unknown", "PrometheusUnavailable") and "unreachable" in message
    assert not plan.retrain and created is None

    silent, port = _silent_server()
    try:
        started = time.monotonic()
        plan, _ = evaluate(policy, api, f"http://127.0.0.1:{port}", timeout=1.0)
        assert time.monotonic() - started < 5
        assert "did not answer within 1s" in cond(policy, "Evaluated")[2] and not plan.retrain
    finally:
        silent.close()

    prom.start()
    try:
        empty = new_policy(
            namespace, checks=[{"name": "gone", "statistic": "psi", "features": ["nope"], "threshold": 0.2}]
        )
        plan, _ = evaluate(empty, api, prom.url)
        assert cond(empty, "Evaluated")[:2] == ("Unknown", "NoData") and not plan.retrain
        nan = new_policy(
            namespace, checks=[{"name": "nan", "query": "vector(NaN)", "threshold": 0.2}], trigger={"for": "0s"}
        )
        plan, _ = evaluate(nan, api, prom.url)
        assert cond(nan, "Evaluated")[:2] == ("Unknown", "NotANumber") and not plan.retrain
        bad = new_policy(namespace, checks=[{"name": "bad", "query": "sum(", "threshold": 0.2}], trigger={"for": "0s"})
        plan, _ = evaluate(bad, api, prom.url)
        assert "Prometheus rejected the query" in cond(bad, "Evaluated")[2]
        assert policy.status.failed_evaluations == 2
    finally:
        prom.stop()
    assert kube.items("trainingjobs", namespace) == []


def test_a_real_model_server_scraped_by_prometheus_feeds_the_checks(
    api: ApiKube, model: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    from tests.datasets import write
    from tests.runtime.test_server import Server, rows, v2_inputs
    from tests.runtime.test_trainer import run_trainer, spec

    data = write("breast_cancer", tmp_path / "bc.csv")
    code, _, err = run_trainer(
        tmp_path, spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression", max_iter=500), "art"
    )
    assert code == 0, err
    server = Server(
        tmp_path / "art", "--model-name", MODEL, "--drift-window-rows", "300", "--drift-min-rows", "100"
    ).wait_ready()
    prom = PrometheusServer(
        tmp_path / "prometheus", [static_job("servers", [f"127.0.0.1:{server.port}"], {"namespace": namespace})]
    )
    prom.start()
    infer = f"/v2/models/{MODEL}/infer"
    try:
        cols = rows("breast_cancer", data, 300)
        for start in range(0, 300, 50):
            assert server.post(infer, v2_inputs({k: v[start : start + 50] for k, v in cols.items()}))[0] == 200
        prom.wait_for_series(f'modelfleet_drift_window_rows{{model="{MODEL}"}} >= 300')
        policy = new_policy(namespace, trigger={"for": "0s"}, action="Alert", checks=[
            {"name": "psi-all", "statistic": "psi", "threshold": 0.2},
            {"name": "ks-radius", "statistic": "ks", "features": ["mean_radius"], "threshold": 0.3},
        ])  # fmt: skip
        evaluate(policy, api, prom.url)
        assert cond(policy, "DriftDetected")[:2] == ("False", "WithinThresholds")
        quiet = {c.name: c.value for c in policy.status.checks}
        assert all(v is not None and v < 0.2 for v in quiet.values())

        shifted = dict(cols)
        shifted["mean_radius"] = cols["mean_radius"] + 3 * cols["mean_radius"].std()
        for start in range(0, 300, 50):
            assert server.post(infer, v2_inputs({k: v[start : start + 50] for k, v in shifted.items()}))[0] == 200
        wait_for(
            lambda: prom.query('modelfleet_feature_drift{feature="mean_radius",statistic="ks"} > 0.5'),
            30,
            "the shift scraped",
        )
        plan, created = evaluate(policy, api, prom.url)
        assert created is None and plan.outcome == "alert"
        assert cond(policy, "DriftDetected")[:2] == ("True", "ThresholdBreached")
        loud = {c.name: c for c in policy.status.checks}
        assert loud["psi-all"].feature == "mean_radius" and loud["psi-all"].value > 1.0  # type: ignore[operator]
        assert loud["ks-radius"].value > 0.5  # type: ignore[operator]
    finally:
        prom.stop()
        server.stop()


def test_the_operator_writes_policy_status_and_mirrors_drift_into_the_model(
    kube: Kube, kubeconfig: Path, model: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    prom = PrometheusServer(tmp_path / "prometheus").start()
    op = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", "--namespace", namespace, env={"MODELFLEET_PROMETHEUS_URL": prom.url}
    ).start()
    try:
        body = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "watch"},
            "spec": {
                "modelRef": {"name": MODEL},
                "interval": "2s",
                "checks": [{"name": "errors", "query": "vector(0.05)", "threshold": 0.1}],
                "trigger": {"for": "0s"},
                "action": "Alert",
            },
        }
        kube.apply(body, namespace)
        policy = wait_for(
            lambda: (
                (p := kube.get("dpol", "watch", namespace))
                and (condition(p, "Evaluated") or {}).get("status") == "True"
                and p
            ),
            30,
            "the first evaluation",
        )
        assert policy["status"]["checks"][0]["value"] == 0.05
        assert condition(policy, "DriftDetected")["status"] == "False"  # type: ignore[index]
        check_health(policy, "Healthy", "no-drift")
        wait_for(
            lambda: (condition(kube.get("mlm", MODEL, namespace), "Drifted") or {}).get("status") == "False",
            30,
            "mirror",
        )

        body["spec"]["checks"][0]["query"] = "vector(0.5)"
        kube.apply(body, namespace)
        wait_for(
            lambda: (condition(kube.get("dpol", "watch", namespace), "DriftDetected") or {}).get("status") == "True",
            30,
            "drift detected",
        )
        drifted = wait_for(
            lambda: (
                (condition(kube.get("mlm", MODEL, namespace), "Drifted") or {}).get("status") == "True"
                and condition(kube.get("mlm", MODEL, namespace), "Drifted")
            ),
            30,
            "the model to mirror it",
        )
        assert "DriftPolicy watch: errors 0.5 > 0.1" in drifted["message"]
        check_health(kube.get("dpol", "watch", namespace), "Healthy", "drift-detected-alert")
        events = [e["reason"] for e in kube.items("events", namespace, field_selector="involvedObject.name=watch")]
        assert "DriftDetected" in events
        assert op.counter("modelfleet_drift_evaluations_total", namespace=namespace, result="alert") >= 1
        assert op.samples("modelfleet_drift_detected", namespace=namespace, policy="watch", model=MODEL) == [1.0]

        prom.stop()
        wait_for(
            lambda: (
                (condition(kube.get("dpol", "watch", namespace), "Evaluated") or {}).get("reason")
                == "PrometheusUnavailable"
            ),
            60,
            "Evaluated=Unknown once Prometheus is gone",
        )
        assert (
            op.counter("modelfleet_retrains_suppressed_total", namespace=namespace, reason="prometheus-unavailable")
            >= 1
        )
        check_health(kube.get("dpol", "watch", namespace), "Degraded", "prometheus-unavailable")

        # Deleted objects take their series with them: a stale drift_detected = 1 would keep the alert firing.
        assert op.samples("modelfleet_model_info", namespace=namespace, model=MODEL) == [1.0]
        kube.run("delete", "dpol", "watch", "-n", namespace, "--wait=true", "--timeout=60s")
        wait_for(
            lambda: op.samples("modelfleet_drift_detected", namespace=namespace, policy="watch") == [],
            30,
            "the deleted policy's gauge to leave /metrics",
        )
        kube.run("delete", "mlm", MODEL, "-n", namespace, "--wait=true", "--timeout=60s")
        wait_for(
            lambda: op.samples("modelfleet_model_info", namespace=namespace, model=MODEL) == [],
            30,
            "the deleted model's info series to leave /metrics",
        )
    finally:
        op.stop()
        prom.stop()


def gpu_history(namespace: str, pod: str, values: list[float], step: float = 60.0) -> str:
    now = time.time()
    labels = {"namespace": namespace, "pod": pod, "gpu": "0", "instance": "dcgm:9400"}
    points = [(now - step * (len(values) - 1 - i), v) for i, v in enumerate(values)]
    return openmetrics([("DCGM_FI_DEV_GPU_UTIL", labels, points)])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([2.0] * 40, ("True", "BelowThreshold")),
        ([2.0] * 30 + [60.0] + [2.0] * 9, ("False", "InUse")),
        ([2.0] * 10, ("False", "NotEnoughHistory")),
    ],
)
def test_utilization_rule_reads_dcgm_history(
    api: ApiKube,
    model: dict[str, Any],
    namespace: str,
    prometheus_dir: Path,
    values: list[float],
    expected: tuple[str, str],
) -> None:
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(gpu_history(namespace, f"{MODEL}-6d4b8c7f9-x2kq8", values))  # one point a minute
    prom.start()
    try:
        policy = new_policy(
            namespace,
            checks=[{"name": "fine", "query": "vector(0)", "threshold": 1}],
            trigger={"for": "0s"},
            utilization={"gpuIdleBelowPercent": 5, "for": "30m", "action": "ScaleDown"},
        )
        plan, _ = evaluate(policy, api, prom.url)
        assert cond(policy, "GpuIdle")[:2] == expected
        if expected[0] == "True":
            assert policy.status.gpu_idle_since and any(e[1] == "GpuIdle" for e in plan.events)
    finally:
        prom.stop()


def test_gpu_utilisation_of_a_run_from_a_scraped_dcgm_exporter(namespace: str, tmp_path: Path) -> None:
    import json

    from modelfleet.devcluster.dcgm import serve
    from modelfleet.devcluster.processes import free_port
    from modelfleet.reconcilers.utilization import read_training_gpu_percent

    values = tmp_path / "dcgm.json"
    values.write_text(json.dumps([{"namespace": namespace, "pod": "churn-v1-abcde", "util": 42.0}]))
    port = free_port()
    exporter = serve(port, values)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    prom = PrometheusServer(tmp_path / "prometheus", [static_job("dcgm", [f"127.0.0.1:{port}"], {})]).start()
    try:
        start = datetime.datetime.now(datetime.UTC)
        prom.wait_for_series("DCGM_FI_PROF_GR_ENGINE_ACTIVE")
        time.sleep(3)
        client = Prometheus(prom.url)
        percent = read_training_gpu_percent(client, namespace, "churn-v1", start, datetime.datetime.now(datetime.UTC))
        assert percent == pytest.approx(42.0)
        # Without the profiling metric group the device utilisation is the fallback; another Job's pods don't count.
        values.write_text(
            json.dumps(
                [
                    {"namespace": namespace, "pod": "churn-v2-fghij", "util": 17.0, "profiling": False},
                    {"namespace": namespace, "pod": "other-v1-zzzzz", "util": 99.0},
                ]
            )
        )
        wait_for(lambda: prom.query('DCGM_FI_DEV_GPU_UTIL{pod="churn-v2-fghij"}'), 30, "the new values scraped")
        time.sleep(2)
        now = datetime.datetime.now(datetime.UTC)
        assert read_training_gpu_percent(client, namespace, "churn-v2", now - datetime.timedelta(seconds=2), now) == (
            pytest.approx(17.0)
        )
        assert read_training_gpu_percent(client, namespace, "churn-v9", start, now) is None
    finally:
        prom.stop()
        exporter.shutdown()


def three_models(namespace: str) -> str:
    """Forty scrapes (15 s apart) of three models in one namespace: steady drift, drift only lately, and a NaN on one
    feature."""
    now = time.time()
    times = [now - 15.0 * (39 - i) for i in range(40)]
    series = []
    for model, tail in (("steady", 0.6), ("late", 0.05), ("broken", float("nan"))):
        labels = {"namespace": namespace, "model": model, "version": "1", "instance": f"{model}:8080"}
        tenure = [0.6] * 30 + [tail] * 10 if model != "late" else [0.05] * 36 + [0.7] * 4
        for feature, values in (("tenure", tenure), ("age", [0.01] * 40)):
            points = list(zip(times, values, strict=True))
            series.append(("modelfleet_feature_drift", {**labels, "feature": feature, "statistic": "psi"}, points))
        series.append(("modelfleet_drift_window_rows", labels, [(t, 500.0) for t in times]))
    return openmetrics(series)


def test_built_in_checks_read_per_namespace_give_each_policy_its_own_reading(
    kube: Kube, namespace: str, prometheus_dir: Path
) -> None:
    from modelfleet.api.v1alpha1.driftpolicy import Check
    from modelfleet.reconcilers.drift_batch import GroupReadings, group_of
    from modelfleet.reconcilers.drift_queries import check_queries, read_check

    prom = PrometheusServer(prometheus_dir)
    prom.backfill(three_models(namespace))
    prom.start()
    try:
        client = Prometheus(prom.url)
        at = datetime.datetime.now(datetime.UTC)
        groups = GroupReadings()
        seen: dict[tuple[str, float, bool], Any] = {}
        for check in (
            Check.model_validate({"name": "psi", "statistic": "psi", "threshold": 0.2}),
            Check.model_validate({"name": "psi", "statistic": "psi", "threshold": 0.2, "features": ["age"]}),
        ):
            for for_seconds in (0.0, 300.0):
                key = group_of(check, namespace=namespace, url=prom.url, for_seconds=for_seconds, window="10m")
                assert key is not None
                for model in ("steady", "late", "broken", "absent"):
                    q = check_queries(check, namespace=namespace, model=model, for_seconds=for_seconds, window="10m")
                    alone = read_check(client, q, at)
                    shared = groups.read(key, model, "psi", client, at, fresh=60)
                    assert shared == alone, (model, for_seconds, check.features)
                    seen[(model, for_seconds, bool(check.features))] = alone
        assert seen[("steady", 300.0, False)].sustained == pytest.approx(0.6)
        assert seen[("late", 0.0, False)].value == pytest.approx(0.7)
        assert seen[("late", 300.0, False)].sustained == pytest.approx(0.05)  # breaching lately, not for 5 minutes
        assert seen[("broken", 0.0, False)].error_reason == "NotANumber"
        assert seen[("broken", 0.0, True)].value == pytest.approx(0.01)  # the NaN is on a feature not checked
        assert seen[("absent", 0.0, False)].error_reason == "NoData"
        # Four groups (two feature lists x two spans), each asked once for all four models.
        assert groups.queries_run == 4
    finally:
        prom.stop()


def test_custom_queries_without_model_are_read_once_for_the_namespace_and_answer_as_each_policys_own(
    kube: Kube, namespace: str, prometheus_dir: Path
) -> None:
    """A fleet query (no `$model`) shared through the namespace's groups gives each model what the same check written
    with `$model` gives it alone; a query whose series name no model gives every policy the whole answer."""
    from modelfleet.api.v1alpha1.driftpolicy import Check
    from modelfleet.reconcilers.drift_batch import GroupReadings, group_of
    from modelfleet.reconcilers.drift_queries import check_queries, read_check

    selector = 'namespace="$namespace",statistic="psi",feature="tenure"'
    pairs = [  # (the fleet query, the same check for one model)
        (
            f"max by (model) (modelfleet_feature_drift{{{selector}}})",
            f'max(modelfleet_feature_drift{{{selector},model="$model"}})',
        ),
        (
            'sum(modelfleet_drift_window_rows{namespace="$namespace"}) / 1500',
            'sum(modelfleet_drift_window_rows{namespace="$namespace"}) / 1500',
        ),
    ]
    prom = PrometheusServer(prometheus_dir)
    prom.backfill(three_models(namespace))
    prom.start()
    try:
        client = Prometheus(prom.url)
        at = datetime.datetime.now(datetime.UTC)
        groups = GroupReadings()
        seen: dict[tuple[int, str, float], Any] = {}
        for i, (fleet, alone) in enumerate(pairs):
            shared = Check.model_validate({"name": "custom", "query": fleet, "threshold": 0.2})
            own = Check.model_validate({"name": "custom", "query": alone, "threshold": 0.2})
            for for_seconds in (0.0, 300.0):
                key = group_of(shared, namespace=namespace, url=prom.url, for_seconds=for_seconds, window="10m")
                assert key is not None and f'namespace="{namespace}"' in (key.query or "")
                for model in ("steady", "late", "broken", "absent"):
                    q = check_queries(own, namespace=namespace, model=model, for_seconds=for_seconds, window="10m")
                    reading = groups.read(key, model, "custom", client, at, fresh=60)
                    if i == 0 and model == "absent":  # the fleet query has no series for it; alone, the same
                        assert reading.error_reason == "NoData"
                    assert reading == read_check(client, q, at), (fleet, model, for_seconds)
                    seen[(i, model, for_seconds)] = reading
        assert seen[(0, "steady", 300.0)].sustained == pytest.approx(0.6)
        assert seen[(0, "late", 0.0)].value == pytest.approx(0.7)
        assert seen[(0, "late", 300.0)].sustained == pytest.approx(0.05)
        assert seen[(0, "broken", 0.0)].error_reason == "NotANumber"
        assert seen[(1, "absent", 0.0)].value == pytest.approx(1.0)  # about the namespace: every policy's answer
        # Four groups (two queries x two spans), each asked once for all four models; a query naming $model has none.
        assert groups.queries_run == 4
        per_model = Check.model_validate({"name": "custom", "query": pairs[0][1], "threshold": 0.2})
        assert group_of(per_model, namespace=namespace, url=prom.url, for_seconds=0, window="10m") is None
    finally:
        prom.stop()
