"""Conditions by the Kubernetes convention: lastTransitionTime moves only when status flips, every condition carries
the generation it was computed from, and Ready summarises the others."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from modelfleet.api.v1alpha1.common import Condition

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime.datetime | None:
    """An RFC 3339 timestamp as the API server writes it (or a datetime already) -> datetime; None stays None."""
    if isinstance(value, datetime.datetime):
        return value
    if value is None or value == "":
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def get_condition(conditions: Iterable[Condition], ctype: str) -> Condition | None:
    return next((c for c in conditions if c.type == ctype), None)


def set_condition(
    conditions: Sequence[Condition],
    ctype: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: datetime.datetime,
    generation: int | None,
) -> list[Condition]:
    """A new list with `ctype` set; its lastTransitionTime is kept unless the status changed."""
    previous = get_condition(conditions, ctype)
    since = previous.last_transition_time if previous and previous.status == status else rfc3339(now)
    # model_validate checks `status` against True/False/Unknown at run time.
    new = Condition.model_validate(
        {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message[:4096],
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
    )
    out = [c for c in conditions if c.type != ctype]
    out.append(new)
    return out


def set_default_condition(
    conditions: Sequence[Condition],
    ctype: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: datetime.datetime,
    generation: int | None,
) -> list[Condition]:
    """Sets `ctype` only when it is missing (the first visit sets every condition, Unknown where nothing is known);
    refreshes its observedGeneration otherwise."""
    existing = get_condition(conditions, ctype)
    if existing is None:
        return set_condition(conditions, ctype, status, reason, message, now=now, generation=generation)
    return set_condition(
        conditions, ctype, existing.status, existing.reason, existing.message, now=now, generation=generation
    )


def summarize_ready(
    conditions: Sequence[Condition],
    required: Sequence[str],
    *,
    negative: Sequence[str] = (),
    now: datetime.datetime,
    generation: int | None,
) -> list[Condition]:
    """Ready=True when every `required` condition is True and no `negative` one is True; otherwise Ready takes the
    status, reason and message of the first condition that blocks it (False before Unknown)."""
    blockers: list[tuple[str, Condition]] = []
    for ctype in negative:
        c = get_condition(conditions, ctype)
        if c and c.status == TRUE:
            blockers.append((FALSE, c))
    for ctype in required:
        c = get_condition(conditions, ctype)
        if c is None:
            blockers.append(
                (
                    UNKNOWN,
                    Condition(type=ctype, status="Unknown", reason="Pending", message=f"{ctype} not evaluated yet"),
                )
            )
        elif c.status != TRUE:
            blockers.append((c.status, c))
    if not blockers:
        return set_condition(
            conditions, "Ready", TRUE, "Ready", "all conditions are met", now=now, generation=generation
        )
    status, first = sorted(blockers, key=lambda b: b[0] != FALSE)[0]
    return set_condition(
        conditions,
        "Ready",
        status,
        first.reason or first.type,
        f"{first.type}: {first.message}",
        now=now,
        generation=generation,
    )


class ConditionEditor:
    """Edits a list of conditions at one moment and generation (what a reconcile pass does)."""

    def __init__(self, conditions: Sequence[Condition], *, now: datetime.datetime, generation: int | None) -> None:
        self.items = list(conditions)
        self.now = now
        self.generation = generation

    def set(self, ctype: str, status: str, reason: str, message: str = "") -> None:
        self.items = set_condition(self.items, ctype, status, reason, message, now=self.now, generation=self.generation)

    def default(self, ctype: str, status: str, reason: str, message: str = "") -> None:
        self.items = set_default_condition(
            self.items, ctype, status, reason, message, now=self.now, generation=self.generation
        )

    def summarize_ready(self, required: Sequence[str], negative: Sequence[str] = ()) -> list[Condition]:
        self.items = summarize_ready(self.items, required, negative=negative, now=self.now, generation=self.generation)
        return self.items
