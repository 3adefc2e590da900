"""One run of one container as a local process, started through the sandbox helper."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelfleet.devcluster.executor.sandbox import START_ERROR_EXIT

MAX_TERMINATION_MESSAGE = 4096  # the kubelet's limit per container
FALLBACK_LOG_BYTES = 2048
FALLBACK_LOG_LINES = 80


def keep_visible(workdir: Path) -> list[str]:
    """What a container process needs to see whatever its volumes cover: the Python environment and interpreter,
    the project's sources (editable installs) and its pod's directory."""
    import modelfleet

    sources = str(Path(modelfleet.__file__).resolve().parents[1])
    return sorted({sys.prefix, sys.base_prefix, sources, str(workdir.parent.parent)})


class ContainerProcess:
    """A started container; stdout/stderr go to `log_path` (appended across restarts)."""

    def __init__(self, workdir: Path, log_path: Path, termination_log: Path) -> None:
        self.workdir = workdir
        self.log_path = log_path
        self.termination_log = termination_log
        self.start_error_path = workdir / "start-error"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        mounts: list[dict[str, Any]],
        cwd: str,
        marker_env: Mapping[str, str],
    ) -> int:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_error_path.unlink(missing_ok=True)
        # The marker stays in the command's own environment (the helper exec()s it), so clean-up can find it.
        spec = {
            "argv": list(argv),
            "env": {**env, **marker_env},
            "mounts": mounts,
            "cwd": cwd,
            "start_error": str(self.start_error_path),
            "keep_visible": keep_visible(self.workdir),
        }
        spec_path = self.workdir / "sandbox.json"
        spec_path.write_text(json.dumps(spec))
        spec_path.chmod(0o600)
        log = self.log_path.open("ab")
        try:
            # The helper inherits only the marker (for orphan clean-up) and what it needs to import itself.
            helper_env = {**env, **marker_env, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelfleet.devcluster.executor.sandbox", str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=helper_env,
                start_new_session=True,  # its own process group: signals reach the command's children too
            )
        finally:
            log.close()
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def start_error(self, exit_code: int) -> str | None:
        if exit_code != START_ERROR_EXIT:
            return None
        try:
            return self.start_error_path.read_text() or None
        except OSError:
            return None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the whole process group, also after the leader exited (children may linger)."""
        if self.proc:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def termination_message(self, exit_code: int, policy: str) -> str | None:
        """The message from terminationMessagePath, or (FallbackToLogsOnError, failed, empty file) the log's tail."""
        try:
            msg = self.termination_log.read_bytes()[:MAX_TERMINATION_MESSAGE].decode(errors="replace")
        except OSError:
            msg = ""
        if not msg and exit_code != 0 and policy == "FallbackToLogsOnError":
            try:
                data = self.log_path.read_bytes()[-64 * 1024 :]
            except OSError:
                data = b""
            lines = [ln for ln in data.splitlines() if not ln.startswith(b"==== ")][-FALLBACK_LOG_LINES:]
            msg = b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace")
        return msg or None
