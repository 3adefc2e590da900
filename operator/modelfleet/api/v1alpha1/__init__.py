"""modelfleet.io/v1alpha1."""

from modelfleet.api.v1alpha1.common import API_VERSION, GROUP, VERSION, Condition, parse_duration
from modelfleet.api.v1alpha1.driftpolicy import DriftPolicy, DriftPolicySpec, DriftPolicyStatus
from modelfleet.api.v1alpha1.mlmodel import MLModel, MLModelSpec, MLModelStatus, TrainedVersion
from modelfleet.api.v1alpha1.modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from modelfleet.api.v1alpha1.trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "DriftPolicy",
    "DriftPolicySpec",
    "DriftPolicyStatus",
    "MLModel",
    "MLModelSpec",
    "MLModelStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "TrainedVersion",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "parse_duration",
]
