"""Artifacts in S3 end to end, on the dev cluster with a real S3 server (versitygw): a model whose versions live in a
bucket trains from an s3:// dataset, two replicas on two nodes serve it mounting nothing, a tampered version is
refused before loading while the previous one keeps serving, cache hits are checked by HEAD, and refused
credentials fail the run with a condition naming the bucket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelfleet.artifact.objectstore import MANIFEST, S3Uri
from modelfleet.cache.view import ARTIFACT_SECONDS
from modelfleet.devcluster.s3 import SECRET_NAME, S3Server
from tests.datasets import write
from tests.e2e.conftest import dump, jobs_of
from tests.e2e.test_serving import infer
from tests.e2e.test_training import TRAIN_TIMEOUT, finished, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for

EXECUTOR = "modelfleet-executor"
DEFAULT_BUCKET = "e2e-default-store"


@pytest.fixture(scope="module")
def s3_operator(
    kubeconfig: Path, crds: Path, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator whose default artifact store is a bucket of the dev S3 server (what the chart's objectStore values
    set): its own credentials (for presence checks), the endpoint, and the Secret pods get in each namespace."""
    s3_server.make_bucket(DEFAULT_BUCKET)
    env = {
        **s3_server.env(),
        "MODELFLEET_S3_ENDPOINT": s3_server.endpoint,
        "MODELFLEET_S3_SECRET": SECRET_NAME,
        "MODELFLEET_ARTIFACTS_URI": f"s3://{DEFAULT_BUCKET}/fleet",
    }
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("s3-operator") / "operator.log", env=env).start()
    yield op
    op.stop()


def dataset_in(s3_server: S3Server, bucket: str, tmp: Path) -> tuple[str, Path]:
    local = write("breast_cancer", tmp / "breast_cancer.csv")
    s3_server.store().put_file(S3Uri(bucket, "data/breast_cancer.csv"), local)
    return f"s3://{bucket}/data/breast_cancer.csv", local


def s3_model(name: str, dataset: str) -> dict[str, Any]:
    manifest = model_manifest(name, dataset=dataset)
    manifest["spec"]["riskClass"] = "high"  # a version is served only once approved: time to tamper with one
    del manifest["spec"]["artifacts"]  # the operator's default store: a bucket, no claim anywhere
    manifest["spec"]["serving"] = {
        "approvedVersion": 1,
        "minReplicas": 2,
        "maxReplicas": 2,
        # One replica on the executor (a real server process), one on a KWOK node: two nodes, no shared volume.
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [EXECUTOR]}
                            ]
                        },
                    }
                ]
            },
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        # Serving pods of version 1 only: the model's training pods carry its model label too, and
                        # an existing pod's rule also repels newcomers, so a version 2 pod must not match it to
                        # share the executor with a version 1 pod during its rollout.
                        "labelSelector": {
                            "matchLabels": {
                                "modelfleet.io/model": name,
                                "app.kubernetes.io/component": "serving",
                                "modelfleet.io/version": "1",
                            }
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            },
        },
    }
    return manifest


def ready_pods(kube: Kube, namespace: str, name: str, version: int) -> list[dict[str, Any]]:
    pods = kube.items("pods", namespace, selector=f"modelfleet.io/model={name},modelfleet.io/version={version}")
    return [
        p
        for p in pods
        if p["metadata"].get("deletionTimestamp") is None
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    ]


def test_an_s3_model_trains_serves_from_two_nodes_and_a_tampered_version_is_refused(
    kube: Kube, s3_operator: OperatorProcess, s3_server: S3Server, bucket: str, namespace: str, tmp_path: Path
) -> None:
    kube.apply(s3_server.secret(namespace), namespace)
    dataset, local = dataset_in(s3_server, bucket, tmp_path)
    manifest = s3_model("tumour", dataset)
    kube.apply(manifest, namespace)
    model = wait_for(
        lambda: (m := kube.get("mlm", "tumour", namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "the model to be Ready",
    )
    v1 = model["status"]["servingVersion"]
    home = S3Uri(DEFAULT_BUCKET, f"fleet/{namespace}/tumour")
    assert v1["number"] == 1 and v1["artifactUri"] == f"{home}/v1", dump(model["status"])
    store = s3_server.store()
    keys = store.list(home.child("v1"))
    assert f"{home.key}/v1/{MANIFEST}" in keys and any(k.endswith("/model.skops") for k in keys), keys
    assert store.read_manifest(home.child("v1"))["digest"] == v1["artifactDigest"]
    assert kube.items("pvc", namespace) == []  # no claim was needed, none was made

    pods = wait_for(lambda: len(p := ready_pods(kube, namespace, "tumour", 1)) == 2 and p, 120, "two ready replicas")
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(nodes) == 2 and EXECUTOR in nodes, nodes
    for pod in pods:  # nothing mounted but scratch space: no claim, no hostPath
        assert all(set(v) == {"name", "emptyDir"} for v in pod["spec"]["volumes"]), dump(pod["spec"]["volumes"])
    real = next(p for p in pods if p["spec"]["nodeName"] == EXECUTOR)
    cols = rows("breast_cancer", local, 5)
    answer = infer(real["status"]["podIP"], "tumour", v2_inputs(cols))
    assert answer["model_version"] == "1" and len(answer["outputs"][0]["data"]) == 5
    import tritonclient.grpc as grpcclient

    from tests.runtime.test_server_grpc import triton_inputs

    client = grpcclient.InferenceServerClient(url=f"{real['status']['podIP']}:8081")
    assert client.infer("tumour", triton_inputs(cols, 5)).as_numpy("predict").tolist() == answer["outputs"][0]["data"]

    # Version 2 trains and waits for approval; its model file is replaced in the bucket meanwhile.
    manifest["spec"]["dataset"]["version"] = "2"
    kube.apply(manifest, namespace)
    wait_for(
        lambda: (
            ((kube.get("mlm", "tumour", namespace) or {}).get("status", {}).get("latestVersion") or {}).get("number")
            == 2
        ),
        TRAIN_TIMEOUT,
        "version 2",
    )
    model_key = next(k for k in store.list(home.child("v2")) if k.endswith("/model.skops"))
    store.put_bytes(S3Uri(DEFAULT_BUCKET, model_key), b"weights someone swapped in")
    # Version 2 goes to the executor alone, so the pod that has to read the tampered file is a real server: a KWOK
    # replica counts as ready without reading anything, and free KWOK nodes would take the whole rollout.
    serving = manifest["spec"]["serving"]
    serving.update(approvedVersion=2, minReplicas=1, maxReplicas=1)
    serving["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [EXECUTOR]}]}
                ]
            }
        }
    }
    kube.apply(manifest, namespace)
    degraded = wait_for(
        lambda: (m := kube.get("mlm", "tumour", namespace)) and has_condition(m, "Degraded") and m,
        TRAIN_TIMEOUT,
        "the rollout of version 2 to fail",
    )
    why = condition(degraded, "Degraded") or {}
    assert why.get("reason") == "RolloutFailed", dump(why)
    assert "artifact unavailable, nothing loaded" in why["message"] and "model.skops: contents" in why["message"]
    assert degraded["status"]["servingVersion"]["number"] == 1
    v2 = next(v for v in degraded["status"]["versions"] if v["number"] == 2)
    assert v2["promotable"] is False and "rollout failed" in v2["rejectedReason"], dump(v2)
    # Version 1 serves on after the rollback, from the executor, where the spec now places it.
    back = wait_for(
        lambda: [p for p in ready_pods(kube, namespace, "tumour", 1) if p["spec"]["nodeName"] == EXECUTOR],
        120,
        "version 1 on the executor",
    )
    assert infer(back[0]["status"]["podIP"], "tumour", v2_inputs(cols))["model_version"] == "1"


def trainingjob(name: str, dataset: str, output: str, secret: str = SECRET_NAME) -> dict[str, Any]:
    spec = model_manifest(name, dataset=dataset)["spec"]
    return {
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            **{k: spec[k] for k in ("framework", "task", "dataset", "training")},
            "output": {"uri": output, "secretName": secret},
        },
    }


def test_a_cache_hit_is_checked_by_head_and_refused_once_the_artifact_is_gone(
    kube: Kube, s3_operator: OperatorProcess, s3_server: S3Server, bucket: str, namespace: str, tmp_path: Path
) -> None:
    kube.apply(s3_server.secret(namespace), namespace)
    dataset, _ = dataset_in(s3_server, bucket, tmp_path)
    kube.apply(trainingjob("first", dataset, f"s3://{bucket}/runs/first"), namespace)
    first = wait_for(lambda: finished(kube, namespace, "first"), TRAIN_TIMEOUT, "the first run")
    assert has_condition(first, "Succeeded"), dump(first["status"])

    kube.apply(trainingjob("again", dataset, f"s3://{bucket}/runs/again"), namespace)
    again = wait_for(lambda: finished(kube, namespace, "again"), 60, "the second run")
    assert again["status"].get("cachedFrom") == "first" and not jobs_of(kube, namespace, "again"), dump(again["status"])
    assert again["status"]["result"]["artifactUri"] == f"s3://{bucket}/runs/first"

    s3_server.store().remove_prefix(S3Uri(bucket, "runs/first"))
    time.sleep(ARTIFACT_SECONDS + 1)  # what the operator remembers of a presence check
    kube.apply(trainingjob("after-delete", dataset, f"s3://{bucket}/runs/after-delete"), namespace)
    third = wait_for(lambda: finished(kube, namespace, "after-delete"), TRAIN_TIMEOUT, "the third run")
    assert not third["status"].get("cachedFrom") and jobs_of(kube, namespace, "after-delete"), dump(third["status"])
    assert s3_server.store().artifact_exists(f"s3://{bucket}/runs/after-delete")


def test_refused_credentials_fail_the_run_with_a_condition_naming_the_bucket(
    kube: Kube, s3_operator: OperatorProcess, s3_server: S3Server, bucket: str, namespace: str, tmp_path: Path
) -> None:
    kube.apply(s3_server.secret(namespace, "wrong-s3", AWS_SECRET_ACCESS_KEY="not-the-secret"), namespace)
    kube.apply(s3_server.secret(namespace), namespace)
    dataset, _ = dataset_in(s3_server, bucket, tmp_path)
    # A dataset the run may read with the right Secret: the wrong one is refused on the artifact's bucket first.
    kube.apply(trainingjob("refused", dataset, f"s3://{bucket}/runs/refused", secret="wrong-s3"), namespace)
    done = wait_for(lambda: finished(kube, namespace, "refused"), TRAIN_TIMEOUT, "the run to fail")
    failed = condition(done, "Failed") or {}
    assert failed.get("status") == "True" and failed.get("reason") == "ArtifactUnavailable", dump(done["status"])
    assert f"access to bucket '{bucket}'" in failed["message"] and "not-the-secret" not in failed["message"]
    assert len(jobs_of(kube, namespace, "refused")) == 1
    pods = kube.items("pods", namespace, selector="batch.kubernetes.io/job-name")
    assert len(pods) == 1, "a refused store is final: the Job is not retried"
