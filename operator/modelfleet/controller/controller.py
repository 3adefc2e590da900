"""The reconcile core: watch events fill the cache and queue the keys whose decisions they touch; a bounded pool of
workers runs one pass per key (reading the cache, never polling the API server); time-driven work is a due time on
the key (an interval, a deadline), and a slow jittered resync is the only periodic pass.

Kopf delivers the watch events (handlers/watch.py); this module owns everything after them. Nothing here blocks the
event loop: passes run on worker threads, the API client's rate limiter waits there too."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelfleet.cache.queue import WorkQueue
from modelfleet.cache.store import Store, resource_version
from modelfleet.cache.view import CachedCluster, Expectations
from modelfleet.clients.kube import Kube, describe, retrying
from modelfleet.clients.ports import PrometheusFor
from modelfleet.config import OperatorConfig
from modelfleet.controller.activity import ActivityBoard, ActivityScanner
from modelfleet.controller.boundary import Kind, Pass, PassDeps, PassResult
from modelfleet.controller.routing import OURS, queued_by
from modelfleet.metrics import CACHE_OBJECTS, CACHE_PRUNED, WORKQUEUE_DEPTH, WORKQUEUE_RETRIES
from modelfleet.reconcilers.drift_batch import GroupReadings
from modelfleet.vocabulary import (
    LABEL_MODEL,
    LEGACY_FINALIZER,
    MANAGED_BY,
    PLURALS,
    Key,
    controller_of,
    has_finished,
    invalid_for_this_generation,
)

log = logging.getLogger(__name__)
CHILD_PLURALS = {"Job": "jobs", "Pod": "pods", "Deployment": "deployments"}
CHILD_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
SYNC_TIMEOUT_SECONDS = 60.0
# A kind whose cached count has stopped short of its listed count this long is counted again: an object deleted
# between the count and Kopf's list never arrives (the old pods of a rollout ending while the operator starts), and
# waiting SYNC_TIMEOUT_SECONDS for it held the first pass of a restart at 1,000 models for 60 s (bench/fleet).
RECOUNT_SECONDS = 3.0
CONFLICT_PAUSE_SECONDS = 0.5
# The kinds older versions put Kopf's finalizer on.
LEGACY_FINALIZED = ("MLModel", "TrainingJob", "DriftPolicy")
START_RETRY_SECONDS = 120.0  # start-up lists ride out a busy or failing API server this long, then the start fails
Members = dict[tuple[str, str | None], tuple[set[tuple[str, str]], int | None]]


def needs_pass(key: Key, raw: Mapping[str, Any]) -> bool:
    """False for objects no pass can change: being deleted, judged invalid for this spec, a finished run."""
    if (raw.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if invalid_for_this_generation(raw):
        return False
    if key.kind == "TrainingJob" and has_finished(raw):
        status = raw.get("status") or {}
        return bool(status.get("observedGeneration") != (raw.get("metadata") or {}).get("generation"))
    return True


def resyncs(key: Key, raw: Mapping[str, Any]) -> bool:
    """Whether the object gets the slow resync: not a finished run (a record: nothing about it changes), not a
    retired version's record (it changes only when its model's facts do, and those are routed)."""
    if key.kind == "TrainingJob" and has_finished(raw):
        return False
    return not (key.kind == "ModelVersion" and (raw.get("status") or {}).get("state") == "Retired")


class Controller:
    def __init__(
        self,
        *,
        config: OperatorConfig,
        kube: Kube,
        kinds: Mapping[str, Kind],
        prometheus_for: PrometheusFor,
        clock: Callable[[], Any],
        forget: Mapping[str, Callable[[Key], None]] | None = None,
    ) -> None:
        self.config, self.kube, self.kinds = config, kube, kinds
        self.store = Store()
        self.expectations = Expectations(self.store)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.view = CachedCluster(self.store, kube, self.expectations)
        self.activity = ActivityBoard()
        self.passes = Pass(
            kinds,
            PassDeps(self.view, config, self.view.reading_outside(prometheus_for), self.activity, GroupReadings()),
            kube,
            self.expectations,
            clock,
            resyncs,
        )
        self.scanner = ActivityScanner(self.store, self.activity, config, prometheus_for, self.queue.add)
        self.forget = dict(forget or {})
        self.synced = asyncio.Event()
        self._expected: dict[str, int] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="reconcile")
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Future[PassResult]] = set()
        self.first_pass_at: float | None = None

    # -- the watch side (event loop; must stay cheap)
    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if event_type == "DELETED":
            change = self.store.delete(kind, namespace, name)
        else:
            change = self.store.upsert(kind, body)
            if change.old is change.new:  # an event older than what the cache holds
                return
        CACHE_OBJECTS.labels(kind).set(self.store.count(kind))
        current = change.new if change.new is not None else change.old
        if current is None:
            return
        if event_type == "DELETED" and kind in OURS:
            self.queue.discard(change.key)
            self.passes.memos.forget(change.key)
            if kind == "MLModel":  # its activity readings go with it (a fleet with churn must not accumulate them)
                self.activity.forget(change.key.namespace, change.key.name)
            forget = self.forget.get(kind)
            if forget is not None:
                forget(change.key)
        for key in queued_by(
            kind,
            current,
            added_or_deleted=change.old is None or change.new is None,
            policies_of=self._policies_of,
            job_owner=self._job_owner,
            records_of=self._records_of,
            old=change.old,
        ):
            if key != change.key or event_type != "DELETED":
                self.queue.add(key, self.config.debounce_seconds)
        WORKQUEUE_DEPTH.set(len(self.queue))
        self._check_synced()

    def _policies_of(self, namespace: str, model: str) -> list[Key]:
        found = self.store.select("DriftPolicy", namespace, {"spec.modelRef.name": model})
        return [Key("DriftPolicy", namespace, str(p["metadata"]["name"])) for p in found]

    def _records_of(self, namespace: str, model: str, versions: set[int] | None) -> list[Key]:
        found = self.store.select("ModelVersion", namespace, {f"label:{LABEL_MODEL}": model})
        return [
            Key("ModelVersion", namespace, str(r["metadata"]["name"]))
            for r in found
            if versions is None or (r.get("spec") or {}).get("version") in versions
        ]

    def _job_owner(self, namespace: str, job: str) -> Key | None:
        cached = self.store.get("Job", namespace, job)
        owner = controller_of(cached) if cached else None
        if owner and owner.get("kind") == "TrainingJob":
            return Key("TrainingJob", namespace, str(owner.get("name", "")))
        return None

    def _check_synced(self) -> None:
        if self.synced.is_set() or self._expected is None:
            return
        if all(self.store.count(kind) >= n for kind, n in self._expected.items()):
            log.info("cache synced: %s", {k: self.store.count(k) for k in self._expected})
            self.synced.set()

    # -- start and stop
    def _scopes(self) -> list[str | None]:
        return list(self.config.namespaces) or [None]

    def _watched(self, kinds: Collection[str] | None) -> list[tuple[str, str, str | None, str | None]]:
        """(kind, plural, watched namespace or None, label selector) of every watched kind, or of `kinds`."""
        return [
            (kind, plural, namespace, CHILD_SELECTOR if kind in CHILD_PLURALS else None)
            for namespace in self._scopes()
            for kind, plural in {**PLURALS, **CHILD_PLURALS}.items()
            if kinds is None or kind in kinds
        ]

    def list_members(self, kinds: Collection[str] | None = None) -> Members:
        """What exists on the API server, per (kind, watched namespace or None): names and the list's version, of
        every watched kind or of `kinds`. Metadata only, in pages: kilobytes an object (its managedFields)."""
        return {
            (kind, namespace): self.kube.list_metadata(plural, namespace, selector=selector)
            for kind, plural, namespace, selector in self._watched(kinds)
        }

    def count_members(self, kinds: Collection[str] | None = None) -> dict[tuple[str, str | None], int]:
        """How many objects exist on the API server, per (kind, watched namespace or None), counted without reading
        them (Kube.count: tens of bytes an object)."""
        return {
            (kind, namespace): self.kube.count(plural, namespace, selector=selector)
            for kind, plural, namespace, selector in self._watched(kinds)
        }

    def count_existing(self, kinds: Collection[str] | None = None) -> dict[str, int]:
        """How many objects each watch will list (what the cache must hold before the first pass)."""
        counts: dict[str, int] = dict.fromkeys(kinds or (), 0)
        for (kind, _), n in self.count_members(kinds).items():
            counts[kind] = counts.get(kind, 0) + n
        return counts

    def members_to_check(self) -> Members:
        """The members of the kinds whose count on the API server differs from the cache's (none, in a fleet whose
        watches missed nothing). Counted first and compared after, so an object created meanwhile can only make
        the counts differ (then its kind is listed, which is harmless): equal counts hide a missed deletion only
        where a creation the cache has not seen yet falls on the same kind at the same moment, and the next period
        checks again. Counting every kind of a 1,000-model fleet decodes about 1 MB; listing their metadata, what
        every period did before, about 25 MB (a quarter of the operator's idle CPU)."""
        counts = self.count_members()
        differ = {kind for (kind, namespace), n in counts.items() if n != self.store.count(kind, namespace)}
        return self.list_members(differ) if differ else {}

    def forget_missing(self, members: Members) -> int:
        """Client-go's relist semantics for what Kopf does not tell us: an object the cache holds but a list made
        after it no longer shows was deleted while a watch was down (a DELETED event lost to a stalled stream or
        a 410), and leaves the cache as if its event had come. Objects newer than the list are kept."""
        gone = 0
        for (kind, scope), (names, version) in members.items():
            if version is None:  # resourceVersions that are not numbers cannot be ordered: nothing is judged
                continue
            for key in self.store.keys(kind):
                if (scope is not None and key.namespace != scope) or (key.namespace, key.name) in names:
                    continue
                cached = self.store.get(*key)
                have = resource_version(cached)
                if cached is None or have is None or have > version:
                    continue
                self.observe(kind, "DELETED", cached)
                CACHE_PRUNED.labels(kind).inc()
                gone += 1
        if gone:
            log.warning("%d cached object(s) were deleted while a watch missed it; forgotten now", gone)
        return gone

    async def _membership(self) -> None:
        """Every resync period (jittered): count what exists, and where a count differs from the cache's, list it and
        forget what the watches missed deleting."""
        await self.synced.wait()
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.resync_seconds * random.uniform(0.9, 1.1))
            try:
                members = await loop.run_in_executor(self._executor, self.members_to_check)
            except Exception as e:  # an API outage: the next period tries again
                log.warning("membership check skipped: %s", e)
                continue
            self.forget_missing(members)

    def remove_legacy_finalizers(self) -> int:
        """Older versions put a Kopf finalizer on every MLModel and TrainingJob: one patch per object that still has
        it removes it. Found in the cache once it is synced (the finalizers are a fact of our kinds), so a start
        lists nothing more for it: listing our kinds whole for it was about 17 MB of JSON at 1,000 models."""
        removed = sum(
            self._remove_legacy_finalizer(kind, namespace, name)
            for kind in LEGACY_FINALIZED
            for (namespace, name), finalizers in self.store.facts(kind, "metadata.finalizers").items()
            if LEGACY_FINALIZER in (finalizers or ())
        )
        if removed:
            log.info("removed the finalizer %s left by an older version from %d object(s)", LEGACY_FINALIZER, removed)
        return removed

    def _remove_legacy_finalizer(self, kind: str, namespace: str, name: str) -> bool:
        """One patch from the cache's version of the object; refused because the object changed meanwhile (409), it
        is tried again from the newer version the watch brings."""
        for attempt in range(3):
            finalizers = list(self.store.fact(kind, namespace, name, "metadata.finalizers") or ())
            version = self.store.version(kind, namespace, name)
            if LEGACY_FINALIZER not in finalizers or version is None:
                return False
            metadata = {"finalizers": [f for f in finalizers if f != LEGACY_FINALIZER], "resourceVersion": version}
            patch = functools.partial(self.kube.patch_metadata, PLURALS[kind], namespace, name, metadata)
            try:
                retrying(patch, what=f"removing the legacy finalizer of {namespace}/{name}", budget=START_RETRY_SECONDS)
                return True
            except ApiException as e:
                if e.status == 409 and attempt < 2:
                    time.sleep(CONFLICT_PAUSE_SECONDS)
                    continue
                if e.status != 404:
                    log.warning("legacy finalizer of %s %s/%s not removed: %s", kind, namespace, name, describe(e))
                return False
        return False

    async def start(self) -> None:
        """Counts what the watches will list, removes legacy finalizers, starts the workers and the scanner."""
        loop = asyncio.get_running_loop()

        def start_up() -> dict[str, int]:
            return retrying(self.count_existing, what="counting existing objects", budget=START_RETRY_SECONDS)

        self._expected = await loop.run_in_executor(self._executor, start_up)
        self._check_synced()
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"reconcile-worker-{i}") for i in range(self.config.workers)
        ]
        self._tasks.append(asyncio.create_task(self._sync_deadline(), name="cache-sync-deadline"))
        self._tasks.append(asyncio.create_task(self._membership(), name="cache-membership"))
        self._tasks.append(asyncio.create_task(self.scanner.run(self.synced, self._executor), name="activity-scanner"))
        self._tasks.append(asyncio.create_task(self._legacy_finalizers(), name="legacy-finalizers"))

    async def _legacy_finalizers(self) -> None:
        await self.synced.wait()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.remove_legacy_finalizers)
        except Exception as e:  # an API outage: the next start removes them
            log.warning("removing legacy finalizers failed: %s", describe(e))

    async def _sync_deadline(self) -> None:
        """Sets `synced` once the cache holds what was counted, counting again a kind whose cached count stopped
        short of it (its missing objects were deleted meanwhile), or after SYNC_TIMEOUT_SECONDS whatever it holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYNC_TIMEOUT_SECONDS
        last: dict[str, int] = {}
        while not self.synced.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.synced.wait(), min(RECOUNT_SECONDS, max(0.0, deadline - loop.time())))
                return
            expected = self._expected or {}
            have = {kind: self.store.count(kind) for kind in expected}
            if loop.time() >= deadline:
                counts = {k: (have[k], n) for k, n in expected.items()}
                log.warning(
                    "the cache did not reach the listed counts in %.0fs (%s); starting anyway",
                    SYNC_TIMEOUT_SECONDS,
                    counts,
                )
                self.synced.set()
                return
            stalled = [k for k, n in expected.items() if have[k] < n and last.get(k) == have[k]]
            last = have
            if stalled:
                try:
                    recounted = await loop.run_in_executor(self._executor, self.count_existing, stalled)
                except Exception as e:  # the deadline still starts the passes
                    log.warning("counting %s again failed: %s", ", ".join(stalled), describe(e))
                    continue
                log.info("counted again what the cache is short of: %s", {k: (have[k], recounted[k]) for k in stalled})
                self._expected = {**expected, **recounted}
                self._check_synced()

    async def stop(self, grace: float) -> None:
        """Stops taking keys; passes in flight get `grace` seconds to finish, then are abandoned (each pass is
        idempotent: the next start does it again)."""
        self.queue.close()
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=grace)
            if pending:
                log.warning("abandoning %d pass(es) in flight after %.0fs", len(pending), grace)
        # Passes still running (waiting for the rate limiter, or abandoned) make no further request: their worker
        # threads end at once instead of holding the process open at exit.
        self.kube.stop_requests()
        for task in self._tasks:
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the workers
    async def _worker(self) -> None:
        await self.synced.wait()
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            try:
                memo = self.passes.quiet(key)
                if memo is not None:
                    self.queue.forget(key)
                    if memo.resync:
                        self._resync(key)
                    continue
                raw = self.store.get(*key)
                if raw is None:
                    self.queue.discard(key)
                    continue
                if not needs_pass(key, raw):
                    continue
                if self.first_pass_at is None:
                    self.first_pass_at = time.monotonic()
                running = loop.run_in_executor(self._executor, self.passes.run, key, raw)
                self._running.add(running)
                try:
                    result = await running
                finally:
                    self._running.discard(running)
                self._schedule(key, raw, result)
            finally:
                self.queue.done(key)
                WORKQUEUE_DEPTH.set(len(self.queue))

    def _schedule(self, key: Key, raw: Mapping[str, Any], result: PassResult) -> None:
        if result.result == "abandoned":
            return
        if result.result == "gone":
            self.queue.discard(key)
            return
        if result.backoff:
            self.queue.retry(key, at_least=result.again or 0.0, cap=result.cap)
            WORKQUEUE_RETRIES.labels(key.kind, result.cause).inc()
            return
        if result.again is not None:
            self.queue.add(key, result.again)
            if result.cause:
                WORKQUEUE_RETRIES.labels(key.kind, result.cause).inc()
        if result.result in ("success", "unchanged", "invalid"):
            self.queue.forget(key)
        if resyncs(key, raw):
            self._resync(key)

    def _resync(self, key: Key) -> None:
        self.queue.add(key, self.config.resync_seconds * random.uniform(0.9, 1.1))
