"""The serving objects of an MLModel: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget. Pure."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from modelfleet.api.v1alpha1.mlmodel import MLModelSpec, TrainedVersion
from modelfleet.artifact.objectstore import is_object_uri
from modelfleet.builders.training import (
    LABEL_MODEL,
    LABEL_TEAM,
    LABEL_VERSION,
    local_path,
    object_store_access,
    placement,
    restricted_security,
)
from modelfleet.config import OperatorConfig
from modelfleet.vocabulary import CANARY_COMPONENT, owner_reference, pvc_claim

SERVER_CONTAINER = "server"
SERVER_PORT = 8080
SERVICE_PORT = 80
GRPC_PORT = 8081  # Open Inference Protocol v2 over gRPC, on the pod and the Service (KServe's and MLServer's port)
DESIRED_HASH = "modelfleet.io/desired-hash"
# Ensembles cost nearly as much for one row as for thirty (per-tree overhead): their servers batch adaptively.
BATCHED_ESTIMATOR_PREFIX = "sklearn.ensemble."
MAX_BATCH_ROWS = 32


def serving_labels(name: str, team: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelfleet-server",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/part-of": "modelfleet",
        "app.kubernetes.io/managed-by": "modelfleet-operator",
        LABEL_MODEL: name,
        LABEL_TEAM: team,
    }


def selector(name: str) -> dict[str, str]:
    return {LABEL_MODEL: name, "app.kubernetes.io/component": "serving"}


def owner(name: str, uid: str) -> list[dict[str, Any]]:
    return [owner_reference("MLModel", name, uid)]


def endpoint(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local/v2/models/{name}/infer"


def server_args(name: str, spec: MLModelSpec, version: TrainedVersion, config: OperatorConfig) -> list[str]:
    """The server's command line: the artifact and its digest, batching, workers, drift statistics."""
    uri = version.artifact_uri
    return [
        "--artifact",
        # An s3:// or gs:// artifact is fetched by the server itself and verified before it is deserialised.
        uri if is_object_uri(uri) else local_path(uri, config.pvc_mount_root),
        "--model-name",
        name,
        "--model-version",
        str(version.number),
        "--expected-digest",
        version.artifact_digest,
        "--host",
        "$(POD_IP)",
        "--port",
        str(SERVER_PORT),
        "--grpc-port",
        str(GRPC_PORT),
        *(
            ["--max-batch-size", str(MAX_BATCH_ROWS)]
            if (spec.training.estimator or "").startswith(BATCHED_ESTIMATOR_PREFIX)
            else []
        ),
        *(["--allow-pickle"] if spec.serving.allow_pickle else []),
        *(["--workers", str(spec.serving.workers)] if spec.serving.workers > 1 else []),
        "--drift-statistics",
        ",".join(spec.serving.drift_monitoring.statistics),
        "--drift-window-rows",
        str(spec.serving.drift_monitoring.window_rows),
        "--drift-min-rows",
        str(spec.serving.drift_monitoring.min_rows),
        "--drift-psi-bins",
        str(spec.serving.drift_monitoring.psi_bins),
    ]


def server_container(
    name: str, spec: MLModelSpec, version: TrainedVersion, config: OperatorConfig, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The model server's container: its probes, resources, security and the artifact it serves."""
    res = spec.serving.resources
    limits: dict[str, str] = {"memory": str(res.memory)}
    if res.gpu:
        limits[res.gpu_resource] = str(res.gpu)
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2, "failureThreshold": 3}
    _, container_security = restricted_security()
    store = object_store_access([version.artifact_uri], spec.artifacts.secret_name if spec.artifacts else None, config)
    return {
        "name": SERVER_CONTAINER,
        "image": config.server_image,
        "command": ["python", "-m", "modelfleet.server"],
        "args": server_args(name, spec, version, config),
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOME", "value": "/tmp"},
            *store.get("env", []),
        ],
        **({"envFrom": store["envFrom"]} if "envFrom" in store else {}),
        "ports": [{"name": "http", "containerPort": SERVER_PORT}, {"name": "grpc", "containerPort": GRPC_PORT}],
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {**probe, "failureThreshold": 60},
        "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},  # let endpoints drop the pod first
        "terminationMessagePolicy": "FallbackToLogsOnError",  # the server's one-line reason
        "resources": {"requests": {"cpu": str(res.cpu), "memory": str(res.memory)}, "limits": limits},
        "volumeMounts": mounts,
        "securityContext": container_security,
    }


def desired_serving(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: MLModelSpec,
    version: TrainedVersion,
    config: OperatorConfig,
    pinned_replicas: int | None = None,
) -> list[dict[str, Any]]:
    """[Deployment, Service, (HPA), (PDB)] serving `version`. The Deployment carries a hash of all of them, so the
    operator re-applies only when something changed. `pinned_replicas` (scaled to zero when idle, or down to
    minReplicas while its GPUs idle) fixes the replica count and drops the HPA and the PDB."""
    serving = spec.serving
    labels = serving_labels(name, spec.owner.team)
    pod_labels = {**labels, LABEL_VERSION: str(version.number)}
    pod_security, _ = restricted_security()
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    claim = pvc_claim(version.artifact_uri)
    if claim:
        volumes.append({"name": "artifacts", "persistentVolumeClaim": {"claimName": claim[0], "readOnly": True}})
        mounts.append({"name": "artifacts", "mountPath": f"{config.pvc_mount_root}/{claim[0]}", "readOnly": True})
    res = serving.resources
    autoscaled = pinned_replicas is None and serving.max_replicas > max(serving.min_replicas, 1)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "progressDeadlineSeconds": 180,
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(SERVER_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security,
                "terminationGracePeriodSeconds": 30,
                "volumes": volumes,
                **placement(serving, res.gpu, res.gpu_resource),
                "containers": [server_container(name, spec, version, config, mounts)],
            },
        },
    }
    replicas = max(serving.min_replicas, 1) if pinned_replicas is None else pinned_replicas
    if not autoscaled:
        deployment_spec["replicas"] = replicas
    meta = {"namespace": namespace, "labels": labels, "ownerReferences": owner(name, uid)}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, **meta}, "spec": deployment_spec},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, **meta},
            "spec": {
                "selector": selector(name),
                "ports": [
                    {"name": "http", "port": SERVICE_PORT, "targetPort": "http"},
                    # appProtocol tells meshes and gateways (Istio, Gateway API GRPCRoute backends) it is HTTP/2 gRPC.
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"},
                ],
            },
        },
    ]
    if autoscaled:
        objects.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, **meta},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": max(serving.min_replicas, 1),
                    "maxReplicas": serving.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                        }
                    ],
                },
            }
        )
    if replicas >= 2:
        objects.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, **meta},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(name)}},
            }
        )
    digest = hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()[:16]
    objects[0]["metadata"]["annotations"] = {DESIRED_HASH: digest}
    return objects


def canary_name(name: str) -> str:
    return f"{name}-canary"


def desired_canary(
    *, name: str, namespace: str, uid: str, spec: MLModelSpec, version: TrainedVersion, config: OperatorConfig
) -> dict[str, Any]:
    """The Deployment of a canary (serving.rollout.strategy Canary): the model's serving Deployment for `version`,
    one replica, named <model>-canary, its pods labelled component=serving-canary so that the model's Service, PDB
    and Deployment (which select component=serving) never take them; the gateway sends them their share."""
    deployment = copy.deepcopy(
        desired_serving(
            name=name, namespace=namespace, uid=uid, spec=spec, version=version, config=config, pinned_replicas=1
        )[0]
    )
    deployment["metadata"]["name"] = canary_name(name)
    deployment["metadata"]["labels"]["app.kubernetes.io/component"] = CANARY_COMPONENT
    deployment["spec"]["selector"] = {
        "matchLabels": {LABEL_MODEL: name, "app.kubernetes.io/component": CANARY_COMPONENT}
    }
    deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] = CANARY_COMPONENT
    deployment["metadata"]["annotations"] = {}
    digest = hashlib.sha256(json.dumps(deployment, sort_keys=True).encode()).hexdigest()[:16]
    deployment["metadata"]["annotations"] = {DESIRED_HASH: digest}
    return deployment
