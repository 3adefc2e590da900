"""`modelfleet dev-cluster up|down|status` through the real CLI, on a cluster of its own (not the session's)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfleet.devcluster.processes import marked_pids
from tests.support import wait_for


def cli(state_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelfleet", "dev-cluster", *args, f"--state-dir={state_dir}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def component_pids(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state_dir / "pids").glob("*.pid")}


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "cluster"
    cli(tmp_path / "cluster", "down", "--purge")


def cluster_id(state_dir: Path) -> str:
    return (state_dir / "cluster-id").read_text().strip()


def test_up_is_idempotent_and_down_leaves_no_processes(state_dir: Path) -> None:
    first = cli(state_dir, "up")
    assert first.returncode == 0, first.stderr
    pids = component_pids(state_dir)
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "executor"}

    second = cli(state_dir, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert component_pids(state_dir) == pids  # nothing restarted

    # This cluster has no ModelFleet CRDs: the operator refuses to start and says what to install.
    op = subprocess.run(
        [sys.executable, "-m", "modelfleet", "operator", "run", "--metrics-port=0", "--health-port=0"],
        env={**os.environ, "KUBECONFIG": str(state_dir / "kubeconfig")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert op.returncode == 2
    assert "mlmodels.modelfleet.io" in op.stderr and "never installs CRDs" in op.stderr

    status = cli(state_dir, "status")
    assert status.returncode == 0 and json.loads(status.stdout)["api_ready"] is True
    assert cli(state_dir, "kubeconfig").stdout.strip() == str(state_dir / "kubeconfig")

    down = cli(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert list(marked_pids(cluster_id(state_dir))) == []
    assert cli(state_dir, "status").returncode == 1


def server_of(state_dir: Path) -> str:
    return str(json.loads((state_dir / "cluster.json").read_text())["server"])


def test_up_recovers_after_its_components_were_killed(state_dir: Path) -> None:
    """After a crash `up` starts everything again with the same data and at the same address: a client built before
    the crash (its kubeconfig read once, like a running operator's) goes on working."""
    from kubernetes import client

    from modelfleet.clients.kube import api_client

    assert cli(state_dir, "up").returncode == 0
    kubeconfig = state_dir / "kubeconfig"
    server = server_of(state_dir)
    running_client = client.CoreV1Api(api_client(str(kubeconfig)))
    assert running_client.list_namespace().items
    kubectl = Path(json.loads((state_dir / "cluster.json").read_text())["bin_dir"]) / "kubectl"
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "create", "configmap", "survivor", "--from-literal=k=v"],
        check=True,
        capture_output=True,
    )
    for pid in component_pids(state_dir).values():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cli(state_dir, "status").returncode == 1, 30, "the cluster to be seen as down")

    again = cli(state_dir, "up")
    assert again.returncode == 0, again.stderr
    got = subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "get", "configmap", "survivor", "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(got.stdout)["data"] == {"k": "v"}  # etcd's data outlived the crash
    assert server_of(state_dir) == server
    assert running_client.read_namespaced_config_map("survivor", "default").data == {"k": "v"}


def test_up_says_when_the_api_servers_port_was_taken_meanwhile(state_dir: Path) -> None:
    assert cli(state_dir, "up").returncode == 0
    server = server_of(state_dir)
    port = int(server.rsplit(":", 1)[1])
    for pid in component_pids(state_dir).values():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cli(state_dir, "status").returncode == 1, 30, "the cluster to be seen as down")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for(lambda: _try_bind(squatter, port), 30, "the old API server port to be free for the squatter")
        squatter.listen(1)
        again = cli(state_dir, "up")
    assert again.returncode == 0, again.stderr
    assert f"the API server's port {port} is taken" in again.stderr
    assert server_of(state_dir) != server
    assert cli(state_dir, "status").returncode == 0  # through the rewritten kubeconfig


def _try_bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_up_recovers_after_an_earlier_up_was_killed_mid_start(state_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelfleet", "dev-cluster", "up", f"--state-dir={state_dir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: "kube-apiserver" in component_pids(state_dir) if (state_dir / "pids").exists() else False,
        120,
        "the first up to start the API server",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    again = cli(state_dir, "up")
    assert again.returncode == 0, again.stderr
    assert cli(state_dir, "status").returncode == 0
    assert cli(state_dir, "down").returncode == 0
    assert list(marked_pids(cluster_id(state_dir))) == []
