"""Pure training rules: the Job builder, the fingerprint, TrainingJob status from the Job and its pods, caching and
MLModel versions."""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

import numpy as np
import pytest

from modelfleet.api.v1alpha1 import MLModel, TrainingJob
from modelfleet.builders.training import (
    KUEUE_QUEUE_LABEL,
    UnsupportedUri,
    desired_training_job,
    job_name,
    local_path,
    training_fingerprint,
)
from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.mlmodel import plan_mlmodel, promotion
from modelfleet.reconcilers.trainingjob import TrainingObservation, find_cache_source, plan_trainingjob
from modelfleet.status.conditions import get_condition
from tests.samples import sample

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
CFG = OperatorConfig()


def tj(name: str = "demand-v1", **spec_changes: Any) -> TrainingJob:
    doc = sample("MLModel", "demand-forecast")
    spec = {k: doc["spec"][k] for k in ("framework", "task", "dataset", "training")}
    spec["output"] = {"uri": "pvc://model-store/demand/v1"}
    spec.update(spec_changes)
    return parse(
        TrainingJob,
        {
            "metadata": {
                "name": name,
                "namespace": "ml",
                "uid": "u-1",
                "generation": 1,
                "labels": {"modelfleet.io/team": "supply-chain"},
            },
            "spec": spec,
        },
    )


def build(t: TrainingJob) -> dict[str, Any]:
    return desired_training_job(
        name="demand-v1",
        namespace="ml",
        uid="u-1",
        labels={"modelfleet.io/team": "sc"},
        spec=t.spec,
        output_uri=t.spec.output.uri,
        fingerprint="a" * 64,  # type: ignore[union-attr]
        config=CFG,
    )


def test_gpu_request_is_a_whole_limit_of_the_configured_resource() -> None:
    job = build(tj())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    t = tj()
    t.spec.training.resources.gpu_resource = "nvidia.com/mig-1g.10gb"
    assert build(t)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"


def test_kueue_queue_label_and_suspend() -> None:
    job = build(tj())
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-supply-chain"
    assert job["spec"]["suspend"] is True
    t = tj()
    t.spec.training.queue_name = None
    unqueued = build(t)
    assert KUEUE_QUEUE_LABEL not in unqueued["metadata"]["labels"] and "suspend" not in unqueued["spec"]


def test_placement_and_limits() -> None:
    pod = build(tj())["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["priorityClassName"] == "batch-low"
    job = build(tj())["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (2, 14400, 86400)
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]


def test_pod_passes_the_restricted_pod_security_standard() -> None:
    pod = build(tj())["spec"]["template"]["spec"]
    c = pod["containers"][0]["securityContext"]
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert c["allowPrivilegeEscalation"] is False and c["capabilities"]["drop"] == ["ALL"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_volumes_follow_pvc_uris_and_the_spec_reaches_the_trainer() -> None:
    t = tj(dataset={**sample("MLModel", "demand-forecast")["spec"]["dataset"], "uri": "pvc://datasets/w.parquet"})
    pod = build(t)["spec"]["template"]["spec"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"datasets": True, "model-store": False}
    args = pod["containers"][0]["args"]
    assert args == ["--output-dir", "/mnt/pvc/model-store/demand/v1", "--output-uri", "pvc://model-store/demand/v1"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert json.loads(env["MODELFLEET_TRAINING_SPEC"])["dataset"]["uri"] == "pvc://datasets/w.parquet"


def build_with(t: TrainingJob, config: OperatorConfig) -> dict[str, Any]:
    out = t.spec.output.uri  # type: ignore[union-attr]
    return desired_training_job(
        name="d", namespace="ml", uid="u", labels={}, spec=t.spec, output_uri=out, fingerprint="a" * 64, config=config
    )


def test_an_s3_run_mounts_no_claim_and_gets_the_store_credentials() -> None:
    dataset = {**sample("MLModel", "demand-forecast")["spec"]["dataset"], "uri": "s3://data/w.parquet"}
    operators = OperatorConfig(s3_endpoint="http://minio:9000", s3_secret_name="modelfleet-s3")
    pod = build_with(tj(dataset=dataset, output={"uri": "s3://models/demand/v1"}), operators)["spec"]["template"][
        "spec"
    ]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    container = pod["containers"][0]
    assert container["args"] == ["--output-dir", "/tmp/artifact", "--output-uri", "s3://models/demand/v1"]
    assert container["envFrom"] == [{"secretRef": {"name": "modelfleet-s3"}}]
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://minio:9000"} in container["env"]
    # The spec's own Secret replaces the operator's, endpoint included (an env entry would override the Secret's).
    own = tj(dataset=dataset, output={"uri": "s3://models/demand/v1", "secretName": "team-s3"})
    container = build_with(own, operators)["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "team-s3"}}]
    assert not any(e["name"] == "AWS_ENDPOINT_URL" for e in container["env"])
    # A run with nothing on S3 gets no credentials at all.
    on_claims = tj(dataset={**dataset, "uri": "pvc://datasets/w.parquet"})
    assert "envFrom" not in build_with(on_claims, operators)["spec"]["template"]["spec"]["containers"][0]
    # An s3:// dataset alone is enough: the run's Secret reads the data too.
    assert "envFrom" in build_with(tj(dataset=dataset), operators)["spec"]["template"]["spec"]["containers"][0]


def test_a_queued_run_carries_its_kueue_queue_and_priority_class_on_the_job() -> None:
    training = {**sample("MLModel", "demand-forecast")["spec"]["training"], "queueName": "gpu"}
    training["workloadPriorityClass"] = "drift-retrain"
    built = build(tj(training=training))
    assert built["spec"]["suspend"] is True
    labels = built["metadata"]["labels"]
    assert labels[KUEUE_QUEUE_LABEL] == "gpu" and labels["kueue.x-k8s.io/priority-class"] == "drift-retrain"
    assert "kueue.x-k8s.io/priority-class" not in build(tj())["metadata"]["labels"]


def test_a_gs_run_is_built_like_an_s3_run_and_its_pods_get_the_secret() -> None:
    """gs:// output goes through the same upload path as s3:// (Google's S3-compatible API, HMAC keys from the same
    Secret): built in scratch space, no claim mounted, the Secret's keys in the environment."""
    dataset = {**sample("MLModel", "demand-forecast")["spec"]["dataset"], "uri": "gs://data/w.parquet"}
    operators = OperatorConfig(s3_secret_name="modelfleet-s3")
    run = tj(dataset=dataset, output={"uri": "gs://models/demand/v1", "secretName": "team-gcs"})
    pod = build_with(run, operators)["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    container = pod["containers"][0]
    assert container["args"] == ["--output-dir", "/tmp/artifact", "--output-uri", "gs://models/demand/v1"]
    assert container["envFrom"] == [{"secretRef": {"name": "team-gcs"}}]
    assert local_path("gs://models/demand/v1", "/mnt/pvc") == local_path("s3://models/demand/v1", "/mnt/pvc")
    with pytest.raises(UnsupportedUri, match="must be a pvc://, s3://, gs:// or file://"):
        local_path("https://models.example/demand/v1", "/mnt/pvc")


def test_names_are_deterministic_and_bounded() -> None:
    assert build(tj())["metadata"]["name"] == build(tj())["metadata"]["name"] == job_name("demand-v1", "a" * 64)
    long = job_name("x" * 200, "b" * 64)
    assert len(long) <= 63 and long.endswith("-bbbbbbbbbb")
    assert build(tj())["metadata"]["ownerReferences"][0]["controller"] is True


def test_fingerprint_covers_what_changes_the_result_and_nothing_else() -> None:
    base = tj()
    fp = lambda t, image="img", salt="": training_fingerprint(  # noqa: E731
        t.spec.framework, t.spec.task, t.spec.dataset, t.spec.training, image, salt
    )
    same = copy.deepcopy(base)
    same.spec.training.resources.gpu, same.spec.training.queue_name, same.spec.training.timeout = 4, None, "9h"
    assert fp(base) == fp(same)
    for mutate in (
        lambda t: t.spec.training.hyperparameters.update(epochs=1),
        lambda t: setattr(t.spec.dataset, "version", "2"),
        lambda t: setattr(t.spec.dataset, "uri", "s3://other/x.parquet"),
        lambda t: setattr(t.spec.training.validation, "split", 0.3),
    ):
        changed = copy.deepcopy(base)
        mutate(changed)
        assert fp(changed) != fp(base)
    assert fp(base, image="other") != fp(base) and fp(base, salt="drift-1") != fp(base)


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "demand-v1-aaaa", "labels": {}}, "spec": {}, "status": status}


def pod(phase: str, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-11-01T11:00:00Z"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase, **extra},
    }


def plan(obs: TrainingObservation, t: TrainingJob | None = None) -> Any:
    return plan_trainingjob(
        t or tj(), obs, fingerprint="a" * 64, name_of_job="demand-v1-aaaa", generation=1, config=CFG, now=T0
    )


def cond(status: Any, ctype: str) -> tuple[str, str]:
    c = get_condition(status.conditions, ctype)
    assert c is not None
    return c.status, c.reason


def test_no_job_yet_creates_one() -> None:
    p = plan(TrainingObservation(job=None))
    assert p.create_job and p.status.job_name == "demand-v1-aaaa" and p.status.phase == "Pending"
    assert [e.reason for e in p.events] == ["TrainingStarted"]


def test_suspended_job_is_queued_for_kueue() -> None:
    j = job()
    j["spec"]["suspend"] = True
    j["metadata"]["labels"][KUEUE_QUEUE_LABEL] = "q"
    p = plan(TrainingObservation(job=j))
    assert cond(p.status, "Queued") == ("True", "AwaitingAdmission") and p.status.phase == "Queued"


def workload(*conditions: dict[str, str], cluster_queue: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if cluster_queue:
        status["admission"] = {"clusterQueue": cluster_queue}
    return {"metadata": {"name": "job-demand-v1-aaaa-1f2e3"}, "spec": {"queueName": "q"}, "status": status}


def test_a_job_kueue_holds_is_queued_with_kueues_own_reason_and_message() -> None:
    j = job()
    j["spec"]["suspend"] = True
    j["metadata"]["labels"][KUEUE_QUEUE_LABEL] = "q"
    pending = {
        "type": "QuotaReserved",
        "status": "False",
        "reason": "Pending",
        "message": "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor "
        "sim-h100, 4 more needed",
    }
    p = plan(TrainingObservation(job=j, workload=workload(pending)))
    queued = get_condition(p.status.conditions, "Queued")
    assert queued is not None and (queued.status, queued.reason) == ("True", "Pending")
    assert queued.message == pending["message"] and p.status.phase == "Queued"
    missing = {
        "type": "QuotaReserved",
        "status": "False",
        "reason": "Inadmissible",
        "message": "LocalQueue q doesn't exist",
    }
    assert cond(plan(TrainingObservation(job=j, workload=workload(missing))).status, "Queued") == (
        "True",
        "Inadmissible",
    )
    # Quota reserved, admission checks still open: still queued, in Kueue's words.
    reserved = {
        "type": "QuotaReserved",
        "status": "True",
        "reason": "QuotaReserved",
        "message": "Quota reserved in ClusterQueue gpu",
    }
    assert cond(plan(TrainingObservation(job=j, workload=workload(reserved))).status, "Queued") == (
        "True",
        "QuotaReserved",
    )
    # A Workload with nothing to say yet (just made): the generic wait.
    assert cond(plan(TrainingObservation(job=j, workload=workload())).status, "Queued") == ("True", "AwaitingAdmission")


def test_an_admitted_job_names_the_cluster_queue_that_admitted_it() -> None:
    admitted = workload(
        {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": ""},
        {"type": "Admitted", "status": "True", "reason": "Admitted", "message": ""},
        cluster_queue="gpu-team-a",
    )
    for phase in ("Pending", "Running"):
        p = plan(TrainingObservation(job=job(), pods=[pod(phase)], workload=admitted))
        queued = get_condition(p.status.conditions, "Queued")
        assert queued is not None and queued.reason == "Admitted"
        assert "admitted by Kueue's ClusterQueue gpu-team-a" in queued.message


def test_unschedulable_pod_is_queued_then_fails_after_the_timeout() -> None:
    unsched = pod(
        "Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes: 3 Insufficient nvidia.com/gpu",
                "lastTransitionTime": "2026-11-01T11:58:00Z",
            }
        ],
    )
    p = plan(TrainingObservation(job=job(active=1), pods=[unsched]))
    assert cond(p.status, "Queued") == ("True", "Unschedulable") and not p.delete_job
    assert [e.reason for e in p.events] == ["Unschedulable"]
    unsched["status"]["conditions"][0]["lastTransitionTime"] = "2026-11-01T11:40:00Z"
    p = plan(TrainingObservation(job=job(active=1), pods=[unsched]))
    assert cond(p.status, "Failed") == ("True", "Unschedulable") and p.delete_job


def test_success_parses_the_result_and_accounts_gpu_seconds() -> None:
    result = {
        "metrics": {"rmse": 1.5},
        "artifactUri": "pvc://s/v1",
        "artifactDigest": "sha256:x",
        "rows": 10,
        "datasetDigest": "sha256:d",
        "durationSeconds": 3.0,
    }
    done = pod(
        "Succeeded",
        containerStatuses=[
            {"name": "trainer", "state": {"terminated": {"exitCode": 0, "message": json.dumps(result)}}}
        ],
    )
    j = job(
        startTime="2026-11-01T11:50:00Z",
        completionTime="2026-11-01T11:55:00Z",
        succeeded=1,
        conditions=[{"type": "Complete", "status": "True"}],
    )
    p = plan(TrainingObservation(job=j, pods=[done]))
    assert cond(p.status, "Succeeded") == ("True", "Trained") and cond(p.status, "Ready")[0] == "True"
    assert p.status.result and p.status.result.metrics == {"rmse": 1.5}
    assert p.status.gpu_seconds == 300.0  # 5 minutes x 1 GPU
    assert p.status.phase == "Succeeded" and p.events[-1].reason == "Succeeded"


@pytest.mark.parametrize(
    ("job_reason", "terminated", "reason", "text"),
    [
        (
            "PodFailurePolicy",
            {"exitCode": 2, "message": '{"error":"dataset has no target column \'y\'"}'},
            "TrainingError",
            "no target column",
        ),
        (
            "PodFailurePolicy",
            {
                "exitCode": 2,
                "message": '{"error":"access to bucket \'models\' was refused","reason":"ArtifactUnavailable"}',
            },
            "ArtifactUnavailable",
            "bucket 'models'",
        ),
        (  # a reason that is not a condition reason is not copied into one
            "PodFailurePolicy",
            {"exitCode": 2, "message": '{"error":"no rows","reason":"not a reason!"}'},
            "TrainingError",
            "no rows",
        ),
        ("BackoffLimitExceeded", {"exitCode": 137, "reason": "OOMKilled"}, "OOMKilled", "out of memory"),
        ("DeadlineExceeded", {}, "DeadlineExceeded", "timeout"),
    ],
)
def test_failures_carry_the_most_specific_reason(
    job_reason: str, terminated: dict[str, Any], reason: str, text: str
) -> None:
    failed = pod("Failed", containerStatuses=[{"name": "trainer", "state": {"terminated": terminated}}])
    j = job(failed=1, conditions=[{"type": "Failed", "status": "True", "reason": job_reason, "message": "m"}])
    p = plan(TrainingObservation(job=j, pods=[failed]))
    status, got = cond(p.status, "Failed")
    assert (status, got) == ("True", reason)
    assert text in get_condition(p.status.conditions, "Failed").message  # type: ignore[union-attr]


def test_a_finished_run_never_changes() -> None:
    t = tj()
    t.status = plan(TrainingObservation(job=job(failed=1, conditions=[{"type": "Failed", "status": "True"}]))).status
    again = plan(TrainingObservation(job=None), t)
    assert again.status == t.status.model_copy(update={"observed_generation": 1}) and not again.create_job


def succeeded_tj(name: str, fingerprint: str, created: str, uri: str = "pvc://s/v1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {
            "fingerprint": fingerprint,
            "conditions": [{"type": "Succeeded", "status": "True"}],
            "result": {"metrics": {"r2": 0.5}, "artifactUri": uri, "artifactDigest": "sha256:x"},
        },
    }


def test_cache_hit_reuses_the_oldest_run_whose_artifact_exists() -> None:
    cands = [
        succeeded_tj("b", "fp", "2026-02-01"),
        succeeded_tj("a", "fp", "2026-01-01", "pvc://gone"),
        succeeded_tj("c", "other", "2025-01-01"),
    ]
    src = find_cache_source(cands, "fp", "me", lambda uri: uri != "pvc://gone")
    assert src and src["metadata"]["name"] == "b"
    assert find_cache_source(cands, "fp", "me", lambda uri: None)["metadata"]["name"] == "a"  # type: ignore[index]
    p = plan(TrainingObservation(job=None, cache_source=src))
    assert not p.create_job and p.status.cached_from == "b" and cond(p.status, "CacheHit") == ("True", "CacheHit")
    assert cond(p.status, "Succeeded")[0] == "True" and p.status.job_name is None


def mlmodel(**spec: Any) -> MLModel:
    doc = sample("MLModel", "fraud-detector")
    doc["metadata"].update(namespace="ml", uid="m-1", generation=1)
    doc["spec"].update(spec)
    return parse(MLModel, doc)


def owned_tj(
    number: int,
    fp: str,
    succeeded: bool | None,
    metrics: dict[str, float] | None = None,
    dataset_version: str = "2026-11",
) -> dict[str, Any]:
    conds = (
        []
        if succeeded is None
        else [
            {
                "type": "Succeeded" if succeeded else "Failed",
                "status": "True",
                "reason": "TrainingError",
                "message": "boom",
            }
        ]
    )
    st: dict[str, Any] = {"conditions": conds, "fingerprint": fp}
    if succeeded:
        st["result"] = {
            "metrics": metrics or {"roc_auc": 0.9},
            "artifactUri": f"pvc://s/v{number}",
            "artifactDigest": "sha256:d",
        }
        st["completionTime"] = "2026-11-01T12:00:00Z"
    return {
        "metadata": {
            "name": f"fraud-detector-v{number}",
            "labels": {"modelfleet.io/version": str(number), "modelfleet.io/fingerprint": fp[:40]},
        },
        "spec": {"reason": "initial", "dataset": {"version": dataset_version}},
        "status": st,
    }


def mplan(m: MLModel, tjs: list[dict[str, Any]], fp: str = "f" * 64) -> Any:
    return plan_mlmodel(m, tjs, fingerprint=fp, generation=1, config=CFG, now=T0)


def test_first_version_is_requested_then_recorded() -> None:
    m = mlmodel()
    first = mplan(m, [])
    assert first.create["metadata"]["name"] == "fraud-detector-v1" and first.create["spec"]["reason"] == "initial"
    assert first.create["metadata"]["ownerReferences"][0]["uid"] == "m-1"
    assert first.create["spec"]["output"]["uri"] == "pvc://modelfleet-artifacts/ml/fraud-detector/v1"
    m.status = first.status
    done = mplan(m, [owned_tj(1, "f" * 64, True)])
    assert done.create is None and done.status.latest_version.number == 1
    assert cond(done.status, "Trained") == ("True", "Trained")
    assert [e.reason for e in done.events] == ["VersionTrained"]


def test_the_version_record_keeps_its_drift_reference() -> None:
    from modelfleet.drift.profile import build_profile, reference_summary

    summary = reference_summary(build_profile({"x": ("numeric", np.arange(40.0))}))
    assert summary["rows"] == 40 and summary["psiBins"] == 0 and "at least 50" in summary["insufficient"]
    tj = owned_tj(1, "f" * 64, True)
    tj["status"]["result"]["driftReference"] = summary
    version = mplan(mlmodel(), [tj]).status.latest_version
    assert version.drift_reference is not None and version.drift_reference.insufficient == summary["insufficient"]


def test_at_most_one_active_run_and_serving_edits_never_retrain() -> None:
    m = mlmodel()
    assert mplan(m, [owned_tj(1, "e" * 64, None)], fp="f" * 64).create is None  # v1 still running
    m.status = mplan(m, [owned_tj(1, "f" * 64, True)]).status
    m.spec.serving.max_replicas = 7  # not part of the fingerprint: same fp, no new run
    assert mplan(m, [owned_tj(1, "f" * 64, True)]).create is None


def test_dataset_version_change_retrains_with_reason_dataset() -> None:
    m = mlmodel()
    m.status = mplan(m, [owned_tj(1, "e" * 64, True, dataset_version="2026-10")], fp="e" * 64).status
    nxt = mplan(m, [owned_tj(1, "e" * 64, True, dataset_version="2026-10")], fp="f" * 64)
    assert nxt.create["metadata"]["name"] == "fraud-detector-v2" and nxt.create["spec"]["reason"] == "dataset"


def test_failed_run_keeps_the_previous_version_and_is_reported_once() -> None:
    m = mlmodel()
    tjs = [owned_tj(1, "e" * 64, True), owned_tj(2, "f" * 64, False)]
    first = mplan(m, tjs)
    assert first.status.latest_version.number == 1 and first.create is None
    assert [e.reason for e in first.events] == ["VersionTrained", "TrainingFailed"]
    assert "keeps version 1" in first.events[1].message
    m.status = first.status
    assert mplan(m, tjs).events == []  # nothing new to say


def test_two_failed_runs_are_reported_once_each_over_many_passes() -> None:
    """They used to take turns being "new": two TrainingFailed Events on every pass, forever."""
    m = mlmodel()
    tjs = [owned_tj(1, "e" * 64, False), owned_tj(2, "f" * 64, False)]
    reasons = []
    for _ in range(20):  # twenty passes with nothing changing
        plan = mplan(m, tjs)
        reasons += [e.reason for e in plan.events]
        m.status = plan.status
    assert reasons == ["TrainingFailed", "TrainingFailed"]
    assert m.status.last_failed_training_job == "fraud-detector-v2"
    # A failure older than the one on record, or one whose run was deleted, is not news either.
    assert [e.reason for e in mplan(m, tjs[:1]).events if e.reason == "TrainingFailed"] == []


def test_low_scoring_version_is_recorded_but_not_promotable() -> None:
    m = mlmodel()  # the sample asks roc_auc >= 0.85
    p = mplan(m, [owned_tj(1, "f" * 64, True, {"roc_auc": 0.7})])
    assert p.status.latest_version.promotable is False
    assert [e.reason for e in p.events] == ["VersionTrained", "NotPromoted"]
    assert (
        promotion(
            {"rmse": 3.0},
            "regression",
            mlmodel().spec.training.validation.model_copy(update={"metric": "rmse", "min_score": 5.0}),
        )[0]
        is True
    )  # lower is better


def test_high_risk_versions_wait_for_approval_with_the_command_to_give_it() -> None:
    m = mlmodel(riskClass="high")
    p = mplan(m, [owned_tj(1, "f" * 64, True)])
    approved = get_condition(p.status.conditions, "Approved")
    assert approved and (approved.status, approved.reason) == ("False", "AwaitingApproval")
    assert '"approvedVersion":1' in approved.message


def test_a_pod_that_cannot_pull_its_image_is_reported_then_failed() -> None:
    stuck = pod(
        "Pending",
        containerStatuses=[
            {
                "name": "trainer",
                "state": {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": 'Back-off pulling image "ghcr.io/x/trainer:nope"',
                    }
                },
            }
        ],
    )
    stuck["metadata"]["creationTimestamp"] = "2026-11-01T11:59:00Z"
    p = plan(TrainingObservation(job=job(active=1), pods=[stuck]))
    assert cond(p.status, "Queued") == ("True", "ImagePullBackOff") and not p.delete_job
    stuck["metadata"]["creationTimestamp"] = "2026-11-01T11:00:00Z"
    p = plan(TrainingObservation(job=job(active=1), pods=[stuck]))
    assert cond(p.status, "Failed") == ("True", "ImagePullBackOff") and p.delete_job
    assert "trainer:nope" in get_condition(p.status.conditions, "Failed").message  # type: ignore[union-attr]


def test_gpu_training_without_tolerations_tolerates_the_gpu_taint() -> None:
    t = tj()
    t.spec.training.tolerations = None
    assert build(t)["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    t.spec.training.resources.gpu = 0
    assert "tolerations" not in build(t)["spec"]["template"]["spec"]


def test_an_omitted_estimator_is_the_forest_for_the_task_and_is_what_the_run_records() -> None:
    doc = sample("MLModel", "fraud-detector")
    doc["metadata"].update(namespace="ml", uid="m-1", generation=1)
    del doc["spec"]["training"]
    m = parse(MLModel, doc)
    assert m.spec.training.estimator == "sklearn.ensemble.RandomForestClassifier"
    created = mplan(m, []).create
    assert created["spec"]["training"]["estimator"] == "sklearn.ensemble.RandomForestClassifier"
    doc["spec"].update(task="regression", training={"resources": {"cpu": "2"}})
    assert parse(MLModel, doc).spec.training.estimator == "sklearn.ensemble.RandomForestRegressor"
    doc["spec"]["framework"] = "pytorch"
    assert parse(MLModel, doc).spec.training.estimator == "mlp"
    explicit = training_fingerprint("sklearn", "classification", m.spec.dataset, m.spec.training, "img")
    m.spec.training.estimator = "sklearn.ensemble.RandomForestClassifier"
    assert training_fingerprint("sklearn", "classification", m.spec.dataset, m.spec.training, "img") == explicit


def test_inferred_features_are_recorded_on_the_version() -> None:
    m = mlmodel()
    m.status = mplan(m, []).status
    run = owned_tj(1, "f" * 64, True)
    run["status"]["result"]["features"] = [{"name": "amount"}, {"name": "country", "type": "categorical"}]
    version = mplan(m, [run]).status.latest_version
    assert [(f.name, f.type) for f in version.features] == [("amount", "numeric"), ("country", "categorical")]
    assert mplan(m, [owned_tj(1, "f" * 64, True)]).status.latest_version.features is None
