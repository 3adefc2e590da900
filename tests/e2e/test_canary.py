"""Canary rollouts under live traffic through the gateway, on the dev cluster (real trainer, real model servers on the
executor node, real Prometheus scraping the gateway): a good version 2 goes 10 % -> 50 % -> 100 % and is promoted
with no failed request; an incompatible version 3 (trained on fewer features, so it refuses the requests version 2
answers) is rolled back at its first step, with the figures in the Event, and version 2 keeps serving."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any

from tests.datasets import feature_spec, write
from tests.e2e.conftest import claim, dump, events, watched_namespace
from tests.e2e.test_gateway import post
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, condition, has_condition, wait_for

NAME = "canaried"
ROLLOUT = {
    "strategy": "Canary",
    "steps": [10, 50, 100],
    "interval": "8s",
    "analysis": {"maxErrorRate": 0.05, "minRequests": 5},
}


class Traffic:
    """Requests through the gateway, one after another, until stopped: each answer's time, status and version."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.url, self.body = url, body
        self.answers: list[tuple[float, int, str | None]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            status, body, _ = post(self.url, self.body, timeout=30)
            self.answers.append((time.monotonic(), status, body.get("model_version")))
            time.sleep(0.03)

    def since(self, t: float) -> list[tuple[float, int, str | None]]:
        return [a for a in self.answers if a[0] >= t]


def serving_number(kube: Kube, namespace: str) -> int | None:
    m = kube.get("mlm", NAME, namespace) or {}
    return ((m.get("status") or {}).get("servingVersion") or {}).get("number")


def test_a_good_version_is_promoted_step_by_step_and_a_bad_one_is_rolled_back_at_the_first(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    with watched_namespace(kubeconfig, namespace, tmp_path, gateway=True) as watched:
        assert watched.gateway is not None
        gateway = watched.gateway
        traffic: Traffic | None = None
        try:
            data = claim(kube, namespace, "datasets")
            claim(kube, namespace, "model-store")
            write("breast_cancer", data / "breast_cancer.csv")
            manifest = model_manifest(NAME)
            manifest["spec"]["serving"] = {"rollout": ROLLOUT}
            kube.apply(manifest, namespace)
            wait_for(
                lambda: (m := kube.get("mlm", NAME, namespace)) and has_condition(m, "Ready"),
                TRAIN_TIMEOUT,
                "version 1",
            )
            traffic = Traffic(
                f"{gateway.url}/v2/models/{NAME}/infer", v2_inputs(rows("breast_cancer", data / "breast_cancer.csv", 5))
            )
            traffic.thread.start()

            # A good version 2 (another regularisation): 10 % -> 50 % -> 100 %, promoted, no failed request.
            started = time.monotonic()
            manifest["spec"]["training"]["hyperparameters"]["C"] = 0.3
            kube.apply(manifest, namespace)
            wait_for(
                lambda: serving_number(kube, namespace) == 2, TRAIN_TIMEOUT + 120, "version 2 promoted and serving"
            )
            said = [e for e in events(kube, namespace, NAME) if e.split(":")[0].startswith("Canary")]
            assert [e.split(":")[0] for e in said] == ["CanaryStarted", "CanaryStep", "CanaryStep", "CanaryPromoted"], (
                said
            )
            assert "version 2 passed at 10%" in said[1] and "now 50%" in said[1], said
            assert "version 2 passed at 50%" in said[2] and "now 100%" in said[2], said
            wait_for(
                lambda: kube.get("deployment", f"{NAME}-canary", namespace) is None, 60, "the canary Deployment to go"
            )
            model = kube.get("mlm", NAME, namespace) or {}
            assert "canary" not in model["status"], dump(model["status"])
            during = traffic.since(started)
            failed = [a for a in during if a[1] != 200]
            assert not failed, failed[:5]
            answered_by = collections.Counter(v for _t, _s, v in during)
            assert answered_by["1"] > 0 and answered_by["2"] > 0, answered_by  # both answered while it ran

            # An incompatible version 3 (trained without one feature: it refuses the inputs the clients send).
            started = time.monotonic()
            manifest["spec"]["dataset"]["features"] = feature_spec("breast_cancer")[1:]
            kube.apply(manifest, namespace)
            failed_event = wait_for(
                lambda: [e for e in events(kube, namespace, NAME) if e.startswith("CanaryFailed:")],
                TRAIN_TIMEOUT + 120,
                "version 3's canary to fail",
            )[0]
            assert failed_event.startswith("CanaryFailed: version 3 rolled back at 10%: version 3:"), failed_event
            assert "more errors than allowed (5.0%); version 2 keeps serving" in failed_event, failed_event
            model = wait_for(
                lambda: (
                    (m := kube.get("mlm", NAME, namespace))
                    and (condition(m, "Degraded") or {}).get("reason") == "CanaryFailed"
                    and m
                ),
                30,
                "Degraded=CanaryFailed",
            )
            assert serving_number(kube, namespace) == 2 and "canary" not in model["status"], dump(model["status"])
            v3 = next(v for v in model["status"]["versions"] if v["number"] == 3)
            assert v3["promotable"] is False and v3["rejectedReason"].startswith("canary failed at 10%"), v3
            wait_for(
                lambda: kube.get("deployment", f"{NAME}-canary", namespace) is None, 60, "the canary Deployment to go"
            )
            during = traffic.since(started)
            failed = [a for a in during if a[1] != 200]
            assert failed and len(failed) < 0.3 * len(during), (len(failed), len(during))  # its share only
            settled = time.monotonic()
            time.sleep(5)
            after = traffic.since(settled)
            assert after and all(s == 200 and v == "2" for _t, s, v in after), after[:5]
        finally:
            if traffic is not None:
                traffic.stopping.set()
                traffic.thread.join(35)
