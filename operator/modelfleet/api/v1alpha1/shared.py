"""Spec blocks shared by MLModel and TrainingJob: the dataset and how to train."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, model_validator

from modelfleet.api.v1alpha1.common import ApiModel, Duration, HyperValue, Quantity, cel

DATASET_SCHEMES = ("file", "pvc", "s3", "gs", "https")
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
BUILTIN_TORCH_ARCHITECTURES = ("mlp",)

Framework = Literal["sklearn", "pytorch"]
Statistic = Literal["psi", "ks", "jensenshannon", "wasserstein"]
"""Drift statistics the model server computes per feature."""
Task = Literal["classification", "regression"]


StorageUri = Annotated[
    str,
    Field(
        min_length=6,
        max_length=2048,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.matches('^(pvc|s3|gs|file)://.+')", "must start with pvc://<claim>/, s3://, gs:// or file://"
                ),
                cel(
                    "!self.matches('(^|/)[.][.](/|$)')",
                    "must not contain a '..' path segment (it would leave the claim)",
                ),
            ]
        },
    ),
]
"""Where artifacts live: pvc://<claim>/<path>, s3://, gs:// or file://."""

SecretName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]
"""The name of a Secret in the object's namespace."""


class Feature(ApiModel):
    """One input column of the model."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    """Column name in the dataset (letters, digits, `_`, `.`, `-`; starts with a letter or `_`)."""
    type: Literal["numeric", "categorical"] = "numeric"
    """numeric (floats and integers) or categorical (strings, one-hot encoded by the trainer)."""


class Dataset(ApiModel):
    """Where the training data lives and what it contains."""

    uri: str = Field(
        min_length=8,
        max_length=2048,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.matches('^(file|pvc|s3|gs|https)://.+')",
                    "must start with file://, pvc://<claim>/, s3://, gs:// or https://",
                ),
                cel(
                    "!self.matches('(^|/)[.][.](/|$)')",
                    "must not contain a '..' path segment (it would leave the claim)",
                ),
            ]
        },
    )
    """Location of the data: file:///path, pvc://<claim>/<path>, s3://bucket/key, gs://bucket/key or https://..."""
    format: Literal["csv", "parquet"] = "csv"
    """File format."""
    target: str = Field(min_length=1, max_length=128)
    """The column to predict."""
    features: list[Feature] | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Input columns to train on (at most 512, names unique). Omitted: every column but the target, typed from the
    data (numbers: numeric; text: categorical), recorded in the version's status and the artifact's metadata."""
    version: str = Field(default="1", min_length=1, max_length=64)
    """Version label of the data; changing it retrains the model on the data as it is now."""


GpuResource = Annotated[
    str, Field(max_length=128, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
]
"""An extended resource name such as nvidia.com/gpu."""


class ComputeResources(ApiModel):
    """Compute for one training or serving pod."""

    cpu: Quantity = "1"
    """CPU request and limit (e.g. 2 or 500m)."""
    memory: Quantity = "2Gi"
    """Memory request and limit (e.g. 4Gi)."""
    gpu: int = Field(default=0, ge=0, le=64)
    """Whole GPUs, requested as a limit of gpuResource (extended resources are whole numbers)."""
    gpu_resource: GpuResource = "nvidia.com/gpu"
    """Extended resource name of the GPU (nvidia.com/gpu, amd.com/gpu, or a MIG profile such as
    nvidia.com/mig-1g.10gb)."""


class Toleration(ApiModel):
    """A Kubernetes toleration for the pods."""

    key: str | None = Field(default=None, max_length=253)
    """Taint key; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists or Equal."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears."""


FreeForm = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})]
"""A block of a Kubernetes type passed on as written (the API server validates it when the operator applies it)."""


class Affinity(ApiModel):
    """The Pod spec's affinity (core/v1 Affinity), passed to the pods as written."""

    node_affinity: FreeForm | None = None
    """Node affinity rules (requiredDuringSchedulingIgnoredDuringExecution, preferred...)."""
    pod_affinity: FreeForm | None = None
    """Pod affinity rules."""
    pod_anti_affinity: FreeForm | None = None
    """Pod anti-affinity rules (e.g. spread replicas over nodes or zones)."""


class Placement(ApiModel):
    """Where the pods may run: the Pod spec's placement fields."""

    node_selector: Annotated[dict[str, Annotated[str, Field(max_length=63)]], Field(max_length=32)] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 32}
    )
    """Node labels the pods must match."""
    tolerations: list[Toleration] | None = Field(default=None, max_length=16)
    """Tolerations of the pods. Omitted with GPUs requested: the GPU resource's taint (e.g. nvidia.com/gpu:NoSchedule)
    is tolerated; given: exactly these (add the GPU taint's toleration yourself)."""
    affinity: Affinity | None = None
    """Node and pod affinity, as in a Pod spec."""
    priority_class_name: str | None = Field(default=None, max_length=253)
    """PriorityClass of the pods."""


class Validation(ApiModel):
    """How a trained version is evaluated and when it may be promoted."""

    split: float = Field(default=0.2, gt=0, le=0.5)
    """Fraction of rows held out for evaluation, in (0, 0.5]."""
    metric: Literal["accuracy", "f1", "roc_auc", "rmse", "mae", "r2"] | None = None
    """Metric that decides promotion (classification: accuracy, f1, roc_auc; regression: rmse, mae, r2)."""
    min_score: float | None = None
    """A version scoring below this (above it, for rmse and mae) is recorded but never promoted."""


class Training(Placement):
    """How to train the model."""

    estimator: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
    )
    """scikit-learn: an import path under the operator's allow-list (e.g. sklearn.linear_model.LogisticRegression);
    pytorch: a built-in architecture (mlp). Omitted: sklearn.ensemble.RandomForestClassifier or
    RandomForestRegressor for the task (pytorch: mlp)."""
    hyperparameters: dict[str, HyperValue] = Field(
        default_factory=dict, max_length=64, json_schema_extra={"maxProperties": 64}
    )
    """Flat map of scalar hyperparameters passed to the estimator (unknown names fail the training)."""
    resources: ComputeResources = Field(default_factory=ComputeResources)
    """Compute for the training pod."""
    queue_name: str | None = Field(default=None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Kueue LocalQueue; when set the Job is created suspended and Kueue admits it."""
    workload_priority_class: str | None = Field(
        default=None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """Kueue WorkloadPriorityClass of the run (the Job's kueue.x-k8s.io/priority-class label): its place in the
    queue, and which admitted runs it may preempt. Does not change the fingerprint."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of a failed training pod (the Job's backoffLimit)."""
    timeout: Duration = "2h"
    """Wall-clock limit of one training run (the Job's activeDeadlineSeconds)."""
    validation: Validation = Field(default_factory=Validation)
    """Evaluation and promotion rules."""


DEFAULT_ESTIMATORS = {
    ("sklearn", "classification"): "sklearn.ensemble.RandomForestClassifier",
    ("sklearn", "regression"): "sklearn.ensemble.RandomForestRegressor",
    ("pytorch", "classification"): "mlp",
    ("pytorch", "regression"): "mlp",
}
"""What trains when training.estimator is omitted: a random forest needs no scaling or tuning to be a sound first
model on tabular data (pytorch has one architecture)."""


class TrainingSpec(ApiModel):
    """What MLModel and TrainingJob specs share: the framework, the task, the data and how to train."""

    framework: Framework
    """sklearn or pytorch."""
    task: Task
    """classification or regression."""
    dataset: Dataset
    """The training data."""
    training: Training = Field(default_factory=Training)
    """How to train (omitted: the default estimator for the framework and task, default resources)."""

    @model_validator(mode="after")
    def _default_estimator(self) -> TrainingSpec:
        # Resolved here, once, so every reader (fingerprint, the trainer, the TrainingJob a model creates) sees the
        # estimator that actually trains; the operator never writes it back into the spec (no GitOps drift).
        if self.training.estimator is None:
            self.training.estimator = DEFAULT_ESTIMATORS[(self.framework, self.task)]
        return self


# Cross-field rules shared by MLModel and TrainingJob specs (both have framework, task and training).
TRAINING_RULES = [
    cel(
        "self.framework != 'pytorch' || !has(self.training.estimator) || self.training.estimator in ['mlp']",
        "framework pytorch supports the built-in architecture: mlp",
        ".training.estimator",
    ),
    cel(
        "self.framework != 'sklearn' || !has(self.training.estimator) "
        "|| self.training.estimator.startsWith('sklearn.')",
        "framework sklearn needs an estimator import path under sklearn.",
        ".training.estimator",
    ),
    cel(
        "!has(self.training.resources) || !has(self.training.resources.gpu) || self.training.resources.gpu == 0 "
        "|| self.framework == 'pytorch'",
        "training.resources.gpu > 0 requires framework pytorch: scikit-learn estimators run on the CPU only",
        ".training.resources.gpu",
    ),
    cel(
        "!has(self.training.validation) || !has(self.training.validation.metric) || "
        "(self.task == 'classification' ? self.training.validation.metric in ['accuracy', 'f1', 'roc_auc'] "
        ": self.training.validation.metric in ['rmse', 'mae', 'r2'])",
        "validation.metric must suit the task: accuracy, f1 or roc_auc for classification; rmse, mae or r2 for "
        "regression",
        ".training.validation.metric",
    ),
]


RiskClass = Literal["minimal", "limited", "high"]
DOC_TEXT = 4096


class Documentation(ApiModel):
    """What a model card says about the model beyond its training (copied from the MLModel onto each run)."""

    team: str | None = Field(default=None, max_length=63)
    """The owning team."""
    contact: str | None = Field(default=None, max_length=254)
    """Who answers for it (e-mail address or URL)."""
    risk_class: RiskClass | None = None
    """EU AI Act risk class at the time of training."""
    description: str | None = Field(default=None, max_length=DOC_TEXT)
    """What the model does."""
    intended_use: str | None = Field(default=None, max_length=DOC_TEXT)
    """What it is for, and what it must not be used for."""


class DriftReference(ApiModel):
    """How well the training data can serve as the drift reference (from the trainer's profile)."""

    rows: int = Field(ge=0)
    """Finite values of the numeric feature with the fewest (the rows, when nothing is missing)."""
    psi_bins: int = Field(ge=0, le=64)
    """Equal-mass PSI bins the reference supports (10 at 200 rows or more, fewer below; 0: too small)."""
    insufficient: str | None = Field(default=None, max_length=512)
    """Set when the reference is too small to measure drift honestly: built-in drift checks evaluate to Unknown."""
