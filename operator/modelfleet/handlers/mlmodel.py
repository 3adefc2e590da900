"""MLModel: typed object -> reconciler -> metrics that follow its status. Passes run on every change of the model
and of what it owns or reads (its TrainingJobs, Deployment, serving pods, DriftPolicies), and when its reading of
request activity changes (controller/activity.py); there is no timer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from modelfleet.api.v1alpha1 import MLModel
from modelfleet.controller.boundary import PassDeps
from modelfleet.errors import PrometheusUnavailable
from modelfleet.handlers.common import object_key
from modelfleet.metrics import MODEL_INFO, SERVING_VERSION, ObjectSeries
from modelfleet.reconcilers.canary import CanaryReading, read_canary
from modelfleet.reconcilers.mlmodel import reconcile_mlmodel
from modelfleet.reconcilers.outcome import Outcome
from modelfleet.vocabulary import Key

log = logging.getLogger(__name__)
# The info series carries the phase, so a phase change replaces it; both series leave with the model.
_INFO = ObjectSeries(MODEL_INFO)
_SERVING = ObjectSeries(SERVING_VERSION)


def _export(obj: MLModel, status: Any) -> None:
    key = (str(obj.metadata.get("namespace", "")), str(obj.metadata.get("name", "")))
    info = (*key, obj.spec.owner.team, obj.spec.risk_class, status.phase or "Pending")
    MODEL_INFO.labels(*_INFO.track(key, info)).set(1)
    if status.serving_version is not None:
        SERVING_VERSION.labels(*_SERVING.track(key, key)).set(status.serving_version.number)


def _canary_reader(deps: PassDeps) -> Callable[[str, str, str], CanaryReading | None]:
    """A canary's figures from the operator's Prometheus; none (the step waits, and says why) when it cannot answer."""

    def read(namespace: str, model: str, window: str) -> CanaryReading | None:
        try:
            return read_canary(deps.prometheus_for(deps.config.prometheus_url), namespace, model, window)
        except PrometheusUnavailable as e:
            log.info("no canary reading for %s/%s: %s", namespace, model, e)
            return None

    return read


def reconcile(obj: MLModel, generation: int | None, deps: PassDeps, now: Any) -> Outcome:
    namespace, name = str(obj.metadata.get("namespace", "")), str(obj.metadata.get("name", ""))
    board = deps.activity
    activity = deps.kube.read_beside(lambda: board.get(namespace, name)) if board is not None else None
    outcome = reconcile_mlmodel(obj, generation, deps.kube, deps.config, now, activity, _canary_reader(deps))
    outcome.on_landed.append(lambda: _export(obj, outcome.status))
    return outcome


def forget(key: Key) -> None:
    """The model's series leave /metrics with it."""
    _INFO.forget(object_key(key))
    _SERVING.forget(object_key(key))
