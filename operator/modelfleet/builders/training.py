"""The training Job: its fingerprint, its name and its manifest. Pure: no I/O, no clock, no randomness."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

from modelfleet.api.v1alpha1 import parse_duration
from modelfleet.api.v1alpha1.shared import Dataset, Placement, Training
from modelfleet.api.v1alpha1.trainingjob import TrainingJobSpec
from modelfleet.artifact.objectstore import is_object_uri
from modelfleet.config import OperatorConfig
from modelfleet.vocabulary import (
    LABEL_FINGERPRINT,
    LABEL_MODEL,
    LABEL_TEAM,
    LABEL_TRAININGJOB,
    LABEL_VERSION,
    owner_reference,
    pvc_claim,
)

__all__ = ["LABEL_FINGERPRINT", "LABEL_MODEL", "LABEL_TEAM", "LABEL_TRAININGJOB", "LABEL_VERSION"]

TRAINER_CONTAINER = "trainer"
INVALID_INPUT_EXIT_CODE = 2  # the trainer's exit code for bad data or spec: retrying cannot help
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"  # a WorkloadPriorityClass's name
RUNTIME_UID = 65532
SCRATCH_ARTIFACT = "/tmp/artifact"  # on the pod's emptyDir: where an artifact bound for object storage is built


class UnsupportedUri(ValueError):
    """A URI the training Job cannot use as its output (e.g. an https:// location)."""


def training_fingerprint(
    framework: str, task: str, dataset: Dataset, training: Training, trainer_image: str, salt: str = ""
) -> str:
    """sha256 over everything that changes the trained result: framework, task, estimator, hyperparameters, the
    dataset's location, version, format, target and features, the hold-out split and the trainer image. Not the
    resources, placement, queue or promotion rules (they do not change the model). `salt` forces a new run (drift
    retraining must never reuse an earlier result)."""
    payload = {
        "framework": framework,
        "task": task,
        "dataset": {
            "uri": dataset.uri,
            "version": dataset.version,
            "format": dataset.format,
            "target": dataset.target,
            "features": [[f.name, f.type] for f in dataset.features or ()],
        },
        "estimator": training.estimator,
        "hyperparameters": training.hyperparameters,
        "split": training.validation.split,
        "trainerImage": trainer_image,
        "salt": salt,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def job_name(trainingjob_name: str, fingerprint: str) -> str:
    """Deterministic and at most 63 characters (the Job controller copies it into a label)."""
    return f"{trainingjob_name[:52].rstrip('-.')}-{fingerprint[:10]}"


def training_labels(trainingjob: str, labels: dict[str, str], fingerprint: str) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "modelfleet-trainer",
        "app.kubernetes.io/instance": trainingjob[:63],
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/part-of": "modelfleet",
        "app.kubernetes.io/managed-by": "modelfleet-operator",
        LABEL_TRAININGJOB: trainingjob[:63],
        LABEL_FINGERPRINT: fingerprint[:40],
    }
    for key in (LABEL_MODEL, LABEL_VERSION, LABEL_TEAM):
        if labels.get(key):
            out[key] = labels[key]
    return out


def local_path(uri: str, mount_root: str) -> str:
    """Where a pod sees `uri` (pvc:// claims are mounted under mount_root; file:// is taken as is; an s3:// or gs://
    artifact is built in the pod's scratch space, then uploaded)."""
    claim = pvc_claim(uri)
    if claim:
        return f"{mount_root}/{claim[0]}/{claim[1]}".rstrip("/")
    if uri.startswith("file://"):
        return urllib.parse.urlparse(uri).path
    if is_object_uri(uri):
        return SCRATCH_ARTIFACT
    raise UnsupportedUri(f"{uri}: training output must be a pvc://, s3://, gs:// or file:// location")


def object_store_access(uris: Sequence[str], secret_name: str | None, config: OperatorConfig) -> dict[str, Any]:
    """The container fields that let a pod reach the s3:// and gs:// locations among `uris`: the Secret's AWS_* keys
    (envFrom; HMAC keys for gs://) and the operator's S3 endpoint. A spec that names its own Secret gets no endpoint
    from the operator (its Secret's AWS_ENDPOINT_URL, or AWS's), since `env` would override what the Secret says.
    gs:// locations ignore S3 endpoints: they go to Google's."""
    if not any(is_object_uri(u) for u in uris):
        return {}
    out: dict[str, Any] = {}
    secret = secret_name or config.s3_secret_name
    if secret:
        out["envFrom"] = [{"secretRef": {"name": secret}}]
    if not secret_name and config.s3_endpoint:
        out["env"] = [{"name": "AWS_ENDPOINT_URL", "value": config.s3_endpoint}]
    return out


def placement(spec: Placement, gpus: int, gpu_resource: str) -> dict[str, Any]:
    """The Pod spec's placement fields. Pods asking for GPUs tolerate the GPU resource's NoSchedule taint (the taint
    the NVIDIA GPU operator, GKE and AKS put on GPU nodes) unless the spec lists its own tolerations."""
    out: dict[str, Any] = {}
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations is not None:
        if spec.tolerations:
            out["tolerations"] = [t.wire() for t in spec.tolerations]
    elif gpus > 0:
        out["tolerations"] = [{"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"}]
    if spec.affinity is not None and spec.affinity.wire():  # the schema's default {} is no affinity at all
        out["affinity"] = spec.affinity.wire()
    if spec.priority_class_name:
        out["priorityClassName"] = spec.priority_class_name
    return out


def restricted_security() -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, container) security contexts that pass the Kubernetes "restricted" Pod Security Standard."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "fsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def desired_training_job(
    *,
    name: str,
    namespace: str,
    uid: str,
    labels: dict[str, str],
    spec: TrainingJobSpec,
    output_uri: str,
    fingerprint: str,
    config: OperatorConfig,
) -> dict[str, Any]:
    """The batch/v1 Job that runs one TrainingJob."""
    training = spec.training
    res = training.resources
    job_labels = training_labels(name, labels, fingerprint)
    claims: dict[str, bool] = {}  # claim -> read-only
    data_claim, out_claim = pvc_claim(spec.dataset.uri), pvc_claim(output_uri)
    if data_claim:
        claims[data_claim[0]] = True
    if out_claim:
        claims[out_claim[0]] = False
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    for i, (claim, read_only) in enumerate(sorted(claims.items())):
        volumes.append({"name": f"pvc-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}})
        mounts.append({"name": f"pvc-{i}", "mountPath": f"{config.pvc_mount_root}/{claim}", "readOnly": read_only})
    requests = {"cpu": str(res.cpu), "memory": str(res.memory)}
    limits: dict[str, str] = {"memory": str(res.memory)}
    if res.gpu > 0:
        limits[res.gpu_resource] = str(res.gpu)  # extended resources: limit only, request defaults to it
    pod_security, container_security = restricted_security()
    store = object_store_access(
        [spec.dataset.uri, output_uri], spec.output.secret_name if spec.output else None, config
    )
    trainer_spec: dict[str, Any] = {
        "framework": spec.framework,
        "task": spec.task,
        "dataset": spec.dataset.wire(),
        "training": training.wire(),
    }
    if spec.model_ref is not None:  # for the model card the trainer writes into the artifact
        trainer_spec["modelRef"] = spec.model_ref.wire()
    if spec.documentation is not None:
        trainer_spec["documentation"] = spec.documentation.wire()
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # results travel through the termination message
        "enableServiceLinks": False,
        "securityContext": pod_security,
        "volumes": volumes,
        "containers": [
            {
                "name": TRAINER_CONTAINER,
                "image": config.trainer_image,
                "command": ["python", "-m", "modelfleet.trainer"],
                "args": ["--output-dir", local_path(output_uri, config.pvc_mount_root), "--output-uri", output_uri],
                "env": [
                    {"name": "MODELFLEET_TRAINING_SPEC", "value": json.dumps(trainer_spec, separators=(",", ":"))},
                    {"name": "MODELFLEET_PVC_ROOT", "value": config.pvc_mount_root},
                    {"name": "MODELFLEET_ALLOWED_ESTIMATORS", "value": ",".join(config.allowed_estimators)},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    {"name": "HOME", "value": "/tmp"},
                    *store.get("env", []),
                ],
                **({"envFrom": store["envFrom"]} if "envFrom" in store else {}),
                "resources": {"requests": requests, "limits": limits},
                "volumeMounts": mounts,
                "securityContext": container_security,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
    }
    pod_spec.update(placement(training, res.gpu, res.gpu_resource))
    job_spec: dict[str, Any] = {
        "backoffLimit": training.max_retries,
        "activeDeadlineSeconds": max(1, int(parse_duration(training.timeout))),
        "ttlSecondsAfterFinished": config.job_ttl_seconds,
        "completions": 1,
        "parallelism": 1,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": TRAINER_CONTAINER,
                        "operator": "In",
                        "values": [INVALID_INPUT_EXIT_CODE],
                    },
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
        "template": {
            "metadata": {
                "labels": dict(job_labels),
                "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
            },
            "spec": pod_spec,
        },
    }
    metadata_labels = dict(job_labels)
    if training.queue_name:
        metadata_labels[KUEUE_QUEUE_LABEL] = training.queue_name
        job_spec["suspend"] = True  # Kueue admits it by unsuspending; we never touch suspend again
    if training.workload_priority_class:
        metadata_labels[KUEUE_PRIORITY_LABEL] = training.workload_priority_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, fingerprint),
            "namespace": namespace,
            "labels": metadata_labels,
            "ownerReferences": [owner_reference("TrainingJob", name, uid)],
        },
        "spec": job_spec,
    }
