"""Starting and stopping the dev cluster's long-running processes.

Every process we start carries the environment variable MARKER_ENV set to the cluster's id, so that `down` and a
restart after a crash can find and stop leftovers (components, the executor and its container processes) even when
a PID file was lost. PID files alone are not trusted: a PID is only ours if its environment carries the marker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

MARKER_ENV = "MODELFLEET_DEVCLUSTER_ID"


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now (the kernel's choice, so never a well-known one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int, taken: Collection[int] = ()) -> list[int]:
    """`count` distinct free loopback ports, none of them in `taken`. The sockets are held open together while the
    kernel chooses: one free_port() after another may return the same port twice (nothing listens on it between the
    calls), which once gave the API server and the scheduler one port."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in taken:
                s.close()  # stays out of `held`, so the kernel may offer it again: choose again
                continue
            held.append(s)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def port_is_free(port: int) -> bool:
    """Whether a loopback TCP port can be listened on now (SO_REUSEADDR, as Go's listeners set it, so connections of
    a killed server still in TIME_WAIT do not count as taking it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except FileNotFoundError:
        return ""


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def marked_pids(cluster_id: str) -> Iterator[int]:
    """PIDs of live processes whose environment carries this cluster's marker."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if environ_of(pid).get(MARKER_ENV) == cluster_id and is_alive(pid):
            yield pid


def terminate(pids: Sequence[int], grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Supervisor:
    """Starts detached processes with logs and PID files under `state_dir`."""

    def __init__(self, state_dir: Path, cluster_id: str) -> None:
        self.state_dir = state_dir
        self.cluster_id = cluster_id
        self.log_dir = state_dir / "logs"
        self.pid_dir = state_dir / "pids"
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}  # how each was started (for a restart)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid_of(self, name: str) -> int | None:
        try:
            pid = int((self.pid_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_alive(pid) and environ_of(pid).get(MARKER_ENV) == self.cluster_id else None

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {}), MARKER_ENV: self.cluster_id}
        log = self.log_path(name).open("ab")
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        # A new session detaches it from our terminal and process group: it outlives `dev-cluster up`.
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            cwd=self.state_dir,
        )
        log.close()
        (self.pid_dir / f"{name}.pid").write_text(str(proc.pid))
        self.started[name] = proc
        self.commands[name] = (list(argv), dict(env or {}))
        return proc

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Starts a stopped component again exactly as it was started here (same flags, same ports)."""
        if name not in self.commands:
            raise KeyError(f"{name} was not started by this supervisor")
        argv, env = self.commands[name]
        return self.start(name, argv, env)

    def exited(self, name: str) -> bool:
        """Whether a component has stopped. For processes started here the Popen handle decides: between fork and
        exec /proc/<pid>/environ still shows our own environment, without the marker, so pid_of() would wrongly
        call a process that is just starting someone else's."""
        proc = self.started.get(name)
        if proc is not None:
            return proc.poll() is not None
        return self.pid_of(name) is None

    def stop(self, name: str, grace: float = 10.0) -> None:
        pid = self.pid_of(name)
        if pid is not None:
            terminate([pid], grace)
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def stop_all_marked(self, grace: float = 5.0) -> list[int]:
        """Stops every process carrying our marker (the safety net behind the per-component stops)."""
        pids = list(marked_pids(self.cluster_id))
        if pids:
            terminate(pids, grace)
        return pids
