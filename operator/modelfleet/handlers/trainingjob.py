"""TrainingJob handlers: create and operator restart run the reconcile; a timer follows the Job by level until the
run has finished (the spec is immutable, so there are no updates to handle)."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, TrainingJob
from modelfleet.config import OperatorConfig
from modelfleet.handlers.common import is_finished, is_invalid_for_this_generation, run_reconcile
from modelfleet.reconcilers.trainingjob import reconcile_trainingjob

POLL_SECONDS = OperatorConfig.from_env().poll_seconds


def _reconcile(obj: TrainingJob, generation: int | None, deps: Any, now: Any) -> Any:
    return reconcile_trainingjob(obj, generation, deps.kube, deps.config, now, deps.prometheus_for)


@kopf.on.resume(GROUP, VERSION, "trainingjobs")
@kopf.on.create(GROUP, VERSION, "trainingjobs")
def trainingjob_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    run_reconcile("TrainingJob", TrainingJob, _reconcile, body, patch, memo)


@kopf.timer(GROUP, VERSION, "trainingjobs", interval=POLL_SECONDS, initial_delay=POLL_SECONDS)
def trainingjob_follow(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    if is_finished(body, "Succeeded", "Failed") or is_invalid_for_this_generation(body):
        return
    run_reconcile("TrainingJob", TrainingJob, _reconcile, body, patch, memo)
