"""A watch that stalls: a proxy between the operator and the API server stops forwarding on every open connection
(watch streams and pooled request connections alike) without closing them. The operator must notice within its
inactivity timeout, reconnect, and miss nothing: a model created during the stall gets its run, and a model deleted
during it leaves the operator's cache."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from tests.chaos.proxy import StallingProxy
from tests.chaos.test_control_plane_outage import has_run, model
from tests.support import Kube, OperatorProcess, wait_for

INACTIVITY = 10.0


def cached_models(operator: OperatorProcess) -> float | None:
    found = re.search(r'modelfleet_cache_objects\{kind="MLModel"\} ([0-9.]+)', operator.metrics() or "")
    return float(found.group(1)) if found else None


def test_a_stalled_watch_is_detected_reconnected_and_nothing_is_missed(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    server = urlparse(config["clusters"][0]["cluster"]["server"])
    proxy = StallingProxy(int(server.port or 443)).start()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    proxied = tmp_path / "proxied.kubeconfig"
    proxied.write_text(yaml.safe_dump(config))
    env = {"MODELFLEET_WATCH_INACTIVITY_SECONDS": str(INACTIVITY), "MODELFLEET_API_TIMEOUT_SECONDS": "10"}
    operator = OperatorProcess(proxied, tmp_path / "operator.log", "--namespace", namespace, env=env).start()
    try:
        kube.apply([model("before"), model("doomed")], namespace)
        wait_for(lambda: has_run(kube, namespace, "before") and has_run(kube, namespace, "doomed"), 30, "both runs")
        wait_for(lambda: cached_models(operator) == 2, 10, "the cache to hold both models")
        stalled = proxy.stall()
        began = time.monotonic()
        assert stalled >= 9, stalled  # a watch per kind at least
        kube.apply(model("during"), namespace)
        kube.run("delete", "mlm", "doomed", "-n", namespace)
        wait_for(lambda: has_run(kube, namespace, "during"), INACTIVITY + 35, "the run of the model made meanwhile")
        wait_for(lambda: cached_models(operator) == 2, INACTIVITY + 35, "the deleted model to leave the cache")
        took = time.monotonic() - began
        print(f"{stalled} connections stalled; the change and the deletion were seen {took:.1f}s later")
        assert took >= INACTIVITY * 0.5, "too quick: the stall did not hold the watches"
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        operator.stop()
        proxy.stop()
