"""Which reconciles a watch event queues (pure): the object itself for our kinds, and the owner whose decision reads
it for children (by controller owner reference, or by our labels where the owner is not the direct controller)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelfleet.vocabulary import LABEL_JOB_NAME, LABEL_MODEL, LABEL_TRAININGJOB, Key, controller_of

OURS = ("MLModel", "TrainingJob", "DriftPolicy", "ModelVersion")
CHILDREN = ("Job", "Pod", "Deployment", "Workload")


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def _record_facts(model: Mapping[str, Any] | None) -> dict[int, tuple[Any, ...]]:
    """What each version's record follows in its model's status: whether it serves, its approval and rejection."""
    status = (model or {}).get("status") or {}
    serving = (status.get("servingVersion") or {}).get("number")
    facts = {
        int(v["number"]): (v.get("number") == serving, v.get("promotable"), v.get("approvedBy"))
        for v in status.get("versions") or []
        if isinstance(v.get("number"), int)
    }
    if isinstance(serving, int):
        facts.setdefault(serving, (True, None, None))
    return facts


def changed_versions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> set[int]:
    """The versions whose records have something new to follow between two states of a model (a fleet's model
    with hundreds of records queues the two whose serving changed, not all of them)."""
    before, after = _record_facts(old), _record_facts(new)
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


def queued_by(
    kind: str,
    obj: Mapping[str, Any],
    *,
    added_or_deleted: bool,
    policies_of: Callable[[str, str], list[Key]],
    job_owner: Callable[[str, str], Key | None],
    records_of: Callable[[str, str, set[int] | None], list[Key]] = lambda namespace, model, versions: [],
    old: Mapping[str, Any] | None = None,
) -> list[Key]:
    """The keys to reconcile after `obj` (of `kind`) changed. `policies_of(namespace, model)` lists the
    DriftPolicies of a model (they re-evaluate when the model appears or goes); `job_owner(namespace, job)` is the
    TrainingJob that owns a cached Job (a pod's label holds the Job's full name; ours may be cut to 63 characters);
    `records_of(namespace, model, versions)` lists a model's ModelVersion records of those versions (None: all),
    queued when what they follow changed (`old` is the model as it was before this event)."""
    meta = obj.get("metadata") or {}
    namespace, name = _namespace(obj), str(meta.get("name", ""))
    labels = _labels(obj)
    keys: list[Key] = []
    if kind in OURS:
        keys.append(Key(kind, namespace, name))
    if kind == "MLModel" and added_or_deleted:
        keys.extend(policies_of(namespace, name))
    if kind == "MLModel":
        versions = None if added_or_deleted else changed_versions(old, obj)
        if versions is None or versions:
            keys.extend(records_of(namespace, name, versions))
    if kind == "ModelVersion" and added_or_deleted and labels.get(LABEL_MODEL):
        keys.append(Key("MLModel", namespace, str(labels[LABEL_MODEL])))  # a model creates its records once
    elif kind == "TrainingJob" and labels.get(LABEL_MODEL):
        keys.append(Key("MLModel", namespace, str(labels[LABEL_MODEL])))
    elif kind == "DriftPolicy":
        model = ((obj.get("spec") or {}).get("modelRef") or {}).get("name")
        if model:
            keys.append(Key("MLModel", namespace, str(model)))
    elif kind in ("Job", "Deployment"):
        owner = controller_of(obj)
        if owner and owner.get("kind") in ("TrainingJob", "MLModel"):
            keys.append(Key(str(owner["kind"]), namespace, str(owner.get("name", ""))))
    elif kind == "Workload":  # Kueue's, for a Job: queues the TrainingJob that owns the Job
        owner = controller_of(obj)
        if owner and owner.get("kind") == "Job":
            owner_key = job_owner(namespace, str(owner.get("name", "")))
            if owner_key is not None:
                keys.append(owner_key)
    elif kind == "Pod":
        owner_key = job_owner(namespace, str(labels[LABEL_JOB_NAME])) if labels.get(LABEL_JOB_NAME) else None
        if owner_key is not None:
            keys.append(owner_key)
        elif labels.get(LABEL_TRAININGJOB):
            keys.append(Key("TrainingJob", namespace, str(labels[LABEL_TRAININGJOB])))
        elif labels.get("app.kubernetes.io/component") == "serving" and labels.get(LABEL_MODEL):
            keys.append(Key("MLModel", namespace, str(labels[LABEL_MODEL])))
    return keys
