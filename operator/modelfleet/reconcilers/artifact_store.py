"""The default artifact store: the claim behind the operator's default pvc:// location, created in a namespace the
first time a run there needs it. It holds every model's versions in that namespace, so it is nobody's child: no owner
reference, labelled as ModelFleet's, and never deleted by the operator (as cert-manager leaves Secrets it issued)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.outcome import Event
from modelfleet.vocabulary import pvc_claim

ROLE_LABEL = "modelfleet.io/role"
ROLE = "artifact-store"
# Refusals an administrator has to resolve (RBAC, a ResourceQuota, an admission policy, an invalid class or size).
REFUSED = (400, 403, 404, 422)


@dataclass
class StoreCheck:
    events: list[Event] = field(default_factory=list)
    problem: str | None = None
    """Why the claim cannot be had: the run waits with this reason instead of creating a pod that would hang."""


def default_claim_of(uri: str, config: OperatorConfig) -> str | None:
    """The claim to create for `uri`: the default location's claim when `uri` is on it, else None (claims a spec
    names itself are the user's: never created)."""
    ours, theirs = pvc_claim(config.default_artifacts_uri), pvc_claim(uri)
    if not config.artifacts_claim_create or ours is None or theirs is None or ours[0] != theirs[0]:
        return None
    return ours[0]


def desired_claim(namespace: str, name: str, config: OperatorConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": [config.artifacts_claim_access_mode],
        "resources": {"requests": {"storage": config.artifacts_claim_size}},
    }
    if config.artifacts_claim_storage_class:
        spec["storageClassName"] = config.artifacts_claim_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "modelfleet",
                "app.kubernetes.io/managed-by": "modelfleet-operator",
                ROLE_LABEL: ROLE,
            },
            "annotations": {
                "modelfleet.io/note": "the default artifact store of this namespace's models; the operator never "
                "deletes it (deleting it deletes every version stored here)"
            },
        },
        "spec": spec,
    }


def _refusal(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "{}").get("message") or e.reason)
    except ValueError:
        return str(e.reason)


def ensure_default_claim(kube: Any, namespace: str, uri: str, config: OperatorConfig) -> StoreCheck:
    """Creates the default claim when `uri` is on it and it is missing. One Event when it was created; a problem
    (not an exception) when the API server refuses, so the run says why it waits."""
    name = default_claim_of(uri, config)
    if name is None or kube.get_claim(namespace, name) is not None:
        return StoreCheck()
    body = desired_claim(namespace, name, config)
    try:
        created = kube.create_claim(body)
    except ApiException as e:
        if e.status not in REFUSED:
            raise  # the API server is busy or down: retried at the Kopf boundary
        return StoreCheck(
            problem=f"the default artifact claim {name} is missing and cannot be created ({e.status}: {_refusal(e)}); "
            f"create it in namespace {namespace}, grant the operator create on persistentvolumeclaims, or set "
            "spec.artifacts.uri (MLModel) / spec.output.uri (TrainingJob) to a claim that exists"
        )
    if not created:
        return StoreCheck()
    storage_class = config.artifacts_claim_storage_class or "the default StorageClass"
    return StoreCheck(
        events=[
            Event(
                "Normal",
                "ArtifactStoreCreated",
                f"created PersistentVolumeClaim {name} ({config.artifacts_claim_size}, "
                f"{config.artifacts_claim_access_mode}, {storage_class}) for the default artifact location "
                f"{config.default_artifacts_uri}; the operator never deletes it",
            )
        ]
    )
