"""One reconcile pass of one object, inside the error boundary: cached body -> typed object -> reconciler -> status
patch (only what changed, refused if the object changed meanwhile) -> Events -> counters, in that order, so that a
refused write neither posts nor counts anything twice.

A pass whose inputs are as its last quiet pass found them is not run again (controller/memo.py).

Errors are classified here and nowhere else: InvalidSpec is permanent until the spec changes (Ready=False/InvalidSpec
and one Warning Event), a cache behind the operator's own write waits for the watch, DependencyNotReady and
retriable API errors come back after their delay or back-off (429 after its Retry-After), anything else is logged
and retried with back-off. Nothing escapes to the worker pool: one bad object never stops the others."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from modelfleet.api.v1alpha1 import API_VERSION
from modelfleet.api.v1alpha1.common import Condition
from modelfleet.cache.view import CacheBehind, CachedCluster, Expectations
from modelfleet.clients.kube import Kube
from modelfleet.clients.ports import PrometheusFor
from modelfleet.clients.ratelimit import ClientStopped
from modelfleet.config import OperatorConfig
from modelfleet.controller.memo import Memo, PassMemos, always
from modelfleet.errors import DependencyNotReady, InvalidSpec
from modelfleet.faults import crash_point
from modelfleet.metrics import RECONCILE_SECONDS, RECONCILE_TOTAL
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.drift_batch import GroupReadings
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.status.conditions import FALSE, get_condition, set_condition
from modelfleet.vocabulary import Key

log = logging.getLogger(__name__)
CONFLICT_DELAY = 0.5
UNREACHABLE_CAP = 5.0


@dataclass(frozen=True)
class Kind:
    """How the boundary runs one of our kinds."""

    name: str
    plural: str
    model: type[Any]
    reconcile: Callable[..., Outcome]  # (obj, generation, deps, now) -> Outcome
    has_phase: bool = True


@dataclass
class PassDeps:
    """What a reconciler is given: the cluster through the cache, configuration, Prometheus, the activity board."""

    kube: CachedCluster
    config: OperatorConfig
    prometheus_for: PrometheusFor
    activity: Any = None  # controller.activity.ActivityBoard
    drift: GroupReadings | None = None  # drift checks read per namespace, shared by the policies


@dataclass(frozen=True)
class PassResult:
    result: str  # success, unchanged, invalid, waiting, conflict, retry, error, gone, abandoned
    again: float | None = None  # seconds until the next pass; None: events and the resync only
    backoff: bool = False  # `again` is a floor: the key's exponential back-off applies
    cap: float | None = None  # the back-off's ceiling, when not the queue's (an unreachable API server)
    cause: str = ""


def merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `current` into `desired`: changed keys, and null for every key that
    went away, at every level of nested objects (a nested object sent whole would keep keys it no longer has)."""
    out: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = merge_patch(old, value)
            if nested:
                out[key] = nested
        elif old != value:
            out[key] = value
    for key in current:
        if key not in desired:
            out[key] = None
    return out


def invalid_status(kind: Kind, raw: Mapping[str, Any], message: str, now: datetime.datetime) -> tuple[dict, bool]:
    """(status with Ready=False/InvalidSpec, whether that is news worth an Event)."""
    current = dict(raw.get("status") or {})
    try:
        conditions = [Condition.model_validate(c) for c in current.get("conditions") or []]
    except ValidationError:
        conditions = []
    generation = (raw.get("metadata") or {}).get("generation")
    previous = get_condition(conditions, "Ready")
    conditions = set_condition(conditions, "Ready", FALSE, "InvalidSpec", message, now=now, generation=generation)
    desired = {**current, "conditions": [c.wire() for c in conditions], "observedGeneration": generation}
    if kind.has_phase:
        desired["phase"] = "Invalid"
    news = previous is None or previous.reason != "InvalidSpec" or previous.message != message
    return desired, news


def _retry_after(e: ApiException) -> float:
    try:
        return float((e.headers or {}).get("Retry-After", 0))
    except (TypeError, ValueError):
        return 0.0


class Pass:
    """Runs passes for every kind; one instance per operator, called from worker threads."""

    def __init__(
        self,
        kinds: Mapping[str, Kind],
        deps: PassDeps,
        kube: Kube,
        expectations: Expectations,
        clock: Callable[[], datetime.datetime],
        resyncs: Callable[[Key, Mapping[str, Any]], bool] = always,
    ) -> None:
        self.kinds, self.deps, self.kube, self.expectations, self.clock = kinds, deps, kube, expectations, clock
        self.memos = PassMemos(deps.kube.store, resyncs)

    def quiet(self, key: Key) -> Memo | None:
        """The memo of `key` where no pass would decide otherwise (the kept object and every input as its last quiet
        pass found them) and no write of this operator to it is awaited: the worker then skips the pass without
        reading the object or handing it to a thread (counted as unchanged). That is most of an idle fleet's
        resync: at 1,000 models, unpacking each object on the event loop and the hand-off were 5 % of its CPU."""
        if self.expectations.pending(key):
            return None
        memo = self.memos.holding(key)
        if memo is not None:
            RECONCILE_TOTAL.labels(key.kind, "unchanged").inc()
        return memo

    def run(self, key: Key, raw: Mapping[str, Any]) -> PassResult:
        """One pass of `key`; `raw` is its body, a copy of the cache's own."""
        kind = self.kinds[key.kind]
        started = time.perf_counter()
        result = PassResult("error")
        try:
            self.expectations.check(key, raw)  # never decide from a body older than this operator's last status write
            if self.memos.unchanged(key, raw):
                result = PassResult("unchanged")
            else:
                self.memos.forget(key)
                result = self._run(kind, key, dict(raw))
        except ClientStopped:
            result = PassResult("abandoned")  # shutting down: the next start runs it again
        except CacheBehind as e:
            result = PassResult("waiting", e.delay, cause="cache")
        except DependencyNotReady as e:
            result = PassResult("retry", e.delay, cause="dependency")
        except ApiException as e:
            result = self._api_error(key, e)
        except (HTTPError, ConnectionError, TimeoutError) as e:
            log.warning("%s: Kubernetes API unreachable: %s", key, e)
            # Not the object's fault: retried every UNREACHABLE_CAP seconds at most (the client's rate limit bounds
            # the attempts), so work begun before an outage goes on within seconds of the API's return.
            result = PassResult("retry", 1.0, backoff=True, cap=UNREACHABLE_CAP, cause="unreachable")
        except Exception:
            log.exception("%s: unexpected error; retrying with back-off", key)
            result = PassResult("error", 1.0, backoff=True, cause="unexpected")
        finally:
            RECONCILE_TOTAL.labels(key.kind, result.result).inc()
            RECONCILE_SECONDS.labels(key.kind).observe(time.perf_counter() - started)
        return result

    def _api_error(self, key: Key, e: ApiException) -> PassResult:
        if e.status == 404:
            return PassResult("gone")
        if e.status == 409:
            return PassResult("conflict", CONFLICT_DELAY, cause="conflict")
        if e.status == 429:
            return PassResult("retry", max(1.0, _retry_after(e)), backoff=True, cause="throttled")
        if (e.status or 0) >= 500:
            # The API server answered but could not do it (its storage is down or reconnecting, a timeout): not the
            # object's fault either, so capped like an unreachable API. Uncapped, a model first tried while etcd
            # came back waited 1 + 2 + 4 s and more after the API was whole again.
            return PassResult("retry", 1.0, backoff=True, cap=UNREACHABLE_CAP, cause="server")
        log.error("%s: the API server refused a request: %s %s", key, e.status, (e.body or e.reason or "")[:500])
        return PassResult("error", 5.0, backoff=True, cause=f"http-{e.status}")

    def _run(self, kind: Kind, key: Key, raw: dict[str, Any]) -> PassResult:
        now = self.clock()
        generation = (raw.get("metadata") or {}).get("generation")
        try:
            with self.deps.kube.recording() as reads:
                obj = parse(kind.model, raw)
                outcome = kind.reconcile(obj, generation, self.deps, now)
        except InvalidSpec as e:
            desired, news = invalid_status(kind, raw, str(e), now)
            self._write(kind, key, raw, desired, [Event("Warning", "InvalidSpec", str(e))] if news else [])
            return PassResult("invalid")
        written = self._write(kind, key, raw, outcome.status.wire(), outcome.events)
        if written == "refused":
            return PassResult("conflict", CONFLICT_DELAY, cause="conflict")
        for count in outcome.on_landed:
            count()
        if written == "nothing" and not (reads.wrote or reads.outside) and outcome.requeue_after is None:
            self.memos.remember(key, raw, reads)
        return PassResult("success", outcome.requeue_after)

    def _write(self, kind: Kind, key: Key, raw: dict[str, Any], desired: Mapping[str, Any], events: list[Event]) -> str:
        """Patches the status where it changed, then posts the Events. Says what it did: "refused" when the patch
        was refused as stale (then only the Events of writes already made are posted), "wrote", or "nothing"."""
        diff = merge_patch(raw.get("status") or {}, desired)
        if diff:
            try:
                written = self.kube.patch_status(
                    kind.plural, key.namespace, key.name, diff, raw["metadata"].get("resourceVersion")
                )
            except ApiException as e:
                if e.status != 409:
                    raise
                self._post(kind, raw, [e for e in events if e.action])
                return "refused"
            crash_point("after-status-patch")  # the status landed, its Events not yet posted
            self.expectations.expect(key, (written.get("metadata") or {}).get("resourceVersion"))
            raw = {**raw, "metadata": written.get("metadata") or raw["metadata"]}
        self._post(kind, raw, events)
        return "wrote" if diff or events else "nothing"

    def _post(self, kind: Kind, raw: dict[str, Any], events: list[Event]) -> None:
        involved = {"apiVersion": API_VERSION, "kind": kind.name, "metadata": raw["metadata"]}
        for event in events:
            try:
                self.kube.post_event(involved, event.type, event.reason, event.message)
            except ApiException as e:  # an Event is a notice: losing one never fails the pass that made it
                log.warning("%s: could not post Event %s: %s %s", kind.name, event.reason, e.status, e.reason)
