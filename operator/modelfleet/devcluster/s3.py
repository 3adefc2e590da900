"""A real S3 server for the tests and the demo: versitygw (built from its Go module by hack/versitygw.sh) serving a
directory as buckets, with credentials generated at start and handed to pods through a Secret."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelfleet.artifact.objectstore import DEFAULT_REGION, ObjectStore, S3Settings
from modelfleet.devcluster.binaries import REPO_ROOT, SetupError
from modelfleet.devcluster.processes import free_port, tail

BUILD_SCRIPT = REPO_ROOT / "hack" / "versitygw.sh"
SECRET_NAME = "modelfleet-s3"
"""The Secret the dev cluster's S3 credentials go in (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)."""


def find_versitygw() -> Path:
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SetupError("building versitygw failed (hack/versitygw.sh); the step and its log file are named above")
    return Path(res.stdout.strip().splitlines()[-1])


def versitygw_command(
    port: int, data: Path, access_key: str, secret_key: str, region: str = DEFAULT_REGION
) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) of a versitygw serving `data` on a loopback port, signing for `region`. The keys go
    in the environment, not argv: /proc/<pid>/cmdline is world-readable."""
    argv = [str(find_versitygw()), "--port", f"127.0.0.1:{port}", "--region", region, "--quiet", "posix", "--nometa"]
    argv.append(str(data))
    return argv, {"ROOT_ACCESS_KEY_ID": access_key, "ROOT_SECRET_ACCESS_KEY": secret_key}


def wait_listening(port: int, exited: Callable[[], bool], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited():
            raise RuntimeError(f"versitygw exited:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"versitygw did not listen on {port} in {timeout:.0f}s:\n{tail(log)}")


def secret_manifest(namespace: str, data: dict[str, str], name: str = SECRET_NAME) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "modelfleet"}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def credentials_env(endpoint: str, access_key: str, secret_key: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """What a pod (or a process) needs to reach the server: the standard AWS variables."""
    return {
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": region,
    }


class S3Server:
    """versitygw on a loopback port. `region` is the one it checks signatures for: "auto" makes it stand in for
    Google's S3-compatible API, which gs:// locations are signed for."""

    def __init__(self, state_dir: Path, *, port: int | None = None, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self.dir = state_dir
        self.data = state_dir / "buckets"
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # Generated per start: nothing fixed to leak, and a test that needs wrong credentials makes its own.
        self.access_key = f"mf{secrets.token_hex(8)}"
        self.secret_key = secrets.token_urlsafe(30)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir / "versitygw.log"

    @property
    def settings(self) -> S3Settings:
        return S3Settings(
            endpoint=self.endpoint, access_key=self.access_key, secret_key=self.secret_key, region=self.region
        )

    def env(self) -> dict[str, str]:
        return credentials_env(self.endpoint, self.access_key, self.secret_key, self.region)

    def store(self) -> ObjectStore:
        return ObjectStore(self.settings)

    def start(self, timeout: float = 20.0) -> S3Server:
        self.data.mkdir(parents=True, exist_ok=True)
        argv, env = versitygw_command(self.port, self.data, self.access_key, self.secret_key, self.region)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        proc = self.proc
        wait_listening(self.port, lambda: proc.poll() is not None, self.log, timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def make_bucket(self, name: str) -> None:
        store = self.store()
        if not store.client.bucket_exists(name):
            store.client.make_bucket(name)

    def secret(self, namespace: str, name: str = SECRET_NAME, **override: str) -> dict[str, Any]:
        """The credentials Secret for pods in `namespace` (`override` replaces entries: a wrong key, say)."""
        return secret_manifest(namespace, {**self.env(), **override}, name)
