"""What every handler shares: error classification at the Kopf boundary and status written only when it changed."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from modelfleet.api.v1alpha1.common import Condition
from modelfleet.errors import DependencyNotReady, InvalidSpec
from modelfleet.metrics import RECONCILE_SECONDS, RECONCILE_TOTAL
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.outcome import Outcome
from modelfleet.status.conditions import FALSE, get_condition, set_condition

KINDS_WITH_PHASE = {"MLModel", "TrainingJob"}
RETRY_DELAY = 5.0


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-dict copy of a Kopf body (metadata, spec, status)."""
    return dict(json.loads(json.dumps({k: body.get(k) for k in ("metadata", "spec", "status")}, default=dict)))


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


def write_status_if_changed(patch: kopf.Patch, current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Puts into the patch only the status fields that differ; nothing at all when nothing changed."""
    diff = merge_patch(current or {}, desired)
    for key, value in diff.items():
        patch.status[key] = value
    return bool(diff)


def _mark_invalid(kind: str, body: Mapping[str, Any], patch: kopf.Patch, message: str, now: Any) -> bool:
    current = dict(body.get("status") or {})
    try:
        conditions = [Condition.model_validate(c) for c in current.get("conditions") or []]
    except ValidationError:
        conditions = []
    generation = body.get("metadata", {}).get("generation")
    previous = get_condition(conditions, "Ready")
    conditions = set_condition(conditions, "Ready", FALSE, "InvalidSpec", message, now=now, generation=generation)
    desired = {**current, "conditions": [c.wire() for c in conditions], "observedGeneration": generation}
    if kind in KINDS_WITH_PHASE:
        desired["phase"] = "Invalid"
    write_status_if_changed(patch, current, desired)
    return previous is None or previous.reason != "InvalidSpec" or previous.message != message


@contextlib.contextmanager
def reconciling(kind: str, body: kopf.Body, patch: kopf.Patch, now: Any) -> Iterator[None]:
    """Maps domain errors to Kopf's: InvalidSpec -> permanent (Ready=False/InvalidSpec and one Warning Event),
    DependencyNotReady and retriable API errors -> temporary with a delay; anything else propagates as unexpected
    (Kopf retries it with back-off). Counts every outcome in modelfleet_reconcile_total."""
    started = time.perf_counter()
    result = "success"
    try:
        yield
    except InvalidSpec as e:
        result = "invalid"
        if _mark_invalid(kind, body, patch, str(e), now):
            kopf.event(body, type="Warning", reason="InvalidSpec", message=str(e)[:1024])
        raise kopf.PermanentError(str(e)) from e
    except DependencyNotReady as e:
        result = "retry"
        raise kopf.TemporaryError(str(e), delay=e.delay) from e
    except ApiException as e:
        if e.status in (409, 429) or (e.status or 0) >= 500:
            result = "retry"
            raise kopf.TemporaryError(f"Kubernetes API answered {e.status} {e.reason}", delay=RETRY_DELAY) from e
        result = "error"
        raise
    except (HTTPError, ConnectionError) as e:
        result = "retry"
        raise kopf.TemporaryError(f"Kubernetes API unreachable: {e}", delay=RETRY_DELAY) from e
    except Exception:
        result = "error"
        raise
    finally:
        RECONCILE_TOTAL.labels(kind, result).inc()
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)


def run_reconcile(
    kind: str, model: type[Any], reconcile: Callable[..., Any], body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo
) -> None:
    """body -> typed object -> reconcile (status and Events) -> patch (only what changed) and Events, inside the
    error boundary. `reconcile(obj, generation, deps, now)` returns an Outcome or just a status."""
    deps = memo["deps"]
    now = deps.clock()
    with reconciling(kind, body, patch, now):
        raw = plain(body)
        obj = parse(model, raw)
        out = reconcile(obj, raw["metadata"].get("generation"), deps, now)
        outcome = out if isinstance(out, Outcome) else Outcome(out)
        write_status_if_changed(patch, raw.get("status"), outcome.status.wire())
        for event in outcome.events:
            # kopf.event, not kopf.info: decisions are posted whatever the level set for handler log lines.
            kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])


def is_finished(body: kopf.Body, *condition_types: str) -> bool:
    """True when one of the conditions is True (a timer's cheap early exit, from the body alone)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") in condition_types and c.get("status") == "True" for c in conditions)


def is_invalid_for_this_generation(body: kopf.Body) -> bool:
    """Judged InvalidSpec for the current spec: timers leave it alone until the spec changes (no retry storm)."""
    status = body.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return ready.get("reason") == "InvalidSpec" and status.get("observedGeneration") == body.get("metadata", {}).get(
        "generation"
    )
