"""The API server stopped for 30 s (then started again on the same address) and etcd restarted, under a running
operator: it stays up and live, reconnects its watches, finishes the work begun before the outage, and picks up a
change made after the API returns within 10 s. Models queue for Kueue (not installed), so their runs are suspended
Jobs: cheap, and enough to see each pass that acts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modelfleet.devcluster import DevCluster
from tests.samples import sample
from tests.support import Kube, OperatorProcess, wait_for

# 30 s in the test command; MODELFLEET_CHAOS_OUTAGE_SECONDS=120 for the long form (measured in the issue note).
OUTAGE_SECONDS = float(os.environ.get("MODELFLEET_CHAOS_OUTAGE_SECONDS", "30"))


def model(name: str) -> dict[str, object]:
    doc = sample("MLModel", "first")
    doc["metadata"] = {"name": name}
    doc["spec"]["training"] = {"queueName": "nowhere"}
    return doc


def has_run(kube: Kube, namespace: str, name: str) -> bool:
    return kube.get("tj", f"{name}-v1", namespace) is not None


def picked_up_after(kube: Kube, namespace: str, name: str) -> float:
    """Applies a model and returns the seconds until its run exists."""
    kube.apply(model(name), namespace)
    started = time.monotonic()
    wait_for(lambda: has_run(kube, namespace, name), 60, f"the run of {name}")
    return time.monotonic() - started


def api_answers(kube: Kube, namespace: str) -> bool:
    """Ready, and it lists what the operator reads and writes here (each resource has its own storage client, which
    reconnects to etcd on its own schedule: /readyz answering says nothing of them)."""
    if kube.run("get", "--raw", "/readyz", check=False).returncode != 0:
        return False
    return kube.run("get", "mlmodels,trainingjobs", "-n", namespace, "-o", "name", check=False).returncode == 0


def warnings_in(log: Path) -> str:
    """The operator's warnings and errors, for a failure's message."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if "WARNING" in line or "ERROR" in line]
    return "\n".join(lines[-20:])


@pytest.mark.parametrize(("component", "down"), [("kube-apiserver", OUTAGE_SECONDS), ("etcd", 10.0)])
def test_the_operator_rides_out_a_control_plane_outage(
    dev_cluster: DevCluster | None,
    kube: Kube,
    kubeconfig: Path,
    crds: Path,
    namespace: str,
    tmp_path: Path,
    component: str,
    down: float,
) -> None:
    if dev_cluster is None:
        pytest.skip("needs the session's own dev cluster (it stops and starts its processes)")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", namespace).start()
    try:
        assert picked_up_after(kube, namespace, "before") < 10
        kube.apply(model("begun"), namespace)  # work begun just before the outage
        dev_cluster.stop_component(component)
        stopped = time.monotonic()
        while time.monotonic() - stopped < down:
            assert operator.proc is not None and operator.proc.poll() is None, "the operator exited"
            assert operator.healthy(), "liveness must not depend on the API server"
            time.sleep(2)
        dev_cluster.start_component(component)
        wait_for(lambda: api_answers(kube, namespace), 60, "the API to answer again")
        after = picked_up_after(kube, namespace, "after")
        print(f"{component} down {down:.0f}s: a change after it returned was acted on in {after:.1f}s")
        assert after <= 10, f"{after:.1f}s; the operator's warnings:\n{warnings_in(tmp_path / 'operator.log')}"
        wait_for(lambda: has_run(kube, namespace, "begun"), 30, "the work begun before the outage")
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        operator.stop()
