"""A GPU-serving model gives its Karpenter node back: the real Karpenter (KWOK provider) provisions a GPU node for the
model's serving pod, the model scales to zero when idle, the node is empty, and Karpenter removes it.

Training runs for real on the executor; the serving pod asks for one GPU and the test pool's label, so only a node
Karpenter makes can take it. That node is simulated by KWOK, which runs no process: the pod counts as ready but no
model server answers or exports metrics from it. Its metrics (the `modelfleet_server_model_info` and last-request
series the operator reads per namespace) come instead from a stand-in exporter in this test, scraped by a real
Prometheus with the namespace label the pod scrape job would give; it says the model is scraped and was last asked
long ago. Everything after that is the product's own path: idleAfter passes, the operator scales the Deployment to
zero, the pod goes, the node is empty, Karpenter's consolidation (WhenEmpty) deletes the NodeClaim and the Node.

In its own module so that no other operator (the module-scoped one of test_karpenter.py) reconciles its namespace."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelfleet.devcluster.processes import free_port
from tests.datasets import write
from tests.e2e.conftest import claim, dump, events, watched_namespace
from tests.e2e.test_karpenter import POOL_LABEL, karpenter, pool_nodes, pool_objects, ready
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.support import Kube, condition, has_condition, wait_for

__all__ = ["karpenter"]  # the fixture, used by name below

NAME = "gpu-idle"
SERVING_PODS = f"modelfleet.io/model={NAME},app.kubernetes.io/component=serving"


def stand_in_exporter(namespace: str, last_request: float) -> tuple[object, dict[str, object]]:
    """The serving pod's own series, as the model server would export them (a KWOK pod runs no server)."""
    registry = CollectorRegistry()
    info = Gauge("modelfleet_server_model_info", "", ["model", "version", "digest", "framework"], registry=registry)
    info.labels(NAME, "1", "sha256:stand-in", "sklearn").set(1)
    last = Gauge("modelfleet_server_last_request_timestamp_seconds", "", ["model"], registry=registry)
    last.labels(NAME).set(last_request)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    job = {
        "job_name": "stand-in-serving-pod",
        "scrape_interval": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": namespace}}],
    }
    return server, job


def test_a_gpu_serving_model_scaled_to_zero_gives_its_karpenter_node_back(
    karpenter: None, kube: Kube, crds: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    exporter, job = stand_in_exporter(namespace, last_request=time.time() - 3600)
    pool = f"gpu-{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"
    kube.apply(pool_objects(pool), None)
    try:
        with watched_namespace(kubeconfig, namespace, tmp_path, scrape_jobs=[job]):
            give_back_the_node(kube, namespace, pool)
    finally:
        exporter.shutdown()  # type: ignore[attr-defined]
        kube.run("delete", "nodepool", pool, "--ignore-not-found", "--wait=false", check=False)


def give_back_the_node(kube: Kube, namespace: str, pool: str) -> None:
    """Train, serve from a node Karpenter makes, scale to zero, and see the node go."""
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    assert pool_nodes(kube, pool) == []
    manifest = model_manifest(NAME)
    manifest["spec"]["serving"] = {
        "resources": {"gpu": 1},
        "nodeSelector": {POOL_LABEL: pool},
        "minReplicas": 0,
        "idleAfter": "20s",
    }
    kube.apply(manifest, namespace)

    # Training ends; the serving pod is created and pending: no node has the pool's label yet.
    pending = wait_for(lambda: kube.items("pods", namespace, selector=SERVING_PODS), TRAIN_TIMEOUT, "a serving pod")
    started = time.monotonic()
    assert not pending[0]["spec"].get("nodeName"), dump(pending[0])
    node = wait_for(lambda: next((n for n in pool_nodes(kube, pool) if ready(n)), None), 120, "a node for it")
    provisioned = time.monotonic() - started
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "sim-gpu-1x", dump(node["metadata"])
    model = wait_for(
        lambda: (m := kube.get("mlm", NAME, namespace)) and has_condition(m, "Ready") and m,
        120,
        "the model to serve from the new node",
    )
    (pod,) = kube.items("pods", namespace, selector=SERVING_PODS)
    assert pod["spec"]["nodeName"] == node["metadata"]["name"], dump(pod["spec"])
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    serving_since = time.monotonic()

    # Idle: scaled to zero no sooner than idleAfter after it began serving, and the node goes.
    wait_for(
        lambda: (d := kube.get("deployment", NAME, namespace)) and d["spec"].get("replicas") == 0,
        120,
        "the Deployment scaled to zero",
    )
    zero = time.monotonic()
    assert zero - serving_since >= 15, "scaled to zero before idleAfter (20 s) less slack"
    model = kube.get("mlm", NAME, namespace)
    assert model and (condition(model, "Serving") or {}).get("reason") == "ScaledToZero", dump(model["status"])
    assert any(e.startswith("ScaledToZero: scaled to zero: no requests for 20s") for e in events(kube, namespace, NAME))
    wait_for(lambda: not kube.items("pods", namespace, selector=SERVING_PODS), 60, "the serving pod to go")
    wait_for(lambda: not pool_nodes(kube, pool), 180, "Karpenter to remove the empty node")
    removed = time.monotonic() - zero
    assert not kube.items("nodeclaims", selector=f"karpenter.sh/nodepool={pool}")
    print(
        f"\nKarpenter, serving: pod pending -> node Ready {provisioned:.1f} s; "
        f"scaled to zero -> node gone {removed:.1f} s"
    )
