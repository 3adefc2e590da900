"""The monitoring loop end to end on the dev cluster: the operator, the model server pods on the executor, and a real
Prometheus that discovers those pods through the Kubernetes API. Training-like traffic keeps the policy quiet; a
shifted feature is detected, retrains on the dataset as it is now (never a cache hit), and the new version is served,
with the story in Events; stopping Prometheus shows Evaluated=Unknown and retrains nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelfleet.devcluster.prometheus import PrometheusServer, pod_scrape_job
from tests.argocd import check_health
from tests.datasets import write
from tests.e2e.conftest import claim, dump, events
from tests.e2e.test_serving import infer, serving_pod_ip
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for

ALL_ROWS = 569  # the whole breast-cancer dataset: more than the default minRows (500)
NAME = "tumour-watch"


def send(kube: Kube, namespace: str, version: int, cols: dict[str, Any], batch: int = 50) -> None:
    ip = serving_pod_ip(kube, namespace, NAME, version)
    n = len(next(iter(cols.values())))
    for start in range(0, n, batch):
        infer(ip, NAME, v2_inputs({k: v[start : start + batch] for k, v in cols.items()}))


def policy_cond(kube: Kube, namespace: str, ctype: str) -> dict[str, Any]:
    return condition(kube.get("dpol", "watch", namespace), ctype) or {}


def drift_jobs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return [tj for tj in kube.items("trainingjobs", namespace) if tj["spec"].get("reason") == "drift"]


def test_shifted_traffic_is_detected_retrained_on_current_data_and_the_new_version_served(
    kube: Kube, operator: OperatorProcess, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    prom = PrometheusServer(tmp_path / "prometheus", [pod_scrape_job(kubeconfig, interval="1s")]).start()
    try:
        data = claim(kube, namespace, "datasets")
        claim(kube, namespace, "model-store")
        dataset = data / "breast_cancer.csv"
        write("breast_cancer", dataset)
        manifest = model_manifest(NAME)
        kube.apply(manifest, namespace)  # the default drift monitoring: windows of 10,000 rows, values from 500
        wait_for(
            lambda: (m := kube.get("mlm", NAME, namespace)) and has_condition(m, "Ready") and m,
            TRAIN_TIMEOUT,
            "version 1 to be served",
        )
        kube.apply(
            {
                "apiVersion": "modelfleet.io/v1alpha1",
                "kind": "DriftPolicy",
                "metadata": {"name": "watch"},
                "spec": {
                    "modelRef": {"name": NAME},
                    "prometheus": {"url": prom.url},
                    "interval": "2s",
                    "checks": [{"name": "psi-all", "statistic": "psi", "threshold": 0.2}],  # the documented default
                    "trigger": {"for": "10s"},
                    "action": "Retrain",
                    "cooldown": "30m",
                },
            },
            namespace,
        )
        # Traffic like the training data: evaluated, no drift.
        cols = rows("breast_cancer", dataset, ALL_ROWS)
        send(kube, namespace, 1, cols)
        prom.wait_for_series(f'modelfleet_drift_window_rows{{namespace="{namespace}",model="{NAME}"}} >= 500', 60)
        quiet = wait_for(
            lambda: (
                (c := policy_cond(kube, namespace, "DriftDetected")).get("status") == "False"
                and "no check breached" in c.get("message", "")
                and (p := kube.get("dpol", "watch", namespace))
                and p["status"]["checks"][0].get("value") is not None
                and p
            ),
            60,
            "an evaluation with data and no drift",
        )
        assert quiet["status"]["checks"][0]["value"] < 0.2, dump(quiet["status"])
        assert drift_jobs(kube, namespace) == []

        # The world changes: the dataset now holds the shifted distribution, and so does the traffic.
        write("breast_cancer", dataset, shift={"mean_radius": 3.0})
        shifted = rows("breast_cancer", dataset, ALL_ROWS)  # traffic from the world as it is now
        send(kube, namespace, 1, shifted)
        tj = wait_for(lambda: (jobs := drift_jobs(kube, namespace)) and jobs[0], 90, "a drift TrainingJob")
        policy = kube.get("dpol", "watch", namespace)
        assert policy and policy_cond(kube, namespace, "DriftDetected")["status"] == "True", dump(policy)
        assert "psi-all" in policy_cond(kube, namespace, "DriftDetected")["message"]
        assert policy["status"]["checks"][0]["feature"] == "mean_radius"
        served = wait_for(
            lambda: (
                (m := kube.get("mlm", NAME, namespace))
                and (m["status"].get("servingVersion") or {}).get("number") == 2
                and has_condition(m, "Ready")
                and m
            ),
            TRAIN_TIMEOUT,
            "version 2 to be served",
        )
        v2 = served["status"]["servingVersion"]
        assert v2["reason"] == "drift" and v2["trainingJob"] == tj["metadata"]["name"]
        done = kube.get("tj", tj["metadata"]["name"], namespace)
        assert done and not done["status"].get("cachedFrom"), dump(done["status"])  # trained, not reused
        v1 = served["status"]["versions"][0]
        assert v2["datasetDigest"] != v1["datasetDigest"]  # it read the dataset as it is now
        assert has_condition(served, "Drifted")
        check_health(served, "Healthy", "serving-after-drift-retrain")
        check_health(kube.get("dpol", "watch", namespace), "Healthy", "drift-detected-retrained")
        check_health(kube.get("tj", tj["metadata"]["name"], namespace), "Healthy", "drift-retrain-succeeded")

        # The new version's reference is the shifted data: the same traffic is no longer drift. One retrain only.
        send(kube, namespace, 2, shifted)
        wait_for(lambda: policy_cond(kube, namespace, "DriftDetected").get("status") == "False", 60, "quiet again")
        assert len(drift_jobs(kube, namespace)) == 1
        story = events(kube, namespace, "watch") + events(kube, namespace, NAME)
        for expected in ("DriftDetected: drift on model", "RetrainTriggered: created TrainingJob", "VersionTrained"):
            assert any(e.startswith(expected) for e in story), story
        assert any(e.startswith("Serving: version 2 is serving") for e in story), story

        prom.stop()
        unknown = wait_for(
            lambda: (c := policy_cond(kube, namespace, "Evaluated")).get("status") == "Unknown" and c, 60, "Unknown"
        )
        assert unknown["reason"] == "PrometheusUnavailable"
        assert len(drift_jobs(kube, namespace)) == 1
    finally:
        prom.stop()
