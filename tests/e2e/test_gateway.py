"""Scale from zero through the ModelFleet gateway on the dev cluster: a model at zero answers requests sent to the
gateway (held until a pod is ready, one scale-up request for a burst of them, no error), and goes back to zero when
idle again. The real model server answers on the executor node; Prometheus scrapes it and the gateway."""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.datasets import write
from tests.e2e.conftest import claim, dump, events, watched_namespace
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import GatewayProcess, Kube, condition, has_condition, wait_for

NAME = "cold"
BURST = 20


def replicas(kube: Kube, namespace: str) -> int | None:
    deployment = kube.get("deployment", NAME, namespace)
    return None if deployment is None else int(deployment["spec"].get("replicas", -1))


def post(url: str, body: dict[str, Any], timeout: float = 90) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), time.monotonic() - started
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), time.monotonic() - started


def at_zero(kube: Kube, namespace: str) -> bool:
    pods = kube.items("pods", namespace, selector=f"modelfleet.io/model={NAME},app.kubernetes.io/component=serving")
    return replicas(kube, namespace) == 0 and not pods


def test_a_model_at_zero_answers_through_the_gateway_and_goes_back_to_zero(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    with watched_namespace(kubeconfig, namespace, tmp_path, gateway=True) as watched:
        assert watched.gateway is not None
        run_scale_from_zero(kube, namespace, watched.gateway)


def run_scale_from_zero(kube: Kube, namespace: str, gateway: GatewayProcess) -> None:
    """Train and serve, one request warm, then a burst at zero, then back to zero."""
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    manifest = model_manifest(NAME)
    manifest["spec"]["serving"] = {"minReplicas": 0, "idleAfter": "20s", "coldStartTimeout": "90s"}
    kube.apply(manifest, namespace)
    wait_for(
        lambda: (m := kube.get("mlm", NAME, namespace)) and has_condition(m, "Ready") and m,
        TRAIN_TIMEOUT,
        "version 1 to be served",
    )
    cols = rows("breast_cancer", data / "breast_cancer.csv", 5)
    infer_url = f"{gateway.url}/v2/models/{NAME}/infer"
    status, warm, _ = post(infer_url, v2_inputs(cols))
    assert status == 200 and len(warm["outputs"][0]["data"]) == 5, warm

    status, body, _ = post(f"{gateway.url}/v2/models/no-such-model/infer", v2_inputs(cols))
    assert (status, body["error"]) == (
        404,
        f"model 'no-such-model' is not served in namespace {namespace}; known models: ['{NAME}']",
    )

    wait_for(lambda: at_zero(kube, namespace), 120, "the model to scale to zero")
    model = kube.get("mlm", NAME, namespace)
    assert model and (condition(model, "Serving") or {}).get("reason") == "ScaledToZero", dump(model["status"])

    # A burst at zero: every request is held until the new pod is ready, none fails.
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(lambda _i: post(infer_url, v2_inputs(cols)), range(BURST)))
    failed = [(s, b) for s, b, _t in answers if s != 200]
    assert not failed, failed
    assert all(b["outputs"][0]["data"] == warm["outputs"][0]["data"] for _s, b, _t in answers)
    waits = sorted(t for _s, _b, t in answers)
    print(f"\ngateway cold start: {BURST} requests at zero, first answer {waits[0]:.1f} s, last {waits[-1]:.1f} s")
    model = kube.get("mlm", NAME, namespace)
    assert model
    assert model["metadata"]["annotations"]["modelfleet.io/scale-up"].startswith("gateway-")
    assert [e for e in events(kube, namespace, NAME) if e.startswith("ScaledUp:")], events(kube, namespace, NAME)
    # One scale-up request for the burst: the annotation changed once, so one ScaledUp decision.
    assert len([e for e in events(kube, namespace, NAME) if e.startswith("ScaledUp:")]) == 1

    # The gateway's own series: requests by model, version, code; the cold start; held requests.
    metrics = urllib.request.urlopen(f"{gateway.url}/metrics", timeout=5).read().decode()
    assert f'modelfleet_gateway_requests_total{{code="200",model="{NAME}",version="1"}} {BURST + 1}.0' in metrics
    assert 'modelfleet_gateway_requests_total{code="404",model="no-such-model",version=""} 1.0' in metrics
    assert f'modelfleet_gateway_cold_start_seconds_count{{model="{NAME}"}} {BURST}.0' in metrics

    # Idle again: back to zero.
    wait_for(lambda: at_zero(kube, namespace), 120, "the model to scale to zero again")
