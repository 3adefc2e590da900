"""TrainingJob: typed object -> reconciler. Passes run on every change of the run, its Job and the Job's pods; a
finished run is a record and gets no more passes (the spec is immutable)."""

from __future__ import annotations

from typing import Any

from modelfleet.api.v1alpha1 import TrainingJob
from modelfleet.controller.boundary import PassDeps
from modelfleet.reconcilers.outcome import Outcome
from modelfleet.reconcilers.trainingjob import reconcile_trainingjob


def reconcile(obj: TrainingJob, generation: int | None, deps: PassDeps, now: Any) -> Outcome:
    return reconcile_trainingjob(obj, generation, deps.kube, deps.config, now, deps.prometheus_for)
