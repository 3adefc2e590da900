"""MLModel handlers: create, spec update and operator restart run the reconcile; a timer keeps reconciling by level
(TrainingJobs finishing, later the rollout and drift)."""

from __future__ import annotations

import contextlib
from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION, MLModel
from modelfleet.config import OperatorConfig
from modelfleet.handlers.common import is_invalid_for_this_generation, run_reconcile
from modelfleet.metrics import MODEL_INFO, SERVING_VERSION
from modelfleet.reconcilers.mlmodel import reconcile_mlmodel

POLL_SECONDS = OperatorConfig.from_env().poll_seconds


# The label set each model's info series was last exported with, so a phase change replaces the series.
_EXPORTED: dict[tuple[str, str], tuple[str, ...]] = {}


def _export(obj: MLModel, status: Any) -> None:
    namespace, name = str(obj.metadata.get("namespace", "")), str(obj.metadata.get("name", ""))
    labels = (namespace, name, obj.spec.owner.team, obj.spec.risk_class, status.phase or "Pending")
    previous = _EXPORTED.get((namespace, name))
    if previous is not None and previous != labels:
        MODEL_INFO.remove(*previous)
    MODEL_INFO.labels(*labels).set(1)
    _EXPORTED[(namespace, name)] = labels
    if status.serving_version is not None:
        SERVING_VERSION.labels(namespace, name).set(status.serving_version.number)


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
    key = (str(body.get("metadata", {}).get("namespace", "")), str(body.get("metadata", {}).get("name", "")))
    labels = _EXPORTED.pop(key, None)
    if labels is not None:
        MODEL_INFO.remove(*labels)
    with contextlib.suppress(KeyError):
        SERVING_VERSION.remove(*key)
