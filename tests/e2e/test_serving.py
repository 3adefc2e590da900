"""Serving end to end: a trained version served by the real model server on the executor node, approval for
high-risk models, and a corrupted version rolled back while the previous one keeps serving."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.artifact.sklearn_model import SklearnPredictor
from tests.argocd import check_health
from tests.datasets import feature_spec, write
from tests.e2e.conftest import claim, dump, events
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for


def serving_pod_ip(kube: Kube, ns: str, name: str, version: int) -> str:
    pods = kube.items("pods", ns, selector=f"modelfleet.io/model={name},modelfleet.io/version={version}")
    ready = [
        p
        for p in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    ]
    assert ready, dump(pods)
    assert ready[0]["spec"]["nodeName"] == "modelfleet-executor"
    return str(ready[0]["status"]["podIP"])


def infer(ip: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://{ip}:8080/v2/models/{name}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def test_trained_model_is_served_and_answers_correctly(kube: Kube, operator: OperatorProcess, namespace: str) -> None:
    data = claim(kube, namespace, "datasets")
    store = claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    kube.apply(model_manifest("tumour"), namespace)
    model = wait_for(
        lambda: (m := kube.get("mlm", "tumour", namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "the model to be Ready",
    )
    assert model["status"]["servingVersion"]["number"] == 1 and model["status"]["phase"] == "Serving"
    check_health(model, "Healthy", "serving")
    assert model["status"]["endpoint"] == f"http://tumour.{namespace}.svc.cluster.local/v2/models/tumour/infer"
    assert kube.get("service", "tumour", namespace)
    deployment = kube.get("deployment", "tumour", namespace)
    assert deployment and has_condition(deployment, "Available")
    cols = rows("breast_cancer", data / "breast_cancer.csv", 20)
    out = infer(serving_pod_ip(kube, namespace, "tumour", 1), "tumour", v2_inputs(cols))
    local = SklearnPredictor.load(
        store / "models" / "tumour" / "v1", [(f["name"], f["type"]) for f in feature_spec("breast_cancer")]
    )
    pred, proba = local.predict(cols)
    assert out["outputs"][0]["data"] == pred.tolist()
    np.testing.assert_allclose(np.asarray(out["outputs"][1]["data"]).reshape(proba.shape), proba)
    assert any(e.startswith("Serving: version 1 is serving") for e in events(kube, namespace, "tumour"))

    # The same over gRPC: the Service names the port (appProtocol grpc) and a Triton client gets the same answer.
    service = kube.get("service", "tumour", namespace)
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port["appProtocol"] == "grpc" and grpc_port["targetPort"] == "grpc"
    import tritonclient.grpc as grpcclient

    from tests.runtime.test_server_grpc import triton_inputs

    client = grpcclient.InferenceServerClient(url=f"{serving_pod_ip(kube, namespace, 'tumour', 1)}:{grpc_port['port']}")
    assert client.is_model_ready("tumour", "1")
    answer = client.infer("tumour", triton_inputs(cols, 20))
    assert answer.as_numpy("predict").tolist() == pred.tolist() and answer.get_response().model_version == "1"


def test_high_risk_waits_for_approval_and_a_corrupted_version_is_rolled_back(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    data = claim(kube, namespace, "datasets")
    store = claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    manifest = model_manifest("credit")
    manifest["spec"]["riskClass"] = "high"
    kube.apply(manifest, namespace)
    trained = wait_for(
        lambda: (
            (m := kube.get("mlm", "credit", namespace))
            and (condition(m, "Approved") or {}).get("reason") == "AwaitingApproval"
            and m
        ),
        TRAIN_TIMEOUT,
        "version 1 to await approval",
    )
    assert '"approvedVersion":1' in condition(trained, "Approved")["message"]  # type: ignore[index]
    check_health(trained, "Suspended", "awaiting-approval")
    assert kube.get("deployment", "credit", namespace) is None  # nothing is served before approval

    manifest["spec"]["serving"] = {"approvedVersion": 1}
    kube.apply(manifest, namespace)
    served = wait_for(
        lambda: (m := kube.get("mlm", "credit", namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "version 1 to be served",
    )
    assert served["status"]["servingVersion"]["number"] == 1

    # Version 2 (new dataset version) trains and waits for approval; its artifact is corrupted meanwhile.
    manifest["spec"]["dataset"]["version"] = "2"
    kube.apply(manifest, namespace)
    wait_for(
        lambda: (
            (m := kube.get("mlm", "credit", namespace))
            and (m["status"].get("latestVersion") or {}).get("number") == 2
            and m
        ),
        TRAIN_TIMEOUT,
        "version 2",
    )
    model_file = store / "models" / "credit" / "v2" / "model.skops"
    raw = bytearray(model_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    model_file.write_bytes(bytes(raw))
    manifest["spec"]["serving"] = {"approvedVersion": 2}
    kube.apply(manifest, namespace)
    degraded = wait_for(
        lambda: (m := kube.get("mlm", "credit", namespace)) and has_condition(m, "Degraded") and m,
        TRAIN_TIMEOUT,
        "the rollout of version 2 to fail",
    )
    why = condition(degraded, "Degraded")
    assert why and why["reason"] == "RolloutFailed" and "rejected before loading" in why["message"], dump(why)
    check_health(degraded, "Degraded", "rollout-failed")
    assert degraded["status"]["servingVersion"]["number"] == 1
    v2 = next(v for v in degraded["status"]["versions"] if v["number"] == 2)
    assert v2["promotable"] is False and "rollout failed" in v2["rejectedReason"]
    # Version 1 answers all along.
    cols = rows("breast_cancer", data / "breast_cancer.csv", 3)
    assert infer(serving_pod_ip(kube, namespace, "credit", 1), "credit", v2_inputs(cols))["model_name"] == "credit"
    wait_for(
        lambda: (
            (d := kube.get("deployment", "credit", namespace))
            and d["spec"]["template"]["metadata"]["labels"]["modelfleet.io/version"] == "1"
        ),
        60,
        "the rollback",
    )
    assert any(e.startswith("RolloutFailed") for e in events(kube, namespace, "credit"))
    _ = Path


class Traffic:
    """Requests in a loop to the model's ready, non-terminating pods (what kube-proxy routes to), counting answers
    per model version and failures."""

    def __init__(self, kube: Kube, namespace: str, name: str, body: dict[str, Any]) -> None:
        import threading

        self.kube, self.namespace, self.name, self.body = kube, namespace, name, body
        self.ok: dict[str, int] = {}
        self.failures: list[str] = []
        self.targets: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._route, daemon=True),
            threading.Thread(target=self._send, daemon=True),
        ]

    def _route(self) -> None:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kube.kubeconfig)))
        while not self.stop.is_set():
            selector = f"modelfleet.io/model={self.name},app.kubernetes.io/component=serving"  # the Service's
            pods = api.list_namespaced_pod(self.namespace, label_selector=selector).items
            self.targets = [
                p.status.pod_ip
                for p in pods
                if p.metadata.deletion_timestamp is None
                and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ]
            self.stop.wait(0.2)

    def _send(self) -> None:
        i = 0
        while not self.stop.is_set():
            targets = list(self.targets)
            if not targets:
                self.stop.wait(0.05)
                continue
            ip = targets[i % len(targets)]
            i += 1
            try:
                out = infer(ip, self.name, self.body)
                self.ok[out["model_version"]] = self.ok.get(out["model_version"], 0) + 1
            except Exception as e:  # every kind of failure counts: refused, reset, 5xx
                self.failures.append(f"{ip}: {e}")
            self.stop.wait(0.01)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_a_new_version_rolls_out_with_zero_failed_requests(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    manifest = model_manifest("live")
    kube.apply(manifest, namespace)
    wait_for(
        lambda: (m := kube.get("mlm", "live", namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "version 1 to serve",
    )
    body = v2_inputs(rows("breast_cancer", data / "breast_cancer.csv", 4))
    with Traffic(kube, namespace, "live", body) as traffic:
        wait_for(lambda: traffic.ok.get("1", 0) > 20, 30, "traffic to version 1")
        manifest["spec"]["dataset"]["version"] = "2"  # retrain on "new" data: version 2
        kube.apply(manifest, namespace)
        wait_for(
            lambda: (
                (m := kube.get("mlm", "live", namespace))
                and (m["status"].get("servingVersion") or {}).get("number") == 2
                and m
            ),
            TRAIN_TIMEOUT,
            "version 2 to serve",
        )
        wait_for(lambda: traffic.ok.get("2", 0) > 20, 30, "traffic to version 2")
    print(f"\nanswers by version: {traffic.ok}, failures: {len(traffic.failures)}")
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.ok["1"] > 20 and traffic.ok["2"] > 20
