"""ModelVersion: the durable record of one trained version of an MLModel (lineage, artifact, metrics, approval,
serving history). Its spec is written once by the operator and never changes (the API server refuses edits); its
status records what happened to the version afterwards. Records outlive Events and the bounded status list, and with
the operator's `retainVersionRecords` they outlive the model too (they then carry no owner reference)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelfleet.api.v1alpha1.common import ApiModel, LibraryVersion, Name, Timestamp, cel
from modelfleet.api.v1alpha1.shared import Documentation, Feature, Framework, FreeForm, Task

RecordState = Literal["Trained", "Rejected", "Approved", "Serving", "Retired"]


class ModelRecordRef(ApiModel):
    """The MLModel the version belongs to (the uid tells two models of the same name apart)."""

    name: Name
    """The MLModel's name."""
    uid: str = Field(max_length=64)
    """The MLModel's uid when the version was recorded."""


class ArtifactRecord(ApiModel):
    """The version's artifact directory."""

    uri: str = Field(max_length=2048)
    """Where it is."""
    digest: str = Field(max_length=80)
    """sha256 over its files (the model server refuses an artifact that does not match)."""


class DatasetRecord(ApiModel):
    """The data the version was trained on."""

    uri: str = Field(max_length=2048)
    """The dataset's location."""
    version: str | None = Field(default=None, max_length=64)
    """dataset.version as the spec said it."""
    format: str | None = Field(default=None, max_length=16)
    """csv or parquet."""
    digest: str = Field(default="", max_length=80)
    """sha256 of the data file (sha256:<hex>), selectable: kubectl get modelversions --field-selector
    spec.dataset.digest=sha256:..."""
    rows: int | None = Field(default=None, ge=0)
    """Rows read."""
    target: str | None = Field(default=None, max_length=128)
    """The target column."""
    features: list[Feature] = Field(default_factory=list, max_length=512)
    """The feature schema (name and type, in order), when known."""


class ModelVersionSpec(ApiModel):
    """What the version is: written once when it is trained."""

    model_ref: ModelRecordRef
    """The MLModel it belongs to."""
    version: int = Field(ge=1)
    """Its version number."""
    training_job: str = Field(max_length=253)
    """The TrainingJob that produced it (it may since have been deleted)."""
    reason: str | None = Field(default=None, max_length=32)
    """Why it was trained: initial, spec-change, dataset, drift or manual."""
    cached_from: str | None = Field(default=None, max_length=253)
    """The earlier run whose artifact it reuses, on a training cache hit."""
    fingerprint: str | None = Field(default=None, max_length=80)
    """Fingerprint of the training inputs."""
    trained_at: Timestamp | None = None
    """When training finished."""
    framework: Framework
    """sklearn or pytorch."""
    task: Task
    """classification or regression."""
    dataset: DatasetRecord
    """Lineage: the data."""
    training: FreeForm = Field(default_factory=dict)
    """The training configuration as the run had it (estimator, hyperparameters, validation, resources)."""
    artifact: ArtifactRecord
    """The artifact."""
    metrics: dict[str, float] = Field(default_factory=dict, max_length=16, json_schema_extra={"maxProperties": 16})
    """Hold-out metrics."""
    libraries: dict[str, LibraryVersion] = Field(
        default_factory=dict, max_length=16, json_schema_extra={"maxProperties": 16}
    )
    """Library versions that trained it."""
    documentation: Documentation = Field(default_factory=Documentation)
    """Owner, risk class, description and intended use when it was trained."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "self == oldSelf",
                    "a ModelVersion record is immutable: its spec cannot change after creation",
                    reason="FieldValueForbidden",
                )
            ]
        }
    }


class ServingInterval(ApiModel):
    """A span of time the version was the one served."""

    start: Timestamp
    """When it started serving."""
    end: Timestamp | None = None
    """When it stopped (absent while it serves)."""
    replaced_by: int | None = Field(default=None, ge=1)
    """The version served after it, when another one took over."""


class ModelVersionStatus(ApiModel):
    """What happened to the version after it was trained."""

    observed_generation: int | None = None
    """The .metadata.generation this status was computed from."""
    state: RecordState | None = None
    """Trained, Rejected, Approved, Serving or Retired (printer column; the fields below are the record)."""
    approved_by: str | None = Field(default=None, max_length=512)
    """Who approved it (riskClass high), from the approval request itself."""
    approved_at: Timestamp | None = None
    """When that approval was recorded."""
    rejected_reason: str | None = Field(default=None, max_length=1024)
    """Why it may not be served (below validation.minScore, or its rollout failed and was rolled back)."""
    rejected_at: Timestamp | None = None
    """When it was judged so."""
    serving: list[ServingInterval] = Field(default_factory=list, max_length=100)
    """When it was served, oldest first."""
    retired_at: Timestamp | None = None
    """When a newer version took its place for good, or its model was deleted."""
    model_deleted_at: Timestamp | None = None
    """When its MLModel was seen deleted (records kept after deletion only)."""


class ModelVersion(ApiModel):
    """The durable record of one trained version of an MLModel."""

    api_version: Literal["modelfleet.io/v1alpha1"] = "modelfleet.io/v1alpha1"
    kind: Literal["ModelVersion"] = "ModelVersion"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)

    model_config = {"extra": "ignore"}
