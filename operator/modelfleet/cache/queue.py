"""The reconcile queue: a key is processed by one worker at a time, a burst of adds for one key costs one pass, and
every key carries its next due time (an event: a moment from now; a retry: back-off; the resync: minutes).

The semantics are client-go's workqueue (dedup, dirty-while-processing, per-key exponential back-off) on asyncio:
all methods are called on the event loop."""

from __future__ import annotations

import asyncio
import collections
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
        # Workers waiting for a key, woken one at a time (a shared event woke every worker for every due key: eight
        # wake-ups and eight timers per resync of an idle fleet), and one timer for the earliest due key.
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
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
        if self._waiters:
            self._wake_one() if due <= self._clock() else self._arm()

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

    def _head(self) -> float | None:
        """The earliest due time (stale heap entries dropped)."""
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) == due:
                return due
            heapq.heappop(self._heap)  # superseded by an earlier add, or discarded
        return None

    def _take(self) -> K | None:
        due = self._head()
        if due is None or due > self._clock():
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._due[key]
        self._processing.add(key)
        return key

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _arm(self) -> None:
        """One timer, for the earliest due key, while a worker waits."""
        due = self._head()
        if due == self._timer_due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_due = None, due
        if due is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, due - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_due = None
        self._wake_one()

    async def get(self) -> K:
        """The next due key that no other worker holds; waits until there is one."""
        while True:
            if self._closed:
                raise asyncio.CancelledError
            key = self._take()
            if key is not None:
                if self._waiters and (head := self._head()) is not None:  # the next key: another worker's
                    self._wake_one() if head <= self._clock() else self._arm()
                return key
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._arm()
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # it was woken for a key it will not take: the next worker takes it
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def done(self, key: K) -> None:
        """The pass over `key` ended; an add that came in meanwhile is now due."""
        self._processing.discard(key)
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, max(0.0, again - self._clock()))

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        while self._waiters:
            self._wake_one()
