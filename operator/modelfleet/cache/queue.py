"""The reconcile queue: a key is processed by one worker at a time, a burst of adds for one key costs one pass, and
every key carries its next due time (an event: a moment from now; a retry: back-off; the resync: minutes).

The semantics are client-go's workqueue (dedup, dirty-while-processing, per-key exponential back-off) on asyncio:
all methods are called on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        base_backoff: float = 0.5,
        max_backoff: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self._clock = clock
        self._due: dict[K, float] = {}  # keys waiting, by the time they are due
        self._heap: list[tuple[float, int, K]] = []  # (due, seq, key); stale entries are skipped
        self._seq = itertools.count()
        self._processing: set[K] = set()
        self._again: dict[K, float] = {}  # added while processing: due when the pass ends
        self._failures: dict[K, int] = {}
        self._wake = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._due)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: K, after: float = 0.0) -> None:
        """Due in `after` seconds, or sooner if it already is."""
        if self._closed:
            return
        due = self._clock() + max(0.0, after)
        if key in self._processing:
            self._again[key] = min(due, self._again.get(key, due))
            return
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._wake.set()

    def retry(self, key: K, at_least: float = 0.0, cap: float | None = None) -> float:
        """Again after the key's back-off (doubling with each failure in a row, up to `cap` or the queue's maximum),
        or `at_least` if longer."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        ceiling = self.max_backoff if cap is None else min(cap, self.max_backoff)
        delay = max(at_least, min(ceiling, self.base_backoff * 2 ** min(failures, 30)))
        self.add(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the back-off again."""
        self._failures.pop(key, None)

    def discard(self, key: K) -> None:
        """The object is gone: nothing is due for it any more."""
        self._due.pop(key, None)
        self._again.pop(key, None)
        self._failures.pop(key, None)

    async def get(self) -> K:
        """The next due key that no other worker holds; waits until there is one."""
        while True:
            if self._closed:
                raise asyncio.CancelledError
            now = self._clock()
            while self._heap:
                due, _, key = self._heap[0]
                if self._due.get(key) != due:
                    heapq.heappop(self._heap)  # superseded by an earlier add, or discarded
                    continue
                if due > now:
                    break
                heapq.heappop(self._heap)
                del self._due[key]
                self._processing.add(key)
                return key
            timeout = self._heap[0][0] - now if self._heap else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def done(self, key: K) -> None:
        """The pass over `key` ended; an add that came in meanwhile is now due."""
        self._processing.discard(key)
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, max(0.0, again - self._clock()))

    def close(self) -> None:
        self._closed = True
        self._wake.set()
