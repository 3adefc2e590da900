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


def _fail(spec: dict, message: str) -> None:
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
    for m in spec["mounts"]:
        src, dst = m["source"], m["target"]
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst) or "/", exist_ok=True)
            if not os.path.exists(dst):
                open(dst, "a").close()
        _mount(libc, src, dst, MS_BIND | MS_REC)
        if m.get("read_only"):
            _mount(libc, None, dst, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        if spec["mounts"]:
            enter_mounts(spec)
        os.chdir(spec["cwd"])
    except OSError as e:
        _fail(spec, f"failed to create container: {e}")
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        _fail(spec, f'failed to start container: exec: "{argv[0]}": {e.strerror}')


if __name__ == "__main__":
    main()
