"""Several server processes on one port: load once, fork N workers that accept on the same listening socket.

The model is loaded and verified once in the parent and shared copy-on-write with the workers (as gunicorn's
`--preload` does). Prometheus counters and histograms go through prometheus_client's multiprocess mode (one file per
worker, summed at scrape time by whichever worker answers /metrics), and each worker's drift window is written as
counts next to them and merged at scrape (counts on a fixed grid add up; see modelfleet.drift). The parent restarts a
worker that dies, forwards SIGTERM/SIGINT so that every worker drains its requests, and drops a dead worker's drift
window from the merge."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
FORWARDED = {signal.SIGTERM, signal.SIGINT}


def enable_multiprocess_metrics() -> Path:
    """Must run before any metric is created: switches prometheus_client to one value file per process."""
    directory = Path(tempfile.mkdtemp(prefix="modelfleet-server-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    return directory


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _forget(directory: Path, pid: int) -> None:
    from prometheus_client import multiprocess

    # Counters and histograms of a dead worker stay (they are totals: dropping them would look like a reset); its
    # live gauges and its drift window go.
    multiprocess.mark_process_dead(pid, str(directory))
    (directory / f"drift-{pid}.npz").unlink(missing_ok=True)


def serve_workers(
    workers: int, run_worker: Callable[[socket.socket], None], host: str, port: int, metrics: Path
) -> int:
    """Forks `workers` processes running `run_worker(sock)`; returns when all have exited after SIGTERM/SIGINT."""
    sock = listening_socket(host, port)
    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    def spawn(slot: int) -> None:
        # SIGTERM/SIGINT are held back while forking: a signal handled between fork() and the bookkeeping below would
        # miss the new worker, and the parent would wait for it forever.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
                run_worker(sock)
            except BaseException:
                log.exception("worker %d failed", slot)
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)  # a signal that came meanwhile is handled now

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        if stopping:
            break
        spawn(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        slot = children.pop(pid)
        _forget(metrics, pid)
        if not stopping:
            log.error("worker %d (pid %d) exited with status %d; starting a new one", slot, pid, status)
            time.sleep(0.5)  # no tight loop if the worker cannot start at all
            spawn(slot)
    sock.close()
    return 0
