"""MLModel: a model, its owner and risk class, its data, how to train it and how to serve it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelfleet.api.v1alpha1.common import ApiModel, Conditions, Duration, Name, Quantity, Timestamp, cel
from modelfleet.api.v1alpha1.shared import (
    DOC_TEXT,
    TRAINING_RULES,
    DriftReference,
    Feature,
    GpuResource,
    Placement,
    RiskClass,
    SecretName,
    Statistic,
    StorageUri,
    TrainingSpec,
)


class Owner(ApiModel):
    """Who answers for the model."""

    team: Name
    """Owning team (also used as a label on every child object and in cost reports)."""
    contact: str | None = Field(
        default=None, min_length=3, max_length=254, pattern=r"^([^@\s]+@[^@\s]+\.[^@\s]+|https?://\S+)$"
    )
    """E-mail address or URL of the people responsible; required when riskClass is high."""
    cost_center: str | None = Field(default=None, max_length=64)
    """Cost centre that pays for the model's training and serving."""


class ServingResources(ApiModel):
    """Compute for one serving pod."""

    cpu: Quantity = "500m"
    """CPU request (and limit) of a serving pod."""
    memory: Quantity = "1Gi"
    """Memory request and limit of a serving pod."""
    gpu: int = Field(default=0, ge=0, le=8)
    """Whole GPUs per serving pod, requested as a limit of gpuResource."""
    gpu_resource: GpuResource = "nvidia.com/gpu"
    """Extended resource name of the GPU (nvidia.com/gpu, amd.com/gpu, or a MIG profile)."""


DEFAULT_DRIFT_STATISTICS: tuple[Statistic, ...] = ("psi", "ks")


class DriftMonitoring(ApiModel):
    """What the model server measures for drift (read by DriftPolicies)."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minRows) || !has(self.windowRows) || self.minRows <= self.windowRows",
                    "minRows must not exceed windowRows (the window would never hold enough rows to export drift)",
                    ".minRows",
                )
            ]
        }
    }

    statistics: list[Statistic] = Field(
        default_factory=lambda: list(DEFAULT_DRIFT_STATISTICS),
        max_length=2,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """At most two statistics per feature (bounded series): psi, ks, jensenshannon, wasserstein; empty: off."""
    window_rows: int = Field(default=10_000, ge=100, le=1_000_000)
    """The sliding window: statistics cover the last this-many rows."""
    min_rows: int = Field(default=500, ge=10, le=100_000)
    """No drift values are exported while the window holds fewer rows. The default keeps false alarms at PSI 0.2
    under 1 % for references of 100 rows or more (bench/drift/calibration.py); smaller windows are noisier."""
    psi_bins: int = Field(default=10, ge=2, le=20)
    """At most this many equal-mass PSI bins (the peers' 10 by default); small references use fewer (at least 20
    reference rows a bin), and the count is rounded down to a divisor of the profile's 40 quantile bins."""


class CanaryAnalysis(ApiModel):
    """What a canary step must show, from the gateway's series in Prometheus over the step's interval."""

    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    """Most the new version's error ratio (5xx, and 4xx other than 404, among its answers) may exceed the serving
    version's over one interval (0.01: one percentage point)."""
    max_p99_ms: float | None = Field(default=None, gt=0)
    """Most the new version's p99 latency at the gateway may be over one interval (unset: not checked)."""
    min_requests: int = Field(default=20, ge=1, le=1_000_000)
    """Fewer answers from the new version in an interval: no verdict, the step waits another interval."""


class Rollout(ApiModel):
    """How a new version replaces the serving one."""

    strategy: Literal["RollingUpdate", "Canary"] = "RollingUpdate"
    """RollingUpdate: the Deployment's own rolling update (the default). Canary: the new version runs beside the
    serving one and gets steps[i] percent of the traffic through the ModelFleet gateway; after each interval the
    operator reads both versions' figures and goes to the next step, or rolls back."""
    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        min_length=1,
        max_length=10,
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 100}},
    )
    """Percent of traffic to the new version at each step, increasing, ending at 100."""
    interval: Duration = "1m"
    """Time at each step before its analysis."""
    analysis: CanaryAnalysis = Field(default_factory=CanaryAnalysis)
    """What each step must show to go on."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.steps) || self.steps[size(self.steps) - 1] == 100",
                    "the last step must be 100",
                    ".steps",
                ),
                cel(
                    "!has(self.steps) || (self.steps.isSorted() && "
                    "self.steps.all(x, self.steps.indexOf(x) == self.steps.lastIndexOf(x)))",
                    "steps must be increasing",
                    ".steps",
                ),
            ]
        }
    }


class Serving(Placement):
    """How the promoted version is served."""

    min_replicas: int = Field(default=1, ge=0, le=100)
    """Fewest serving pods; 0 scales to zero after idleAfter without requests."""
    max_replicas: int = Field(default=1, ge=1, le=100)
    """Most serving pods; above minReplicas a HorizontalPodAutoscaler scales on CPU."""
    resources: ServingResources = Field(default_factory=ServingResources)
    """Compute for each serving pod."""
    idle_after: Duration = "30m"
    """With minReplicas 0: scale to zero after this long without requests."""
    cold_start_timeout: Duration = "60s"
    """How long the ModelFleet gateway holds a request while the model has no ready pod (at zero, or starting)
    before it answers 503 with Retry-After."""
    approved_version: int | None = Field(default=None, ge=1)
    """For riskClass high: the version a human approved; only that version is served."""
    drift_monitoring: DriftMonitoring = Field(default_factory=DriftMonitoring)
    """What the server measures for drift."""
    workers: int = Field(default=1, ge=1, le=16)
    """Server processes per pod, sharing its port (the model is loaded once and shared copy-on-write)."""
    rollout: Rollout = Field(default_factory=Rollout)
    """How a new version replaces the serving one: the Deployment's rolling update, or a canary through the
    gateway."""
    allow_pickle: bool = False
    """Let the server load a scikit-learn model.joblib/model.pkl from the artifact (pickle runs code when loaded).
    Only ever with the version's digest pinned, which the operator always passes."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "minReplicas must be less than or equal to maxReplicas",
                    ".minReplicas",
                ),
            ]
        }
    }


class Artifacts(ApiModel):
    """Where trained versions are stored."""

    uri: StorageUri
    """Base location of the versions, e.g. pvc://model-store/fraud or s3://models/fraud (defaults to the operator's
    setting)."""
    secret_name: SecretName | None = None
    """For s3:// and gs:// locations: a Secret in this namespace whose AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (HMAC
    keys for gs://; and optional AWS_ENDPOINT_URL, AWS_REGION) training and serving pods get (default: the
    operator's)."""


class MLModelSpec(TrainingSpec):
    """The desired state of a model."""

    owner: Owner
    """Who owns the model."""
    risk_class: RiskClass = "minimal"
    """EU AI Act risk class: minimal, limited or high. High means every new version waits for approval."""
    serving: Serving = Field(default_factory=Serving)
    """How to serve the promoted version."""
    artifacts: Artifacts | None = None
    """Where versions are stored (default: the operator's artifact storage)."""
    description: str | None = Field(default=None, max_length=DOC_TEXT)
    """What the model does (its model card's summary)."""
    intended_use: str | None = Field(default=None, max_length=DOC_TEXT)
    """What the model is for and what it must not be used for (its model card's intended use)."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "self.riskClass != 'high' || has(self.owner.contact)",
                    "owner.contact is required when riskClass is high",
                    ".owner.contact",
                ),
                cel(
                    "self.riskClass == 'high' || !has(self.serving) || !has(self.serving.approvedVersion)",
                    "serving.approvedVersion applies to riskClass high only",
                    ".serving.approvedVersion",
                ),
                *TRAINING_RULES,
            ]
        }
    }


class TrainedVersion(ApiModel):
    """One trained version of the model."""

    number: int = Field(ge=1)
    """Version number, counting from 1."""
    training_job: str = Field(max_length=253)
    """The TrainingJob that produced it."""
    artifact_uri: str = Field(max_length=2048)
    """Where the artifact directory is."""
    artifact_digest: str = Field(max_length=80)
    """sha256 over the artifact directory's contents."""
    dataset_digest: str | None = Field(default=None, max_length=80)
    """sha256 of the data it was trained on."""
    metrics: dict[str, float] = Field(default_factory=dict, max_length=16, json_schema_extra={"maxProperties": 16})
    """Hold-out metrics."""
    reason: str | None = Field(default=None, max_length=32)
    """Why it was trained: initial, spec-change, dataset, drift or manual."""
    promotable: bool = True
    """False when it scored below validation.minScore."""
    fingerprint: str | None = Field(default=None, max_length=80)
    """Fingerprint of the training inputs that produced it."""
    rejected_reason: str | None = Field(default=None, max_length=1024)
    """Why it is not promotable (a score below validation.minScore, or pods that never became ready)."""
    created_at: Timestamp | None = None
    """When training finished."""
    drift_reference: DriftReference | None = None
    """The drift reference its training data provides (too small a reference: no built-in drift checks)."""
    features: list[Feature] | None = Field(default=None, max_length=512)
    """The input columns read from the data, when dataset.features was omitted (the v2 inputs, in order)."""
    approved_by: str | None = Field(default=None, max_length=512)
    """riskClass high: who set serving.approvedVersion to this version (the request's user, recorded by the
    modelfleet-approval admission policy in the annotation modelfleet.io/approved-by)."""
    approved_at: Timestamp | None = None
    """When the operator first saw that approval."""


class DriftSummary(ApiModel):
    """The latest drift evaluation, mirrored from the model's DriftPolicy."""

    score: float | None = None
    """Highest drift statistic over the features."""
    worst_feature: str | None = Field(default=None, max_length=128)
    """The feature with that score."""
    time: Timestamp | None = None
    """When it was evaluated."""


class Utilization(ApiModel):
    """Resource use read from Prometheus."""

    gpu_percent: float | None = None
    """Average GPU utilisation of the model's pods over the last window, in percent."""
    gpu_hours: float | None = None
    """GPU-hours used by training and serving so far."""
    request_rate: float | None = None
    """Requests per second over the last window."""
    last_request_time: Timestamp | None = None
    """When the last request was served."""
    observed_time: Timestamp | None = None
    """When these figures were read from Prometheus."""
    serving_gpu_seconds: float | None = Field(default=None, ge=0)
    """GPU-seconds of the serving pods so far (available replicas x GPUs each, as observed)."""
    scaled_to_zero_time: Timestamp | None = None
    """Set while serving is scaled to zero (minReplicas 0 and idle), since when."""
    active_since: Timestamp | None = None
    """The last scale-up request handled: idle time counts from here at the earliest."""
    scale_up_request: str | None = Field(default=None, max_length=256)
    """The value of the modelfleet.io/scale-up annotation last acted on."""


class CanaryStatus(ApiModel):
    """A canary in progress: the new version beside the serving one."""

    version: int = Field(ge=1)
    """The version on trial."""
    step: int = Field(ge=0)
    """Index into serving.rollout.steps."""
    weight: int = Field(ge=0, le=100)
    """Percent of the gateway's traffic it gets now."""
    step_start_time: Timestamp
    """When the current step (or its current interval) began."""
    message: str | None = Field(default=None, max_length=1024)
    """The last analysis, in words."""


class MLModelStatus(ApiModel):
    """The observed state of a model."""

    observed_generation: int | None = None
    """The .metadata.generation this status was computed from."""
    conditions: Conditions = Field(default_factory=list)
    """Ready, Trained, Serving, Approved, Drifted, Degraded."""
    phase: str | None = Field(default=None, max_length=32)
    """A one-word summary for humans (printer column only; never used for control flow)."""
    latest_version: TrainedVersion | None = None
    """The newest trained version."""
    serving_version: TrainedVersion | None = None
    """The version being served."""
    versions: list[TrainedVersion] = Field(default_factory=list, max_length=20)
    """The most recent versions, newest last (bounded)."""
    active_training_job: str | None = Field(default=None, max_length=253)
    """The TrainingJob running for this model now (at most one at a time)."""
    last_failed_training_job: str | None = Field(default=None, max_length=253)
    """The most recent TrainingJob that failed."""
    endpoint: str | None = Field(default=None, max_length=512)
    """URL of the inference endpoint."""
    canary: CanaryStatus | None = None
    """Set while a new version is on trial beside the serving one (serving.rollout.strategy Canary)."""
    drift: DriftSummary | None = None
    """Latest drift evaluation."""
    utilization: Utilization | None = None
    """Resource use."""


class MLModel(ApiModel):
    """A model, its owner and risk class, its dataset, how to train it and how to serve it."""

    api_version: Literal["modelfleet.io/v1alpha1"] = "modelfleet.io/v1alpha1"
    kind: Literal["MLModel"] = "MLModel"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: MLModelSpec
    status: MLModelStatus = Field(default_factory=MLModelStatus)

    model_config = {"extra": "ignore"}
