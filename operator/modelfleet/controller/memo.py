"""Passes not run again: a pass whose object and every input it read are as the last pass found them, where that pass
wrote nothing and asked for no pass at a time of its own, would decide the same (reconcilers are functions of their
inputs and `now`, and a decision that waits on time says so with `requeue_after`). That keeps the slow resync of an
idle fleet at a few cache lookups per object, and it still catches what a lost or misrouted event would have
missed: any input that changed runs the pass."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.cache.store import Store, version_text
from modelfleet.cache.view import Inputs, Reads
from modelfleet.vocabulary import Key


@dataclass(frozen=True, slots=True)
class Memo:
    """A pass that changed nothing: the object's resourceVersion it read, what else it read, and whether the object
    gets the slow resync (judged from that version, so it holds as long as the memo does)."""

    version: str
    reads: Inputs
    resync: bool = True


def always(key: Key, raw: Mapping[str, Any]) -> bool:
    return True


class PassMemos:
    """key -> the memo of its last pass, where that pass changed nothing (thread-safe: workers read and write it)."""

    def __init__(self, store: Store, resyncs: Callable[[Key, Mapping[str, Any]], bool] = always) -> None:
        self.store, self.resyncs = store, resyncs
        self._lock = threading.Lock()
        self._memos: dict[Key, Memo] = {}

    def remember(self, key: Key, raw: Mapping[str, Any], reads: Reads) -> None:
        memo = Memo(sys.intern(version_text(raw)), reads.frozen(), self.resyncs(key, raw))
        with self._lock:
            self._memos[key] = memo

    def forget(self, key: Key) -> None:
        with self._lock:
            self._memos.pop(key, None)

    def unchanged(self, key: Key, raw: Mapping[str, Any]) -> bool:
        """True when `raw` and everything its last pass read are as that pass found them."""
        with self._lock:
            memo = self._memos.get(key)
        return memo is not None and memo.version == version_text(raw) and memo.reads.still_hold(self.store)

    def holding(self, key: Key) -> Memo | None:
        """The memo of `key` where the kept object still has its version and everything its pass read holds: what
        `unchanged` answers, without unpacking the object."""
        with self._lock:
            memo = self._memos.get(key)
        if memo is None or self.store.version(*key) != memo.version or not memo.reads.still_hold(self.store):
            return None
        return memo

    def __len__(self) -> int:
        with self._lock:
            return len(self._memos)
