"""The watches: every event of our four kinds and of the children we made (Jobs, pods, Deployments, selected by
our managed-by label on the API server, so other workloads never reach this process) goes to the controller, which
keeps it in the cache and queues the reconciles it touches. These handlers carry no finalizer and write nothing:
deleting a model, or its namespace, while the operator is down completes at once. Kueue's Workloads are watched too
where Kueue is installed (watch_workloads)."""

from __future__ import annotations

from typing import Any

import kopf

from modelfleet.api.v1alpha1 import GROUP, VERSION
from modelfleet.vocabulary import KUEUE_GROUP, KUEUE_VERSION

WATCHED: dict[str, tuple[str, str, str] | tuple[str, str]] = {
    "MLModel": (GROUP, VERSION, "mlmodels"),
    "TrainingJob": (GROUP, VERSION, "trainingjobs"),
    "DriftPolicy": (GROUP, VERSION, "driftpolicies"),
    "ModelVersion": (GROUP, VERSION, "modelversions"),
    "Job": ("batch", "v1", "jobs"),
    "Pod": ("v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
}
CHILD_KINDS = ("Job", "Pod", "Deployment")


def _observer(kind: str) -> Any:
    async def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        memo["controller"].observe(kind, type, body)

    observe.__name__ = observe.__qualname__ = f"watch_{kind.lower()}"
    return observe


for _kind, _resource in WATCHED.items():
    kopf.on.event(*_resource, id=f"watch-{_kind.lower()}")(_observer(_kind))

WORKLOADS = (KUEUE_GROUP, KUEUE_VERSION, "workloads")
_workloads_watched = False


def watch_workloads() -> None:
    """Kueue's Workloads (its admission of our suspended Jobs, and why one waits), watched only where the API server
    serves them: operator_main registers this after discovery, so a cluster without Kueue is never asked for them.
    Kueue does not copy our labels onto a Workload, so the watch is not filtered; the cache keeps a few fields of
    each, and only Workloads owned by our Jobs queue a pass."""
    global _workloads_watched
    if not _workloads_watched:  # once per process, however often the operator is started in it
        kopf.on.event(*WORKLOADS, id="watch-workload")(_observer("Workload"))
        _workloads_watched = True
