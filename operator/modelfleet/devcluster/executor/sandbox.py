"""Entry point of every container process: `python -m modelfleet.devcluster.executor.sandbox SPEC.json`.

It enters a private mount namespace, bind-mounts the container's volumes and termination-message file at exactly
the paths its spec names, then exec()s the container's command, so the PID the executor watches is the command's.
If the command cannot be started it writes the reason to the spec's `start_error` file and exits with 128, which the
executor reports as a StartError, as a kubelet does.

Mount points that do not exist on the host are created as empty directories or files (a bind mount needs a target);
the contents stay private to the process.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
START_ERROR_EXIT = 128


_error_fd: int | None = None  # opened before any mount can hide the file


def _fail(spec: dict, message: str) -> None:
    if _error_fd is not None:
        os.write(_error_fd, message.encode())
    else:
        Path(spec["start_error"]).write_text(message)
    os._exit(START_ERROR_EXIT)


def _mount(libc: ctypes.CDLL, src: str | None, dst: str, flags: int) -> None:
    if libc.mount(src.encode() if src else None, dst.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src or '(none)'} on {dst}: {os.strerror(err)}")


def enter_mounts(spec: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed: the executor needs root for volume mounts")
    _mount(libc, None, "/", MS_REC | MS_PRIVATE)  # our mounts must not leak back to the host
    # Open every source before mounting anything: a mount (an emptyDir on /tmp, say) may hide a later source.
    # Mounting from /proc/self/fd/N then reaches the opened file or directory whatever was mounted since.
    mounts = sorted(spec["mounts"], key=lambda m: m["target"].count("/"))  # parents before children
    opened = [(os.open(m["source"], os.O_PATH | os.O_CLOEXEC), os.path.isdir(m["source"]), m) for m in mounts]
    # Paths the process itself needs (the Python environment, the project's sources, the pod's directory) are
    # bound back when a mount covers them: a container image would have them in its own root filesystem.
    keep = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in spec.get("keep_visible", []) if os.path.exists(p)}
    for fd, is_dir, m in opened:
        dst = m["target"]
        if is_dir:
            if os.path.isfile(dst) and os.path.getsize(dst) == 0:
                os.unlink(dst)  # a stale empty placeholder from a file mount at this path
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst) or "/", exist_ok=True)
            if not os.path.exists(dst):
                open(dst, "a").close()
        _mount(libc, f"/proc/self/fd/{fd}", dst, MS_BIND | MS_REC)
        if m.get("read_only"):
            _mount(libc, None, dst, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
        os.close(fd)
        prefix = dst.rstrip("/") + "/"
        for path, keep_fd in keep.items():
            if path.startswith(prefix):
                os.makedirs(path, exist_ok=True)
                _mount(libc, f"/proc/self/fd/{keep_fd}", path, MS_BIND | MS_REC)


def main() -> None:
    global _error_fd
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        _error_fd = os.open(spec["start_error"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        cwd_fd = os.open(spec["cwd"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if spec["mounts"]:
            enter_mounts(spec)
        os.fchdir(cwd_fd)
        os.close(cwd_fd)
    except OSError as e:
        _fail(spec, f"failed to create container: {e}")
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        _fail(spec, f'failed to start container: exec: "{argv[0]}": {e.strerror}')


if __name__ == "__main__":
    main()
