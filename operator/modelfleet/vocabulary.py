"""The small words every layer shares, each said once: object keys, our labels, owner references, and conditions as
they appear on raw objects (watch events and cached children carry no typed status)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from modelfleet.api.v1alpha1 import API_VERSION

LABEL_MODEL = "modelfleet.io/model"
LABEL_MODEL_UID = "modelfleet.io/model-uid"  # on a ModelVersion record: the model (of that name) it belongs to
LABEL_VERSION = "modelfleet.io/version"
LABEL_TEAM = "modelfleet.io/team"
LABEL_TRAININGJOB = "modelfleet.io/trainingjob"
LABEL_FINGERPRINT = "modelfleet.io/fingerprint"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"  # set on a Job's pods by the Job controller
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelfleet-operator"}  # on every child and its pods
# The component label of a canary's pods: not `serving`, so the model's Deployment, Service and PDB (which select
# component=serving) never take them; the gateway selects both.
CANARY_COMPONENT = "serving-canary"
LEGACY_FINALIZER = "modelfleet.io/finalizer"  # put on MLModels and TrainingJobs by versions before 0.2
KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"
KUEUE_JOB_UID = "kueue.x-k8s.io/job-uid"  # Kueue's label on the Workload it makes for a Job

PLURALS = {
    "MLModel": "mlmodels",
    "TrainingJob": "trainingjobs",
    "DriftPolicy": "driftpolicies",
    "ModelVersion": "modelversions",
}
TERMINAL = ("Succeeded", "Failed")


class Key(NamedTuple):
    """One object the operator reconciles or caches."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def key_of(kind: str, obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return Key(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))


def owner_reference(kind: str, name: str, uid: str, api_version: str = API_VERSION) -> dict[str, Any]:
    """The controller owner reference a child carries (the garbage collector deletes it with its owner)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The owner reference marked controller, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def condition(obj: Mapping[str, Any] | None, ctype: str) -> dict[str, Any]:
    """The condition of that type on a raw object ({} when it has none)."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}


def is_true(obj: Mapping[str, Any] | None, ctype: str) -> bool:
    return condition(obj, ctype).get("status") == "True"


def has_finished(obj: Mapping[str, Any] | None) -> bool:
    """A TrainingJob whose run is over (Succeeded or Failed is True): a record, nothing about it changes."""
    return any(is_true(obj, t) for t in TERMINAL)


def invalid_for_this_generation(obj: Mapping[str, Any]) -> bool:
    """Judged InvalidSpec for the current spec: left alone until the spec changes (no retry storm)."""
    ready = condition(obj, "Ready")
    status = obj.get("status") or {}
    return ready.get("reason") == "InvalidSpec" and status.get("observedGeneration") == (obj.get("metadata") or {}).get(
        "generation"
    )


def pvc_claim(uri: str) -> tuple[str, str] | None:
    """pvc://claim/path -> (claim, path); None for any other scheme."""
    if not uri.startswith("pvc://"):
        return None
    claim, _, path = uri[len("pvc://") :].partition("/")
    return claim, path
