"""Readiness, liveness and startup probes (httpGet, tcpSocket, exec), with the kubelet's thresholds and timing."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _port(port: int | str, container: Mapping[str, Any]) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"named port {port!r} not found in container ports")


def run_probe(
    probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, env: Mapping[str, str]
) -> tuple[bool, str]:
    """One probe attempt: (success, message)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            hg = probe["httpGet"]
            host = hg.get("host") or pod_ip
            port = _port(hg["port"], container)
            conn: http.client.HTTPConnection
            if hg.get("scheme", "HTTP").upper() == "HTTPS":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates either
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {h["name"]: h["value"] for h in hg.get("httpHeaders") or []}
            headers.setdefault("User-Agent", "kube-probe/modelfleet-executor")
            try:
                conn.request("GET", hg.get("path", "/"), headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= status < 400, f"HTTP probe failed with statuscode: {status}"
        if "tcpSocket" in probe:
            ts = probe["tcpSocket"]
            with socket.create_connection((ts.get("host") or pod_ip, _port(ts["port"], container)), timeout=timeout):
                return True, ""
        if "exec" in probe:
            cmd = probe["exec"].get("command") or []
            res = subprocess.run(cmd, env=dict(env), capture_output=True, timeout=timeout, check=False)
            return res.returncode == 0, res.stdout.decode(errors="replace")[-512:]
        return False, "unsupported probe handler (grpc is not supported by the local executor)"
    except (OSError, ValueError, http.client.HTTPException, subprocess.TimeoutExpired) as e:
        return False, f"probe failed: {e}"


@dataclass
class ProbeTracker:
    """Consecutive-result bookkeeping for one probe of one container run."""

    probe: Mapping[str, Any]
    started_at: float  # monotonic time the container started
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0
    result: bool | None = None  # None until thresholds decide
    message: str = ""

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds", 0))

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, message: str, now: float) -> None:
        self.next_at = now + float(self.probe.get("periodSeconds", 10))
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            self.message = message
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.result = False
