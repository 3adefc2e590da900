"""Users editing what the operator made, as the API conventions expect a controller to answer: a Deployment scaled
by hand is scaled back (the operator owns the count without an autoscaler), a deleted Deployment is recreated, a
training Job deleted mid-run is recreated, and a TrainingJob deleted mid-run is created again under the same name
(versions stay numbered without gaps or repeats). Each repair is one Event, and the model keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.datasets import write
from tests.e2e.conftest import claim, events, jobs_of
from tests.e2e.test_training import TRAIN_TIMEOUT, finished, gpu_trainingjob, model_manifest
from tests.support import Kube, OperatorProcess, has_condition, wait_for


@pytest.fixture
def operator(kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", namespace).start()
    yield op
    op.stop()


def serving(kube: Kube, namespace: str, version: int) -> dict[str, Any] | None:
    m = kube.get("mlm", "edited", namespace)
    status = (m or {}).get("status") or {}
    if has_condition(m, "Ready") and (status.get("servingVersion") or {}).get("number") == version:
        return m
    return None


def test_hand_edits_of_children_are_repaired_once_and_the_model_keeps_serving(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    write("diabetes", data / "diabetes.csv")
    manifest = model_manifest("edited")
    kube.apply(manifest, namespace)
    wait_for(lambda: serving(kube, namespace, 1), TRAIN_TIMEOUT, "version 1 to serve")

    # Scaled by hand: scaled back, said once.
    kube.run("scale", "deployment", "edited", "--replicas=3", "-n", namespace)
    wait_for(
        lambda: (kube.get("deployment", "edited", namespace) or {}).get("spec", {}).get("replicas") == 1,
        30,
        "the Deployment to be scaled back to 1",
    )
    restored = wait_for(
        lambda: [e for e in events(kube, namespace, "edited") if e.startswith("ReplicasRestored")],
        10,
        "the Event (posted after the status patch)",
    )
    assert restored == ["ReplicasRestored: Deployment edited had 3 replica(s); restored to 1"], restored

    # Deleted by hand: recreated, and the model is Ready on the same version again.
    uid = kube.get("deployment", "edited", namespace)["metadata"]["uid"]
    kube.run("delete", "deployment", "edited", "-n", namespace)
    wait_for(
        lambda: (d := kube.get("deployment", "edited", namespace)) and d["metadata"]["uid"] != uid,
        30,
        "the Deployment to be recreated",
    )
    wait_for(lambda: serving(kube, namespace, 1), 120, "version 1 to serve again")

    # A training Job deleted mid-run: recreated, the run finishes, one Job in the end.
    standalone = gpu_trainingjob("standalone", 0)
    standalone["spec"]["training"] = {"estimator": "mlp", "hyperparameters": {"epochs": 50}}
    kube.apply(standalone, namespace)
    first = wait_for(lambda: jobs_of(kube, namespace, "standalone"), 60, "the training Job")
    kube.run("delete", "job", first[0]["metadata"]["name"], "-n", namespace, "--cascade=foreground", "--wait=false")
    done = wait_for(lambda: finished(kube, namespace, "standalone"), TRAIN_TIMEOUT, "the run to finish")
    assert has_condition(done, "Succeeded"), done["status"]
    assert len(jobs_of(kube, namespace, "standalone")) == 1
    assert any(e.startswith("JobRecreated") for e in events(kube, namespace, "standalone"))

    # A TrainingJob deleted mid-run: the model creates it again under the same name; v2 serves; no gap, no repeat.
    manifest["spec"]["dataset"]["version"] = "2"
    kube.apply(manifest, namespace)
    wait_for(lambda: kube.get("tj", "edited-v2", namespace), 30, "the run of version 2")
    kube.run("delete", "tj", "edited-v2", "-n", namespace, "--wait=true")
    wait_for(lambda: serving(kube, namespace, 2), TRAIN_TIMEOUT, "version 2 to serve")
    model = kube.get("mlm", "edited", namespace)
    assert [v["number"] for v in model["status"]["versions"]] == [1, 2]
    assert sorted(t["metadata"]["name"] for t in kube.items("trainingjobs", namespace)) == [
        "edited-v1",
        "edited-v2",
        "standalone",
    ]
