"""What a reconcile pass hands back to the boundary, for all three kinds: the new status, the Events to post, and
when the object needs a pass again for reasons of time alone (an interval, a deadline) rather than a watch event.

The writes a pass makes to children (create, apply, delete) happen inside the reconciler, each once, through the
cluster port; the status and the Events are written by the boundary (controller/boundary.py) after the pass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from modelfleet.api.v1alpha1.common import ApiModel


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str
    # Says what a write of this pass did (created a TrainingJob, a Job): posted even when the status patch that
    # follows is refused as stale, since the next pass will not do (or say) it again.
    action: bool = False


@dataclass
class Outcome:
    status: ApiModel
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None  # seconds; None: only events (and the slow resync) bring the next pass
    # Counters that say what this pass decided: run by the boundary once the status patch has landed, so a
    # refused or failed patch never counts a decision twice.
    on_landed: list[Callable[[], None]] = field(default_factory=list)
