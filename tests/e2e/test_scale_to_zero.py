"""Scale to zero on the dev cluster: a model with minReplicas 0 that gets no requests for idleAfter (by the request
counters Prometheus scraped from its pod) goes to zero replicas, says so, and comes back on the scale-up annotation."""

from __future__ import annotations

import time
from pathlib import Path

from tests.argocd import check_health
from tests.datasets import write
from tests.e2e.conftest import claim, dump, events, watched_namespace
from tests.e2e.test_serving import infer, serving_pod_ip
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, condition, has_condition, wait_for

NAME = "sleepy"


def replicas(kube: Kube, namespace: str) -> int | None:
    deployment = kube.get("deployment", NAME, namespace)
    return None if deployment is None else int(deployment["spec"].get("replicas", -1))


def test_idle_model_scales_to_zero_and_back_on_request(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    with watched_namespace(kubeconfig, namespace, tmp_path) as watched:
        prom = watched.prometheus
        data = claim(kube, namespace, "datasets")
        claim(kube, namespace, "model-store")
        write("breast_cancer", data / "breast_cancer.csv")
        manifest = model_manifest(NAME)
        manifest["spec"]["serving"] = {"minReplicas": 0, "idleAfter": "20s"}
        kube.apply(manifest, namespace)
        wait_for(
            lambda: (m := kube.get("mlm", NAME, namespace)) and has_condition(m, "Ready") and m,
            TRAIN_TIMEOUT,
            "version 1 to be served",
        )
        assert replicas(kube, namespace) == 1  # minReplicas 0 still serves until idle
        cols = rows("breast_cancer", data / "breast_cancer.csv", 5)
        infer(serving_pod_ip(kube, namespace, NAME, 1), NAME, v2_inputs(cols))
        served_at = time.monotonic()
        prom.wait_for_series(f'modelfleet_server_last_request_timestamp_seconds{{namespace="{namespace}"}}', 30)
        wait_for(lambda: replicas(kube, namespace) == 0, 90, "the Deployment scaled to zero")
        assert time.monotonic() - served_at >= 15  # not before idleAfter (20 s) since the last request, less slack
        model = kube.get("mlm", NAME, namespace)
        serving = condition(model, "Serving") or {}
        assert (serving.get("status"), serving.get("reason")) == ("False", "ScaledToZero"), dump(model)
        assert model and model["status"]["utilization"]["scaledToZeroTime"]
        assert "modelfleet.io/scale-up" in serving["message"]
        check_health(model, "Suspended", "scaled-to-zero")
        assert any(
            e.startswith("ScaledToZero: scaled to zero: no requests for 20s") for e in events(kube, namespace, NAME)
        )

        kube.run("annotate", "mlm", NAME, "-n", namespace, "modelfleet.io/scale-up=1", "--overwrite")
        back = wait_for(
            lambda: (m := kube.get("mlm", NAME, namespace)) and has_condition(m, "Ready") and m,
            120,
            "serving again after the scale-up request",
        )
        assert replicas(kube, namespace) == 1 and "scaledToZeroTime" not in back["status"]["utilization"]
        out = infer(serving_pod_ip(kube, namespace, NAME, 1), NAME, v2_inputs(cols))
        assert len(out["outputs"][0]["data"]) == 5
        assert any(e.startswith("ScaledUp:") for e in events(kube, namespace, NAME))
