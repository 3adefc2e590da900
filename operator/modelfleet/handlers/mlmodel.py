"""MLModel: typed object -> reconciler -> metrics that follow its status. Passes run on every change of the model
and of what it owns or reads (its TrainingJobs, Deployment, serving pods, DriftPolicies), and when its reading of
request activity changes (controller/activity.py); there is no timer."""

from __future__ import annotations

from typing import Any

from modelfleet.api.v1alpha1 import MLModel
from modelfleet.controller.boundary import PassDeps
from modelfleet.handlers.common import object_key
from modelfleet.metrics import MODEL_INFO, SERVING_VERSION, ObjectSeries
from modelfleet.reconcilers.mlmodel import reconcile_mlmodel
from modelfleet.reconcilers.outcome import Outcome
from modelfleet.vocabulary import Key

# The info series carries the phase, so a phase change replaces it; both series leave with the model.
_INFO = ObjectSeries(MODEL_INFO)
_SERVING = ObjectSeries(SERVING_VERSION)


def _export(obj: MLModel, status: Any) -> None:
    key = (str(obj.metadata.get("namespace", "")), str(obj.metadata.get("name", "")))
    info = (*key, obj.spec.owner.team, obj.spec.risk_class, status.phase or "Pending")
    MODEL_INFO.labels(*_INFO.track(key, info)).set(1)
    if status.serving_version is not None:
        SERVING_VERSION.labels(*_SERVING.track(key, key)).set(status.serving_version.number)


def reconcile(obj: MLModel, generation: int | None, deps: PassDeps, now: Any) -> Outcome:
    namespace, name = str(obj.metadata.get("namespace", "")), str(obj.metadata.get("name", ""))
    activity = deps.activity.get(namespace, name) if deps.activity is not None else None
    outcome = reconcile_mlmodel(obj, generation, deps.kube, deps.config, now, activity)
    outcome.on_landed.append(lambda: _export(obj, outcome.status))
    return outcome


def forget(key: Key) -> None:
    """The model's series leave /metrics with it."""
    _INFO.forget(object_key(key))
    _SERVING.forget(object_key(key))
