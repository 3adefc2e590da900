"""Training end to end: the operator, the real trainer in Job pods on the local executor node, simulated GPU nodes."""

from __future__ import annotations

import copy
import time
from typing import Any

from modelfleet.artifact import verify_directory
from tests.argocd import check_health
from tests.datasets import feature_spec, write
from tests.e2e.conftest import claim, dump, events, jobs_of
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for

TRAIN_TIMEOUT = 180  # seconds from apply to a recorded version; measured runs take 10-20 s on two cores


def model_manifest(name: str, dataset: str = "pvc://datasets/breast_cancer.csv", version: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name},
        "spec": {
            "owner": {"team": "risk", "contact": "risk@example.com"},
            "framework": "sklearn",
            "task": "classification",
            "dataset": {
                "uri": dataset,
                "target": "target",
                "features": feature_spec("breast_cancer"),
                "version": version,
            },
            "training": {
                "estimator": "sklearn.linear_model.LogisticRegression",
                "hyperparameters": {"max_iter": 500, "C": 0.5},
                "resources": {"cpu": "500m", "memory": "1Gi"},
                "validation": {"metric": "roc_auc", "minScore": 0.9},
            },
            "artifacts": {"uri": "pvc://model-store/models/" + name},
        },
    }


def tj_status(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return (kube.get("tj", name, ns) or {}).get("status") or {}


def finished(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    obj = kube.get("tj", name, ns)
    return obj if has_condition(obj, "Succeeded") or has_condition(obj, "Failed") else None


def test_model_trains_on_the_executor_then_cache_hits_then_a_bad_dataset_keeps_version_1(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    data = claim(kube, namespace, "datasets")
    store = claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")

    started = time.monotonic()
    kube.apply(model_manifest("tumour"), namespace)
    model = wait_for(
        lambda: (m := kube.get("mlm", "tumour", namespace)) and (m.get("status") or {}).get("latestVersion") and m,
        TRAIN_TIMEOUT,
        "version 1",
    )
    took = time.monotonic() - started
    print(f"\napply -> version 1 recorded in {took:.1f}s")
    v1 = model["status"]["latestVersion"]
    assert v1["number"] == 1 and v1["trainingJob"] == "tumour-v1" and v1["promotable"] is True
    assert v1["metrics"]["roc_auc"] > 0.95 and v1["metrics"]["accuracy"] > 0.9  # real metrics from real training
    assert condition(model, "Trained")["status"] == "True"  # type: ignore[index]

    tj = kube.get("tj", "tumour-v1", namespace)
    assert tj and tj["spec"]["reason"] == "initial"
    assert tj["metadata"]["ownerReferences"][0]["kind"] == "MLModel"
    assert tj["status"]["result"]["rows"] == 569 and tj["status"]["phase"] == "Succeeded"
    check_health(tj, "Healthy", "succeeded")
    check_health(model, "Progressing", "trained-not-yet-serving")
    jobs = jobs_of(kube, namespace, "tumour-v1")
    assert len(jobs) == 1
    pod = kube.items("pods", namespace, selector=f"batch.kubernetes.io/job-name={tj['status']['jobName']}")[0]
    assert pod["spec"]["nodeName"] == "modelfleet-executor"  # the real trainer ran as a local process
    artifact = store / "models" / "tumour" / "v1"
    assert verify_directory(artifact) == v1["artifactDigest"] == tj["status"]["result"]["artifactDigest"]
    assert {"TrainingRequested", "VersionTrained"} <= {e.split(":")[0] for e in events(kube, namespace, "tumour")}
    assert {"TrainingStarted", "Succeeded"} <= {e.split(":")[0] for e in events(kube, namespace, "tumour-v1")}

    # The same training spec again: a cache hit, no second Job.
    again = copy.deepcopy(tj)
    again["metadata"] = {"name": "tumour-again"}
    again["spec"]["output"] = {"uri": "pvc://model-store/models/tumour/again"}
    again.pop("status")
    kube.apply(again, namespace)
    hit = wait_for(lambda: finished(kube, namespace, "tumour-again"), 60, "the cache hit")
    assert condition(hit, "CacheHit")["status"] == "True"  # type: ignore[index]
    assert hit["status"]["cachedFrom"] == "tumour-v1" and hit["status"]["result"] == tj["status"]["result"]
    assert jobs_of(kube, namespace, "tumour-again") == []
    check_health(hit, "Healthy", "cache-hit")

    # Editing only serving never retrains.
    edited = model_manifest("tumour")
    edited["spec"]["serving"] = {"maxReplicas": 3}
    kube.apply(edited, namespace)
    time.sleep(4)
    assert kube.get("tj", "tumour-v2", namespace) is None

    # A new dataset version without the target column: v2 fails with the trainer's reason; v1 stays.
    bad = data / "broken.csv"
    bad.write_text("mean_radius,mean_texture\n1.0,2.0\n")
    kube.apply(model_manifest("tumour", "pvc://datasets/broken.csv", version="2"), namespace)
    failed = wait_for(lambda: finished(kube, namespace, "tumour-v2"), TRAIN_TIMEOUT, "v2 to finish")
    why = condition(failed, "Failed")
    assert why and why["status"] == "True" and why["reason"] == "TrainingError", dump(failed["status"])
    assert "no target column 'target'" in why["message"]
    check_health(failed, "Degraded", "failed-training-error")
    assert failed["spec"]["reason"] == "dataset"
    assert len(jobs_of(kube, namespace, "tumour-v2")) == 1
    pods = kube.items("pods", namespace, selector=f"batch.kubernetes.io/job-name={failed['status']['jobName']}")
    assert len(pods) == 1  # exit code 2 fails the Job at once (pod failure policy): no pointless retries
    model = wait_for(
        lambda: (
            (m := kube.get("mlm", "tumour", namespace))
            and m["status"].get("lastFailedTrainingJob") == "tumour-v2"
            and m
        ),
        60,
        "the failure to be recorded",
    )
    assert model["status"]["latestVersion"]["number"] == 1
    assert condition(model, "Trained")["status"] == "True"  # type: ignore[index]
    assert any(e.startswith("TrainingFailed") and "keeps version 1" in e for e in events(kube, namespace, "tumour"))


def gpu_trainingjob(name: str, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "framework": "pytorch",
            "task": "regression",
            "dataset": {"uri": "pvc://datasets/diabetes.csv", "target": "target", "features": feature_spec("diabetes")},
            "training": {
                "estimator": "mlp",
                "hyperparameters": {"epochs": 5},
                "resources": {"gpu": gpus, "cpu": "4", "memory": "16Gi"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "output": {"uri": f"pvc://model-store/{name}"},
        },
    }


def test_gpu_training_lands_on_a_simulated_gpu_node_and_an_impossible_one_stays_queued(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    kube.apply([gpu_trainingjob("gpu-one", 1), gpu_trainingjob("gpu-sixteen", 16)], namespace)

    def gpu_pod(name: str) -> dict[str, Any] | None:
        jobs = jobs_of(kube, namespace, name)
        pods = (
            kube.items("pods", namespace, selector=f"batch.kubernetes.io/job-name={jobs[0]['metadata']['name']}")
            if jobs
            else []
        )
        return pods[0] if pods and pods[0]["spec"].get("nodeName") else None

    pod = wait_for(lambda: gpu_pod("gpu-one"), 60, "the GPU pod to be scheduled")
    assert pod["spec"]["nodeName"].startswith("kwok-gpu-")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # KWOK completes the pod without running anything, so there is no result: the run says so instead of
    # inventing one.
    done = wait_for(lambda: finished(kube, namespace, "gpu-one"), 60, "the simulated run to finish")
    assert condition(done, "Failed")["reason"] == "NoResult"  # type: ignore[index]

    queued = wait_for(
        lambda: (
            (t := kube.get("tj", "gpu-sixteen", namespace))
            and (c := condition(t, "Queued"))
            and c["reason"] == "Unschedulable"
            and t
        ),
        60,
        "Queued",
    )
    message = condition(queued, "Queued")["message"]  # type: ignore[index]
    assert "Insufficient nvidia.com/gpu" in message and queued["status"]["phase"] == "Queued"
    check_health(queued, "Progressing", "queued-unschedulable")
    assert any(e.startswith("Unschedulable") for e in events(kube, namespace, "gpu-sixteen"))


def test_a_model_whose_first_training_fails_says_so(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    (data / "broken.csv").write_text("mean_radius,mean_texture\n1.0,2.0\n")  # no target column
    kube.apply(model_manifest("nevertrained", "pvc://datasets/broken.csv"), namespace)
    model = wait_for(
        lambda: (
            (m := kube.get("mlm", "nevertrained", namespace))
            and (condition(m, "Trained") or {}).get("reason") == "TrainingFailed"
            and m
        ),
        TRAIN_TIMEOUT,
        "the first training to fail",
    )
    assert model["status"]["phase"] == "Failed" and "latestVersion" not in model["status"]
    assert "nevertrained-v1 failed" in condition(model, "Trained")["message"]  # type: ignore[index]
    check_health(model, "Degraded", "first-training-failed")

    # A second run fails too (new dataset version, same broken file). Each failure is one decision: one Event each,
    # however many passes follow (the operator under test reconciles every second), and none is posted again.
    kube.apply(model_manifest("nevertrained", "pvc://datasets/broken.csv", version="2"), namespace)

    def trained_message() -> str:
        return str((condition(kube.get("mlm", "nevertrained", namespace), "Trained") or {}).get("message", ""))

    wait_for(
        lambda: "nevertrained-v2 failed" in trained_message(),
        TRAIN_TIMEOUT,
        "the second training to fail",
    )

    def failures() -> list[dict[str, Any]]:
        return [
            e
            for e in kube.items("events", namespace, field_selector="involvedObject.name=nevertrained")
            if e["reason"] == "TrainingFailed"
        ]

    def by_reason() -> dict[str, int]:
        """Every Event of the model, by reason, with the series counts added up."""
        out: dict[str, int] = {}
        for e in kube.items("events", namespace, field_selector="involvedObject.name=nevertrained"):
            out[e["reason"]] = out.get(e["reason"], 0) + int(e.get("count") or 1)
        return out

    first_look, all_before = failures(), by_reason()
    # Twenty passes of nothing changing (the operator under test reconciles every second: the 60 s at the
    # default 3 s): what is asserted is that nothing at all is posted meanwhile.
    time.sleep(20)
    later = failures()
    assert len(later) == 2 and [e.get("count", 1) for e in later] == [1, 1], dump(later)
    assert sorted(e["metadata"]["name"] for e in later) == sorted(e["metadata"]["name"] for e in first_look)
    assert by_reason() == all_before and all_before["TrainingRequested"] == 2, all_before
