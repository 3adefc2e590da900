"""ModelVersion: a record's pass follows its MLModel's status (approval, rejection, the version served) and the
model's deletion; it runs when the record appears and whenever those facts of its model change."""

from __future__ import annotations

from typing import Any

from modelfleet.controller.boundary import PassDeps
from modelfleet.reconcilers.outcome import Outcome
from modelfleet.reconcilers.records import CachedRecord, reconcile_record


def reconcile(obj: CachedRecord, generation: int | None, deps: PassDeps, now: Any) -> Outcome:
    return reconcile_record(obj, generation, deps.kube, now)
