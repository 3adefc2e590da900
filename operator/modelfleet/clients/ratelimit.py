"""Client-side rate limiting, as client-go's token bucket (`--kube-api-qps`, `--kube-api-burst`): up to `burst`
requests at once, then `qps` per second. Called on worker threads; a wait blocks that thread only.

A RequestGate stops every further request at once when the operator shuts down: passes abandoned after the stop
grace must not keep the process alive, each waiting its turn in the bucket (measured: 7 s past the grace at 2 qps)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ClientStopped(Exception):
    """The operator is stopping: no more requests from this client (the pass is abandoned, and runs again after the
    restart)."""


class TokenBucket:
    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be positive and burst at least 1")
        self.qps, self.burst = qps, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Takes a token; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class RequestGate:
    """In front of every request of one API client: the rate limit (if any), and a stop that wakes the waiters."""

    def __init__(self, limiter: TokenBucket | None) -> None:
        self.limiter = limiter
        self._stopped = threading.Event()

    def enter(self) -> None:
        """Waits for the request's turn; raises ClientStopped once the gate is closed (also while waiting)."""
        if self._stopped.is_set():
            raise ClientStopped("the operator is stopping")
        wait = self.limiter.reserve() if self.limiter is not None else 0.0
        if wait > 0 and self._stopped.wait(wait):
            raise ClientStopped("the operator is stopping")

    def close(self) -> None:
        self._stopped.set()
