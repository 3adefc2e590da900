"""Fatal start-up errors exit: one line on stderr naming the problem and a non-zero exit within seconds, so that
Kubernetes restarts the pod with back-off and `kubectl logs` shows why (never an operator alive and reconciling
nothing). Each case runs `modelfleet operator run` as a process; missing CRDs: test_devcluster_lifecycle."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Kube, service_account_kubeconfig

EXIT_WITHIN_SECONDS = 30  # generous for a loaded two-core machine; the exits measured here take 1-3 s


def operator(env: dict[str, str], *args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "modelfleet", "operator", "run", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN_SECONDS,
        check=False,
    )
    return res.returncode, res.stderr, time.monotonic() - started


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


@pytest.mark.parametrize("flag", ["--metrics-port", "--health-port"])
def test_a_port_in_use_exits_naming_the_port(kubeconfig: Path, crds: Path, taken_port: int, flag: str) -> None:
    other = "--health-port=0" if flag == "--metrics-port" else "--metrics-port=0"
    code, stderr, _ = operator({"KUBECONFIG": str(kubeconfig)}, f"{flag}={taken_port}", other)
    assert code == 2, stderr
    line = _last_line(stderr)
    assert f"port {taken_port}" in line and flag in line and "in use" in line, stderr
    assert "Traceback" not in stderr


def test_a_kubeconfig_that_cannot_be_loaded_exits(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    code, stderr, _ = operator({"KUBECONFIG": str(missing)}, "--metrics-port=0", "--health-port=0")
    assert code == 2, stderr
    assert "Kubernetes credentials" in _last_line(stderr) and "Traceback" not in stderr


def test_an_unreachable_api_server_exits(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    code, stderr, took = operator({"KUBECONFIG": str(kubeconfig)}, "--metrics-port=0", "--health-port=0")
    assert code == 2, stderr
    assert f"127.0.0.1:{port}" in _last_line(stderr) and "Traceback" not in stderr
    assert took < EXIT_WITHIN_SECONDS


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MODELFLEET_RESYNC_SECONDS", "soon"), ("MODELFLEET_STUCK_PENDING_SECONDS", "-5")],
)
def test_a_bad_config_value_exits_naming_the_variable(kubeconfig: Path, variable: str, value: str) -> None:
    code, stderr, _ = operator({"KUBECONFIG": str(kubeconfig), variable: value}, "--metrics-port=0", "--health-port=0")
    assert code == 2, stderr
    line = _last_line(stderr)
    assert variable in line and repr(value) in line and "Traceback" not in stderr


def test_an_operator_refused_its_lists_exits_naming_the_refusal(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    """A ServiceAccount without the operator's RBAC passes the CRD check (discovery is open to every user), then is
    refused the start-up lists: that never gets better by retrying, so the start fails and the process exits with
    the refusal as its last line."""
    kube.run("create", "serviceaccount", "no-rights", "-n", namespace)
    account = service_account_kubeconfig(kube, namespace, "no-rights", tmp_path / "sa.kubeconfig")
    code, stderr, took = operator(
        {"KUBECONFIG": str(account)}, "--namespace", namespace, "--metrics-port=0", "--health-port=0"
    )
    assert code == 2, stderr[-3000:]
    line = _last_line(stderr)
    assert "could not start" in line and "403" in line, stderr[-3000:]
    assert took < EXIT_WITHIN_SECONDS
