"""TrainingJob: one training run, reconciled into a batch/v1 Job."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelfleet.api.v1alpha1.common import ApiModel, Conditions, LibraryVersion, LocalObjectReference, Timestamp, cel
from modelfleet.api.v1alpha1.shared import (
    TRAINING_RULES,
    Documentation,
    DriftReference,
    Feature,
    SecretName,
    StorageUri,
    TrainingSpec,
)

TrainingReason = Literal["initial", "spec-change", "dataset", "drift", "manual"]


class Output(ApiModel):
    """Where the artifact of this run goes."""

    uri: StorageUri
    """Artifact location, e.g. pvc://model-store/fraud/v3 or s3://models/fraud/v3."""
    secret_name: SecretName | None = None
    """For s3:// and gs:// locations (the artifact's and the dataset's): a Secret in this namespace whose
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (HMAC keys for gs://; and optional AWS_ENDPOINT_URL, AWS_REGION) the
    training pod gets (default: the operator's)."""


class TrainingJobSpec(TrainingSpec):
    """One training run."""

    model_ref: LocalObjectReference | None = None
    """The MLModel this run belongs to (optional: a TrainingJob can run on its own)."""
    output: Output | None = None
    """Where the artifact goes (default: derived from the operator's artifact storage)."""
    reason: TrainingReason = "manual"
    """Why it runs: initial, spec-change, dataset, drift or manual."""
    documentation: Documentation | None = None
    """What the model card written into the artifact says about the model (the MLModel's owner, risk class,
    description and intended use); not part of the training fingerprint."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                *TRAINING_RULES,
                cel(
                    "self == oldSelf",
                    "a TrainingJob's spec is immutable; create a new TrainingJob instead",
                    reason="FieldValueForbidden",
                ),
            ]
        }
    }


class TrainingResult(ApiModel):
    """What a successful run produced (from the trainer's termination message)."""

    metrics: dict[str, float] = Field(default_factory=dict, max_length=16, json_schema_extra={"maxProperties": 16})
    """Hold-out metrics."""
    artifact_uri: str | None = Field(default=None, max_length=2048)
    """Where the artifact is."""
    artifact_digest: str | None = Field(default=None, max_length=80)
    """sha256 over the artifact directory."""
    dataset_digest: str | None = Field(default=None, max_length=80)
    """sha256 of the data."""
    rows: int | None = Field(default=None, ge=0)
    """Rows in the dataset."""
    duration_seconds: float | None = Field(default=None, ge=0)
    """Wall time of the training."""
    drift_reference: DriftReference | None = None
    """The drift reference the run's profile provides."""
    features: list[Feature] | None = Field(default=None, max_length=512)
    """The input columns read from the data, when dataset.features was omitted (left out when too many for the
    termination message; the artifact's metadata.json always lists them)."""
    libraries: dict[str, LibraryVersion] = Field(
        default_factory=dict, max_length=16, json_schema_extra={"maxProperties": 16}
    )
    """Versions of the libraries that trained it (python, scikit-learn, torch, ...)."""


class TrainingUtilization(ApiModel):
    """GPU use of a finished run."""

    gpu_percent: float | None = None
    """Average utilisation of the run's GPUs over its duration, in percent."""
    gpu_hours: float | None = Field(default=None, ge=0)
    """GPU-hours allocated to the run (gpuSeconds / 3600)."""


class TrainingJobStatus(ApiModel):
    """The observed state of a training run."""

    observed_generation: int | None = None
    """The .metadata.generation this status was computed from."""
    conditions: Conditions = Field(default_factory=list)
    """Queued, Running, Succeeded, Failed, CacheHit."""
    phase: str | None = Field(default=None, max_length=32)
    """A one-word summary for humans (printer column only)."""
    job_name: str | None = Field(default=None, max_length=63)
    """The batch/v1 Job running it."""
    start_time: Timestamp | None = None
    """When the Job started."""
    completion_time: Timestamp | None = None
    """When it finished."""
    attempts: int | None = Field(default=None, ge=0)
    """Pods started so far."""
    fingerprint: str | None = Field(default=None, max_length=80)
    """Hash of everything that changes the result; equal fingerprints reuse a succeeded run."""
    cached_from: str | None = Field(default=None, max_length=253)
    """The succeeded TrainingJob whose result was reused."""
    result: TrainingResult | None = None
    """What the run produced."""
    gpu_seconds: float | None = Field(default=None, ge=0)
    """GPU-seconds: the number of GPUs times the seconds from start to finish."""
    utilization: TrainingUtilization | None = None
    """GPU use of the run, read from Prometheus (DCGM exporter) when it finished."""


class TrainingJob(ApiModel):
    """One training run, reconciled into a batch/v1 Job."""

    api_version: Literal["modelfleet.io/v1alpha1"] = "modelfleet.io/v1alpha1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus = Field(default_factory=TrainingJobStatus)

    model_config = {"extra": "ignore"}
