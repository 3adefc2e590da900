"""A new user's first hour, end to end: the shortest MLModel (no artifacts, no features, no training block) trains
and serves on a namespace holding only its data; a default store that cannot be created says so on the model; a
GPU-serving model lands on a tainted GPU node."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from tests.datasets import feature_spec, write
from tests.e2e.conftest import claim, dump, events
from tests.e2e.test_serving import infer, serving_pod_ip
from tests.e2e.test_training import TRAIN_TIMEOUT
from tests.runtime.test_server import rows
from tests.samples import sample
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for

DEFAULT_CLAIM = "modelfleet-artifacts"


def shortest_model(name: str) -> dict[str, Any]:
    """The sample manifests/samples/shortest-model.yaml, which the README's "Your first model" shows."""
    doc = sample("MLModel", "first")
    doc["metadata"]["name"] = name
    return doc


def v2_metadata(ip: str, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{ip}:8080/v2/models/{name}", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def namespace_events(kube: Kube, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.items("events", namespace) if e.get("reason") == reason]


def test_the_shortest_model_trains_serves_and_answers_what_its_metadata_asks(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    data = claim(kube, namespace, "datasets")  # the namespace holds only the data
    write("breast_cancer", data / "breast_cancer.csv")
    kube.apply(shortest_model("first"), namespace)
    model = wait_for(
        lambda: (m := kube.get("mlm", "first", namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "the shortest MLModel to become Ready",
    )
    assert model["spec"].get("training", {}).get("estimator") is None  # the spec stays as written (no GitOps drift)
    tj = kube.get("tj", "first-v1", namespace)
    assert tj and tj["spec"]["training"]["estimator"] == "sklearn.ensemble.RandomForestClassifier"
    inferred = feature_spec("breast_cancer")
    assert tj["status"]["result"]["features"] == inferred, dump(tj["status"])
    assert model["status"]["servingVersion"]["features"] == inferred
    assert model["status"]["servingVersion"]["artifactUri"] == f"pvc://{DEFAULT_CLAIM}/{namespace}/first/v1"

    store = kube.get("pvc", DEFAULT_CLAIM, namespace)
    assert store and store["metadata"]["labels"]["modelfleet.io/role"] == "artifact-store"
    assert not store["metadata"].get("ownerReferences")
    created = namespace_events(kube, namespace, "ArtifactStoreCreated")
    assert len(created) == 1 and created[0].get("count", 1) == 1, dump(created)

    ip = serving_pod_ip(kube, namespace, "first", 1)
    meta = v2_metadata(ip, "first")
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        (f["name"], "BYTES" if f["type"] == "categorical" else "FP64") for f in inferred
    ]
    columns = rows("breast_cancer", data / "breast_cancer.csv", 4)
    body = {
        "inputs": [
            {"name": i["name"], "datatype": i["datatype"], "shape": [4], "data": columns[i["name"]].tolist()}
            for i in meta["inputs"]
        ]
    }
    out = infer(ip, "first", body)
    assert len(out["outputs"][0]["data"]) == 4

    # The version's record is owned by the model (records are kept after deletion only when asked to).
    (record,) = kube.items("modelversions", namespace, selector="modelfleet.io/model=first")
    assert record["spec"]["version"] == 1 and record["metadata"]["ownerReferences"][0]["name"] == "first"

    # The store outlives the model: it holds every version of the namespace, so nothing deletes it.
    kube.run("delete", "mlm", "first", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: not kube.items("modelversions", namespace), 30, "the garbage collector to delete the model's record"
    )
    assert kube.get("pvc", DEFAULT_CLAIM, namespace)


def test_a_default_store_that_cannot_be_created_is_a_condition_on_the_model(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    data = claim(kube, namespace, "datasets")
    write("breast_cancer", data / "breast_cancer.csv")
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "one-claim"},
        "spec": {"hard": {"persistentvolumeclaims": "1"}},  # the data claim uses it
    }
    kube.apply(quota, namespace)
    wait_for(
        lambda: ((kube.get("quota", "one-claim", namespace) or {}).get("status") or {}).get("used"),
        30,
        "the quota to count the data claim",
    )
    kube.apply(shortest_model("blocked"), namespace)
    model = wait_for(
        lambda: (
            (m := kube.get("mlm", "blocked", namespace))
            and (condition(m, "Trained") or {}).get("reason") == "ArtifactStoreUnavailable"
            and m
        ),
        60,
        "the model to say its store cannot be created",
    )
    trained = condition(model, "Trained")
    assert trained and "exceeded quota" in trained["message"] and DEFAULT_CLAIM in trained["message"]
    assert condition(model, "Ready")["status"] == "False"  # type: ignore[index]
    assert kube.items("jobs", namespace) == []  # no pod left Pending on a claim that does not exist
    time.sleep(10)  # passes go on every few seconds: the refusal is still reported once
    warned = [e for e in events(kube, namespace, "blocked-v1") if e.startswith("ArtifactStoreUnavailable")]
    assert len(warned) == 1, warned

    kube.run("delete", "quota", "one-claim", "-n", namespace)
    wait_for(lambda: kube.items("jobs", namespace), 60, "the run to start once the claim can be created")
    assert kube.get("pvc", DEFAULT_CLAIM, namespace)


def test_a_gpu_serving_model_is_scheduled_to_a_gpu_node(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    data = claim(kube, namespace, "datasets")
    write("breast_cancer", data / "breast_cancer.csv")
    body = shortest_model("gpu-served")
    body["spec"]["training"] = {"estimator": "sklearn.linear_model.LogisticRegression"}
    priority = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "modelfleet-e2e-serving"},
        "value": 1000,
    }
    kube.apply(priority)
    body["spec"]["serving"] = {"resources": {"gpu": 1}, "priorityClassName": "modelfleet-e2e-serving"}
    kube.apply(body, namespace)
    wait_for(
        lambda: (m := kube.get("mlm", "gpu-served", namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "the GPU-serving model to become Ready on a simulated GPU node",
    )
    (pod,) = kube.items(
        "pods", namespace, selector="modelfleet.io/model=gpu-served,app.kubernetes.io/component=serving"
    )
    assert pod["spec"]["nodeName"].startswith("kwok-gpu-"), dump(pod["spec"])
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert pod["spec"]["priorityClassName"] == "modelfleet-e2e-serving" and pod["spec"]["priority"] == 1000
