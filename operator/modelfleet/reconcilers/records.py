"""ModelVersion records: the record written once when a version is trained (its spec: lineage, artifact, metrics,
documentation), and what happened to it afterwards (its status: approval, rejection, serving intervals, retirement),
followed from the owning MLModel's status. Both are pure; the MLModel pass creates records, the ModelVersion pass
writes their status (one writer per object)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from modelfleet.api.v1alpha1 import API_VERSION
from modelfleet.api.v1alpha1.common import ApiModel
from modelfleet.api.v1alpha1.mlmodel import MLModel, TrainedVersion
from modelfleet.api.v1alpha1.modelversion import ModelRecordRef, ModelVersionStatus, ServingInterval
from modelfleet.api.v1alpha1.shared import Documentation
from modelfleet.clients.ports import ClusterReader
from modelfleet.reconcilers.outcome import Event, Outcome
from modelfleet.status.conditions import rfc3339
from modelfleet.vocabulary import LABEL_MODEL, LABEL_MODEL_UID, LABEL_TEAM, LABEL_VERSION, MANAGED_BY, owner_reference

MAX_INTERVALS = 100


class RecordHead(ApiModel):
    """The part of a record's spec its pass reads (the cache keeps no more: the lineage stays on the server)."""

    model_ref: ModelRecordRef
    version: int


class CachedRecord(ApiModel):
    """A ModelVersion as the cache holds it."""

    metadata: dict[str, object] = Field(default_factory=dict)
    spec: RecordHead
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)

    model_config = {"extra": "ignore"}


def record_name(model: str, number: int, uid: str) -> str:
    """`<model>-v<N>-<uid prefix>`: a record can outlive its model (retainVersionRecords), and a new model of the
    same name counts from v1 again, so the model's uid keeps the two apart."""
    return f"{model}-v{number}-{uid.replace('-', '')[:8]}"


def documentation(model: MLModel) -> Documentation:
    spec = model.spec
    return Documentation(
        team=spec.owner.team,
        contact=spec.owner.contact,
        risk_class=spec.risk_class,
        description=spec.description,
        intended_use=spec.intended_use,
    )


def desired_record(
    model: MLModel, version: TrainedVersion, trainingjob: Mapping[str, Any], *, retain: bool
) -> dict[str, Any]:
    """The record of `version`, from the TrainingJob that produced it (its spec and result are the lineage) and the
    model (documentation at the time). Owned by the model unless records are kept after deletion."""
    name, namespace = str(model.metadata["name"]), str(model.metadata["namespace"])
    uid = str(model.metadata["uid"])
    tj_spec = trainingjob.get("spec") or {}
    tj_status = trainingjob.get("status") or {}
    result = tj_status.get("result") or {}
    dataset = tj_spec.get("dataset") or {}
    features = dataset.get("features") or result.get("features") or [f.wire() for f in version.features or []]
    documented = tj_spec.get("documentation") or documentation(model).wire()
    metadata: dict[str, Any] = {
        "name": record_name(name, version.number, uid),
        "namespace": namespace,
        "labels": {
            LABEL_MODEL: name,
            LABEL_MODEL_UID: uid,
            LABEL_VERSION: str(version.number),
            LABEL_TEAM: model.spec.owner.team,
            "app.kubernetes.io/part-of": "modelfleet",
            **MANAGED_BY,
        },
    }
    if not retain:
        # Not a controller reference: the record is not a child the model's pass reconciles, only deleted with it.
        metadata["ownerReferences"] = [{**owner_reference("MLModel", name, uid), "controller": False}]
    spec: dict[str, Any] = {
        "modelRef": {"name": name, "uid": uid},
        "version": version.number,
        "trainingJob": version.training_job,
        "reason": version.reason,
        "cachedFrom": tj_status.get("cachedFrom"),
        "fingerprint": version.fingerprint,
        "trainedAt": version.created_at,
        "framework": tj_spec.get("framework", model.spec.framework),
        "task": tj_spec.get("task", model.spec.task),
        "dataset": {
            "uri": dataset.get("uri", ""),
            "version": dataset.get("version"),
            "format": dataset.get("format"),
            "digest": version.dataset_digest or "",
            "rows": result.get("rows"),
            "target": dataset.get("target"),
            "features": [{"name": f["name"], "type": f.get("type", "numeric")} for f in features],
        },
        "training": tj_spec.get("training") or {},
        "artifact": {"uri": version.artifact_uri, "digest": version.artifact_digest},
        "metrics": dict(version.metrics),
        "libraries": dict(result.get("libraries") or {}),
        "documentation": documented,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": metadata,
        "spec": _drop_none(spec),
    }


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def owning_model(record: CachedRecord, model: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The cached MLModel the record belongs to: same name and uid, not being deleted (None: it is gone)."""
    if model is None:
        return None
    meta = model.get("metadata") or {}
    if meta.get("uid") != record.spec.model_ref.uid or meta.get("deletionTimestamp"):
        return None
    return model


def _entry(model: Mapping[str, Any], number: int) -> dict[str, Any] | None:
    for v in (model.get("status") or {}).get("versions") or []:
        if v.get("number") == number:
            return dict(v)
    return None


def _serving_number(model: Mapping[str, Any] | None) -> int | None:
    serving = ((model or {}).get("status") or {}).get("servingVersion") or {}
    number = serving.get("number")
    return int(number) if isinstance(number, int) else None


def plan_record_status(
    record: CachedRecord, model: Mapping[str, Any] | None, now: datetime.datetime, generation: int | None
) -> tuple[ModelVersionStatus, list[Event]]:
    """Pure: the record's status after what its model's status says now. Each fact is written once, when first
    seen (an approval, a rejection, a start or end of serving), so the record only ever grows."""
    number = record.spec.version
    status = record.status.model_copy(deep=True)
    events: list[Event] = []
    stamp = rfc3339(now)
    model = owning_model(record, model)
    entry = _entry(model, number) if model is not None else None
    if entry is not None:
        if entry.get("approvedBy") and not status.approved_by:
            status.approved_by, status.approved_at = entry["approvedBy"], entry.get("approvedAt") or stamp
        if entry.get("promotable") is False and entry.get("rejectedReason") and not status.rejected_reason:
            status.rejected_reason, status.rejected_at = entry["rejectedReason"], stamp
    serving_now = _serving_number(model)
    open_interval = status.serving[-1] if status.serving and status.serving[-1].end is None else None
    if serving_now == number and open_interval is None:
        status.serving = [*status.serving, ServingInterval(start=stamp)][-MAX_INTERVALS:]
        status.retired_at = None
    elif serving_now != number and open_interval is not None:
        open_interval.end, open_interval.replaced_by = stamp, serving_now
        if model is None or (serving_now is not None and serving_now > number):
            status.retired_at = stamp
            events.append(
                Event(
                    "Normal",
                    "Retired",
                    f"version {number} retired: "
                    + (f"version {serving_now} serves in its place" if model is not None else "its model was deleted"),
                )
            )
    if model is None and status.model_deleted_at is None:
        status.model_deleted_at = stamp
    status.state = (
        "Serving"
        if serving_now == number and model is not None
        else "Retired"
        if status.retired_at or status.model_deleted_at
        else "Rejected"
        if status.rejected_reason
        else "Approved"
        if status.approved_by
        else "Trained"
    )
    status.observed_generation = generation
    return status, events


def reconcile_record(
    record: CachedRecord, generation: int | None, kube: ClusterReader, now: datetime.datetime
) -> Outcome:
    """observe (the record's model, from the cache) -> plan; the boundary writes the status."""
    namespace = str(record.metadata.get("namespace", ""))
    model = kube.get_custom(namespace, "mlmodels", record.spec.model_ref.name)
    status, events = plan_record_status(record, model, now, generation)
    return Outcome(status, events)
