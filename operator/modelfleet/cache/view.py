"""The cluster as a reconcile pass sees it: reads from the watch-fed store, writes to the API server.

A write records an expectation (the resourceVersion the object now has, or its absence), and a read that finds the
store behind an expectation raises `CacheBehind`: the pass is run again when the watch catches up (the event that
satisfies the expectation queues it). That is what keeps a pass from acting twice on its own change, as
controller-runtime's ReplicaSet expectations do. An expectation older than `EXPECTATION_SECONDS` is dropped with a
log line (a lost watch event must not stop the object for good)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from modelfleet.cache.store import Store, version_number, version_text
from modelfleet.clients.kube import Kube
from modelfleet.errors import DependencyNotReady
from modelfleet.vocabulary import KUEUE_JOB_UID, LABEL_JOB_NAME, LABEL_MODEL, LABEL_MODEL_UID, PLURALS, Key

EXPECTATION_SECONDS = 30.0
ARTIFACT_SECONDS = 30.0
GONE = "gone"
log = logging.getLogger(__name__)
KIND_OF_PLURAL = {plural: kind for kind, plural in PLURALS.items()}


class CacheBehind(DependencyNotReady):
    """The cache has not yet seen a write this operator made; the pass waits for the watch."""

    reason = "CacheBehind"

    def __init__(self, key: Key) -> None:
        # The watch event that shows the write queues the pass again; the delay is only a fallback.
        super().__init__(f"waiting for the watch to show {key} as written", delay=5.0)


class Expectations:
    """Writes not yet seen in the store: key -> (resourceVersion or GONE, deadline)."""

    def __init__(self, store: Store, clock: Any = time.monotonic) -> None:
        self.store, self._clock = store, clock
        self._lock = threading.Lock()
        self._pending: dict[Key, tuple[str, float]] = {}
        # (kind, namespace, model) -> its pending keys: a list by model checks only its own writes (scanning every
        # pending write was a tenth of the operator's CPU while a fleet of 5,000 was being built)
        self._by_model: dict[tuple[str, str, str], set[Key]] = {}
        self._groups: dict[Key, str] = {}  # key -> the model it belongs to

    def expect(self, key: Key, version: str | None, model: str | None = None) -> None:
        if version is None:
            return
        with self._lock:
            self._pending[key] = (version, self._clock() + EXPECTATION_SECONDS)
            if model:
                self._groups[key] = model
                self._by_model.setdefault((key.kind, key.namespace, model), set()).add(key)

    def _drop(self, key: Key) -> None:
        """Forgets `key` (the lock is held)."""
        self._pending.pop(key, None)
        model = self._groups.pop(key, None)
        if model is not None:
            group = self._by_model.get((key.kind, key.namespace, model))
            if group is not None:
                group.discard(key)
                if not group:
                    del self._by_model[(key.kind, key.namespace, model)]

    def pending(self, key: Key) -> bool:
        """Whether a write of this operator to `key` has not been seen in the store yet."""
        with self._lock:
            return key in self._pending

    def expect_gone(self, key: Key) -> None:
        with self._lock:
            self._pending[key] = (GONE, self._clock() + EXPECTATION_SECONDS)

    def _met(self, key: Key, want: str, body: Mapping[str, Any] | None) -> bool:
        version = (body.get("metadata") or {}).get("resourceVersion") if body is not None else self.store.version(*key)
        if want == GONE:
            return version is None
        have = version_number(version)
        try:
            return have is not None and have >= int(want)
        except ValueError:  # not a number: only "the object is there" can be told
            return version is not None

    def check(self, key: Key, body: Mapping[str, Any] | None = None) -> None:
        """Raises CacheBehind while the store (or `body`, read from it) is behind this operator's last write of
        `key`."""
        with self._lock:
            pending = self._pending.get(key)
        if pending is None:
            return
        want, deadline = pending
        if self._met(key, want, body):
            with self._lock:
                if self._pending.get(key) == pending:
                    self._drop(key)
            return
        if self._clock() > deadline:
            log.warning("the watch never showed %s at %s; going on without it", key, want)
            with self._lock:
                self._drop(key)
            return
        raise CacheBehind(key)

    def check_model(self, kind: str, namespace: str, model: str) -> None:
        """Raises CacheBehind while a write of that kind belonging to `model` is not yet seen (before a list of the
        model's objects: the writes of other models in the namespace never hold it up)."""
        with self._lock:
            keys = list(self._by_model.get((kind, namespace, model), ()))
        for key in keys:
            self.check(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


@dataclass
class Reads:
    """What one pass read and did through the cache, so that a later pass can tell it would read the same: each
    object's resourceVersion (None: absent), each list's members with theirs, and values read beside the cache
    (the model's activity reading) with how to read them again. `outside`: it asked the API server or an object
    store (not judged: such a pass always runs); `wrote`: it created, applied or deleted something."""

    objects: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    lists: dict[tuple[str, str, frozenset[tuple[str, str]]], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    members: dict[tuple[str, str, frozenset[tuple[str, str]]], tuple[str, ...]] = field(default_factory=dict)
    beside: list[tuple[Callable[[], Any], Any]] = field(default_factory=list)
    outside: bool = False
    wrote: bool = False

    def frozen(self) -> Inputs:
        """The same reads as one compact, immutable value, for a memo kept until the object's next change."""
        return Inputs(
            tuple((_shared(k), _shared(ns), _shared(name), _shared(v)) for (k, ns, name), v in self.objects.items()),
            tuple(
                (_shared(k), _shared(ns), _match(m), tuple((_shared(n), _shared(v)) for n, v in seen))
                for (k, ns, m), seen in self.lists.items()
            ),
            tuple(
                (_shared(k), _shared(ns), _match(m), tuple(_shared(n) for n in seen))
                for (k, ns, m), seen in self.members.items()
            ),
            tuple(self.beside),
        )


def _shared(text: Any) -> Any:
    """One copy of a kind, namespace, name or resourceVersion however many memos hold it, and the store's copy (each
    JSON decode makes its own)."""
    return sys.intern(text) if isinstance(text, str) else text


def _match(match: frozenset[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((_shared(p), _shared(v)) for p, v in match))


@dataclass(frozen=True, slots=True)
class Inputs:
    """Reads as a memo keeps them: tuples instead of a pass's dicts (a fleet keeps one per idle object; as dicts they
    were the largest part of the operator's per-model memory after the cache itself), empty ones all the same ()."""

    objects: tuple[tuple[str, str, str, str | None], ...]
    lists: tuple[tuple[str, str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...]
    members: tuple[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]], ...]
    beside: tuple[tuple[Callable[[], Any], Any], ...]

    def still_hold(self, store: Store) -> bool:
        """True when every object and list read has the same versions in `store`, and every value read beside the
        cache is equal: a pass now would decide from the same inputs."""
        return (
            all(store.version(k, ns, name) == version for k, ns, name, version in self.objects)
            and all(store.versions(k, ns, dict(match)) == seen for k, ns, match, seen in self.lists)
            and all(store.names(k, ns, dict(match)) == seen for k, ns, match, seen in self.members)
            and all(read() == seen for read, seen in self.beside)
        )


def _selector(text: str | None) -> dict[str, str]:
    """`a=b,c=d` -> {"label:a": "b", ...}: equality selectors are all the reconcilers use."""
    match: dict[str, str] = {}
    for part in (text or "").split(","):
        if part.strip():
            k, _, v = part.partition("=")
            match[f"label:{k.strip()}"] = v.strip()
    return match


class CachedCluster:
    """Satisfies clients.ports.Cluster: reads from the store (copies), writes through `kube`."""

    def __init__(self, store: Store, kube: Kube, expectations: Expectations) -> None:
        self.store, self.kube, self.expectations = store, kube, expectations
        self._lock = threading.Lock()
        self._artifacts: dict[tuple[str, str], tuple[float, bool | None]] = {}
        self._recording = threading.local()  # each worker thread records its own pass

    # -- what a pass read
    @contextmanager
    def recording(self) -> Iterator[Reads]:
        """Records the reads and writes made on this thread until the block ends."""
        self._recording.reads = reads = Reads()
        try:
            yield reads
        finally:
            self._recording.reads = None

    def _reads(self) -> Reads | None:
        return getattr(self._recording, "reads", None)

    def read_beside(self, read: Callable[[], Any]) -> Any:
        """`read()`, a value kept beside the cache, recorded with the pass's reads."""
        value = read()
        if (reads := self._reads()) is not None:
            reads.beside.append((read, value))
        return value

    def reading_outside(self, prometheus_for: Callable[[str], Any]) -> Callable[[str], Any]:
        """`prometheus_for` whose use marks the pass as having read outside the cache."""

        def client(url: str) -> Any:
            self._outside()
            return prometheus_for(url)

        return client

    def _outside(self) -> None:
        if (reads := self._reads()) is not None:
            reads.outside = True

    def _wrote(self) -> None:
        if (reads := self._reads()) is not None:
            reads.wrote = True

    def _select(self, kind: str, namespace: str, match: Mapping[str, str]) -> list[dict[str, Any]]:
        found = self.store.select(kind, namespace, match)
        if (reads := self._reads()) is not None:
            versions = tuple((str(o["metadata"]["name"]), version_text(o)) for o in found)
            reads.lists[(kind, namespace, frozenset(match.items()))] = versions
        return found

    # -- reads
    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.expectations.check(Key(kind, namespace, name))
        found = self.store.get(kind, namespace, name)
        if (reads := self._reads()) is not None:
            reads.objects[(kind, namespace, name)] = version_text(found) if found is not None else None
        return found

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("Job", namespace, name)

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("Deployment", namespace, name)

    def workload_of_job(self, namespace: str, job_uid: str) -> dict[str, Any] | None:
        """Kueue's Workload for a Job (None where Kueue is not installed, or has not made one yet)."""
        found = self._select("Workload", namespace, {f"label:{KUEUE_JOB_UID}": job_uid})
        return found[0] if found else None

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        return self._get(KIND_OF_PLURAL[plural], namespace, name)

    def recorded_versions(self, namespace: str, model: str, model_uid: str) -> set[int]:
        """The version numbers of the model's ModelVersion records. What is read of a record (its version, its
        model's uid) is written once, so the pass's memo keeps only which records there are: a record's status
        changing (the record's own pass) does not make the model's pass run again."""
        self.expectations.check_model("ModelVersion", namespace, model)
        match = {f"label:{LABEL_MODEL}": model, f"label:{LABEL_MODEL_UID}": model_uid}
        records = self.store.select("ModelVersion", namespace, match)
        if (reads := self._reads()) is not None:  # the names, in the order Store.names gives them (both sort)
            reads.members[("ModelVersion", namespace, frozenset(match.items()))] = tuple(
                str(r["metadata"]["name"]) for r in records
            )
        return {int(r["spec"]["version"]) for r in records}

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        match = _selector(selector)
        job = match.get(f"label:{LABEL_JOB_NAME}")
        if job:
            self.expectations.check(Key("Job", namespace, job))
        return self._select("Pod", namespace, match)

    def list_custom(
        self, namespace: str, plural: str, selector: str | None = None, *, fields: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        kind = KIND_OF_PLURAL[plural]
        match = {**_selector(selector), **dict(fields or {})}
        # A model's own list waits for the runs this operator created for it; a search by other fields (the cache
        # source by fingerprint) takes the cache as it is: a run it cannot see yet is simply not reused.
        model = match.get(f"label:{LABEL_MODEL}")
        if model:
            self.expectations.check_model(kind, namespace, model)
        return self._select(kind, namespace, match)

    # Claims and volumes are read only when a run is about to start (change-driven, rare): not worth a watch.
    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._outside()
        return self.kube.get_claim(namespace, name)

    def artifact_exists(self, namespace: str, uri: str) -> bool | None:
        """Asked of the API server (claim, volume) and remembered for ARTIFACT_SECONDS: a burst of cache hits of one
        artifact looks once."""
        self._outside()
        now = time.monotonic()
        with self._lock:
            known = self._artifacts.get((namespace, uri))
        if known is not None and now - known[0] < ARTIFACT_SECONDS:
            return known[1]
        found = self.kube.artifact_exists(namespace, uri)
        with self._lock:
            self._artifacts[(namespace, uri)] = (now, found)
        return found

    # -- writes
    def create_custom(self, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any] | None:
        self._wrote()
        created = self.kube.create_custom(namespace, plural, body)
        if created is not None:
            key = Key(KIND_OF_PLURAL[plural], namespace, str(created["metadata"]["name"]))
            model = (created["metadata"].get("labels") or {}).get(LABEL_MODEL)
            self.expectations.expect(key, created["metadata"].get("resourceVersion"), model)
        return created

    def create_claim(self, body: dict[str, Any]) -> bool:
        self._wrote()
        return self.kube.create_claim(body)

    def apply(self, obj: dict[str, Any]) -> str | None:
        self._wrote()
        version = self.kube.apply(obj)
        if obj["kind"] in ("Job", "Deployment"):
            meta = obj["metadata"]
            self.expectations.expect(Key(obj["kind"], meta["namespace"], meta["name"]), version)
        return version

    def delete_job(self, namespace: str, name: str) -> None:
        self._wrote()
        self.kube.delete_job(namespace, name)
        self.expectations.expect_gone(Key("Job", namespace, name))

    def delete_if_exists(self, kind: str, namespace: str, name: str) -> None:
        self._wrote()
        self.kube.delete_if_exists(kind, namespace, name)
