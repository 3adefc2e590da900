"""Helpers shared by the integration tests: a kubectl wrapper returning parsed JSON and a polling wait.

Polling is how every client observes Kubernetes (controllers act asynchronously); it is not a retry of a test.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], timeout: float = 60.0, what: str = "condition", interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


@dataclass
class Kube:
    kubeconfig: Path
    kubectl_bin: Path

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(self.kubectl_bin), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]], namespace: str | None = None) -> None:
        # Objects go as JSON: YAML 1.1 readers turn keys such as `n` or `y` into booleans.
        text = (
            manifest
            if isinstance(manifest, str)
            else json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": manifest if isinstance(manifest, list) else [manifest]}
            )
        )
        self.run("apply", *(["-n", namespace] if namespace else []), "-f", "-", input=text)

    def get(
        self, kind: str, name: str | None = None, namespace: str | None = None, **selectors: str
    ) -> dict[str, Any] | None:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        for flag, value in selectors.items():
            args += [f"--{flag.replace('_', '-')}={value}"]
        res = self.run(*args, check=False)
        if res.returncode != 0:
            if "NotFound" in res.stderr:
                return None
            raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return dict(json.loads(res.stdout))

    def items(self, kind: str, namespace: str | None = None, **selectors: str) -> list[dict[str, Any]]:
        got = self.get(kind, namespace=namespace, **selectors)
        return list(got["items"]) if got else []


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def has_condition(obj: dict[str, Any] | None, ctype: str, status: str = "True") -> bool:
    c = condition(obj, ctype)
    return bool(c and c.get("status") == status)


# Operator logs of the running test session, attached to failing integration tests' reports (see conftest.py).
OPERATOR_LOGS: list[Path] = []


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, 30 s to go, then SIGKILL."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Every operator a test started; the session stops any that a failed test left running (see conftest.py).
OPERATORS: list[OperatorProcess] = []


class OperatorProcess:
    """`modelfleet operator run` as a subprocess against the test cluster."""

    def __init__(self, kubeconfig: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        from modelfleet.devcluster.processes import free_port

        self.kubeconfig, self.log, self.extra, self.env = kubeconfig, log, extra, env or {}
        self.metrics_port, self.health_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        OPERATOR_LOGS.append(log)
        OPERATORS.append(self)

    def start(self) -> OperatorProcess:
        import os
        import sys

        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelfleet",
                    "operator",
                    "run",
                    f"--metrics-port={self.metrics_port}",
                    f"--health-port={self.health_port}",
                    *self.extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        # The metrics endpoint is bound before Kopf starts; Kopf's own liveness endpoint says the operator runs.
        wait_for(
            lambda: (self.metrics() is not None and self.healthy()) or self.proc.poll() is not None,
            60,  # type: ignore[union-attr]
            "the operator's metrics and liveness endpoints",
        )
        return self

    def healthy(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        stop_process(self.proc)

    def metrics(self) -> str | None:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except (urllib.error.URLError, OSError):
            return None

    def samples(self, name: str, **labels: str) -> list[float]:
        """The values of the metric's samples whose labels include `labels` ([] when there is none; an unreachable
        /metrics is an error, never "no samples")."""
        text = self.metrics()
        if text is None:
            raise AssertionError(f"the operator's /metrics on port {self.metrics_port} did not answer")
        return _matching_samples(text, name, labels)

    def counter(self, name: str, **labels: str) -> float:
        """Sum of a counter's samples whose labels include `labels` (0 while /metrics does not answer)."""
        return sum(_matching_samples(self.metrics() or "", name, labels))


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` in a /metrics text: (labels, value)."""
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            label_text, value = line[len(name) + 1 :].rsplit("} ", 1)
            labels = dict(kv.split("=", 1) for kv in label_text.split(",") if "=" in kv)
            found.append(({k: v.strip('"') for k, v in labels.items()}, float(value)))
    return found


def _matching_samples(text: str, name: str, labels: dict[str, str]) -> list[float]:
    return [value for have, value in samples(text, name) if all(have.get(k, "") == v for k, v in labels.items())]


def service_account_kubeconfig(kube: Kube, namespace: str, account: str, path: Path) -> Path:
    token = kube.run("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    config = yaml.safe_load(kube.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = account
        context["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayProcess:
    """`python -m modelfleet.gateway` for one namespace as a subprocess against the test cluster; its log is scanned
    for tracebacks like the operators'."""

    def __init__(self, kubeconfig: Path, log: Path, namespace: str, *extra: str) -> None:
        from modelfleet.devcluster.processes import free_port

        self.kubeconfig, self.log, self.namespace, self.extra = kubeconfig, log, namespace, extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        OPERATOR_LOGS.append(log)

    def start(self) -> GatewayProcess:
        import os
        import sys
        import urllib.error
        import urllib.request

        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelfleet.gateway",
                    *("--namespace", self.namespace, "--host", "127.0.0.1", "--port", str(self.port)),
                    *self.extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the gateway exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(up, 60, "the gateway's /healthz")
        return self

    def stop(self) -> None:
        stop_process(self.proc)
