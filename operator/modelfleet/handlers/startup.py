"""Operator start-up and shut-down: Kopf settings, the controller (cache, queue, workers) started before the watches
deliver their first event, and stopped within MODELFLEET_STOP_SECONDS on SIGTERM (the metrics endpoint and every
fatal check come before Kopf starts: see operator_main)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, DriftPolicy, MLModel, TrainingJob
from modelfleet.clients.kube import describe
from modelfleet.controller.boundary import Kind
from modelfleet.controller.controller import CHILD_SELECTOR, Controller
from modelfleet.handlers import driftpolicy, mlmodel, modelversion, trainingjob
from modelfleet.handlers.watch import CHILD_KINDS, WATCHED
from modelfleet.reconcilers.records import CachedRecord

WATCH_RETRY_BACKOFFS = (0.5, 1.0, 2.0, *([3.0] * 200))
# The first list of each watched kind comes in pages of this many objects (client-go's reflector pages by 500), and a
# per-object worker of Kopf's exits this soon after its last event (Kopf's default is 5 s). Kopf keeps a listed object's
# whole body (managedFields and all, ~30 KiB of Python objects for a served model's Deployment) until its worker
# exits, while the cache keeps a slim packed copy: at a restart every object was alive at once. Measured on a
# restart at 1,000 served models (6,000 objects), the operator's RSS after the first passes: 408 MiB with Kopf's
# defaults (one list per kind, 5 s), 329 MiB with pages of 500, ~250 MiB with pages of 100, 350 MiB with the
# short idle alone, ~160 MiB with both (an idle operator with no models: 101 MiB).
LIST_PAGE_SIZE = 100
WATCH_WORKER_IDLE_SECONDS = 0.5
KINDS = {
    "MLModel": Kind("MLModel", "mlmodels", MLModel, mlmodel.reconcile),
    "TrainingJob": Kind("TrainingJob", "trainingjobs", TrainingJob, trainingjob.reconcile),
    "DriftPolicy": Kind("DriftPolicy", "driftpolicies", DriftPolicy, driftpolicy.reconcile, has_phase=False),
    "ModelVersion": Kind("ModelVersion", "modelversions", CachedRecord, modelversion.reconcile, has_phase=False),
}
FORGET = {"MLModel": mlmodel.forget, "DriftPolicy": driftpolicy.forget}


def watch_only_memories() -> Any:
    """Kopf's per-object memories that remember nothing: Kopf keeps one for every watched object for as long as it
    exists (for change-detecting handlers, daemons and indexes: this operator has none of them, only event handlers,
    which get a fresh one per event). Kept, they were about 1.1 KiB per served model (tracemalloc on the 1,000 fleet).
    None (Kopf's own memories) where the installed Kopf lacks the class or its `ephemeral` recall: its private API,
    so a Kopf that changes it costs memory, never a failure."""
    try:
        from kopf._core.reactor.inventory import ResourceMemories
    except ImportError:
        return None
    if "ephemeral" not in inspect.signature(ResourceMemories.recall).parameters:
        return None

    class WatchOnlyMemories(ResourceMemories):
        async def recall(self, raw_body: Any, **kwargs: Any) -> Any:
            return await super().recall(raw_body, **{**kwargs, "ephemeral": True})

    return WatchOnlyMemories()


def configure_kopf(settings: kopf.OperatorSettings, inactivity_seconds: float) -> None:
    """Kopf's settings for an operator whose handlers only watch (the controller does the rest)."""
    # Kopf's bookkeeping would live in annotations under our prefix; with watch handlers only, it writes none.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # No scanning of namespaces and CRDs at the cluster scope: the operator watches the namespaces it is given (or
    # all), and its CRDs are checked before Kopf starts (a missing one stops the start with its name). Scanning would
    # ask for cluster-wide rights a namespaced install does not have, and retry each refusal as below.
    settings.scanning.disabled = True
    # Kopf's own requests (the watches) retry a failed request with these pauses: short and flat, so a watch is back
    # within 3 s of the API server's return after an outage of up to ten minutes (Kopf's default grows to 21 s).
    settings.networking.error_backoffs = WATCH_RETRY_BACKOFFS
    # A watch stream that goes silent (a stalled proxy, a half-open connection) is reconnected after this.
    settings.watching.inactivity_timeout = inactivity_seconds
    settings.watching.chunk_size = LIST_PAGE_SIZE
    settings.queueing.idle_timeout = WATCH_WORKER_IDLE_SECONDS
    settings.posting.level = logging.WARNING  # decisions are posted as Events by the controller, not log lines
    for kind in CHILD_KINDS:  # only the children we made, filtered by the API server
        settings.watching.label_selectors[WATCHED[kind]] = CHILD_SELECTOR


@kopf.on.startup()
async def operator_configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    configure_kopf(settings, memo["deps"].config.watch_inactivity_seconds)
    deps = memo["deps"]
    controller = Controller(
        config=deps.config,
        kube=deps.kube,
        kinds=KINDS,
        prometheus_for=deps.prometheus_for,
        clock=deps.clock,
        forget=FORGET,
    )
    memo["controller"] = controller
    try:
        await controller.start()
    except Exception as e:
        # Transient failures were retried for START_RETRY_SECONDS; Kopf would retry a start-up handler forever,
        # an operator alive and reconciling nothing. Failing the start exits the process, and the pod restarts.
        memo["start_failed"] = f"the controller could not start: {describe(e)}"
        raise kopf.PermanentError(memo["start_failed"]) from e
    if memo.get("metrics_port"):  # bound before Kopf started (operator_main), so a taken port exits at once
        logger.info("metrics on :%s/metrics", memo["metrics_port"])


@kopf.on.cleanup()
async def operator_stop(memo: kopf.Memo, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None:
        await controller.stop(memo["deps"].config.stop_seconds)
