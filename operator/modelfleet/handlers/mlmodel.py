"""MLModel handlers: create, spec update and operator restart run the reconcile; a timer keeps reconciling by level
(TrainingJobs finishing, later the rollout and drift)."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, MLModel
from modelfleet.config import OperatorConfig
from modelfleet.handlers.common import is_invalid_for_this_generation, run_reconcile
from modelfleet.metrics import MODEL_INFO, SERVING_VERSION, ObjectSeries
from modelfleet.reconcilers.mlmodel import reconcile_mlmodel

POLL_SECONDS = OperatorConfig.from_env().poll_seconds


# The info series carries the phase, so a phase change replaces it; both series leave with the model.
_INFO = ObjectSeries(MODEL_INFO)
_SERVING = ObjectSeries(SERVING_VERSION)


def _export(obj: MLModel, status: Any) -> None:
    key = (str(obj.metadata.get("namespace", "")), str(obj.metadata.get("name", "")))
    info = (*key, obj.spec.owner.team, obj.spec.risk_class, status.phase or "Pending")
    MODEL_INFO.labels(*_INFO.track(key, info)).set(1)
    if status.serving_version is not None:
        SERVING_VERSION.labels(*_SERVING.track(key, key)).set(status.serving_version.number)


def _reconcile(obj: MLModel, generation: int | None, deps: Any, now: Any) -> Any:
    outcome = reconcile_mlmodel(obj, generation, deps.kube, deps.config, now, deps.prometheus_for)
    _export(obj, outcome.status)
    return outcome


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


@kopf.on.delete(GROUP, VERSION, "mlmodels", optional=True)
def mlmodel_forget(body: kopf.Body, **_: Any) -> None:
    """The model's series leave /metrics with it (optional: never blocks deletion)."""
    metadata = body.get("metadata", {})
    key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
    _INFO.forget(key)
    _SERVING.forget(key)
