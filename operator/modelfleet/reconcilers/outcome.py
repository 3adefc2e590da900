"""What a reconcile pass hands back to the handler: the new status and the Events to post."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelfleet.api.v1alpha1.common import ApiModel


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Outcome:
    status: ApiModel
    events: list[Event] = field(default_factory=list)
