"""MLModel handlers: create, spec update and operator restart run the reconcile; a timer keeps reconciling by level
(TrainingJobs finishing, later the rollout and drift)."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, MLModel
from modelfleet.config import OperatorConfig
from modelfleet.handlers.common import is_invalid_for_this_generation, run_reconcile
from modelfleet.reconcilers.mlmodel import reconcile_mlmodel

POLL_SECONDS = OperatorConfig.from_env().poll_seconds


def _reconcile(obj: MLModel, generation: int | None, deps: Any, now: Any) -> Any:
    return reconcile_mlmodel(obj, generation, deps.kube, deps.config, now, deps.prometheus_for)


@kopf.on.resume(GROUP, VERSION, "mlmodels")
@kopf.on.create(GROUP, VERSION, "mlmodels")
@kopf.on.update(GROUP, VERSION, "mlmodels", field="spec")
def mlmodel_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    run_reconcile("MLModel", MLModel, _reconcile, body, patch, memo)


@kopf.timer(GROUP, VERSION, "mlmodels", interval=POLL_SECONDS, initial_delay=POLL_SECONDS)
def mlmodel_follow(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    if is_invalid_for_this_generation(body):
        return
    run_reconcile("MLModel", MLModel, _reconcile, body, patch, memo)
