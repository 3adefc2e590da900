"""The executor's Node: registration and heartbeats (a Lease renewed every 10 s, node status every minute), so the
node lifecycle controller sees it as a healthy kubelet's node."""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from typing import Any

from kubernetes.client import CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from modelfleet.devcluster.executor.podstatus import rfc3339

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
STATUS_EVERY = 60.0
EXECUTOR_LABEL = "modelfleet.io/executor"


def _micro(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def desired_node(name: str, gpus: int, gpu_resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    """The Node object the executor registers. GPUs are advertised only when asked (the demo's CPU-backed GPU)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        EXECUTOR_LABEL: "true",
        "type": "local-executor",
    }
    if gpus:
        labels["nvidia.com/gpu.present"] = "true"
        labels["nvidia.com/gpu.count"] = str(gpus)
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {}}


def desired_node_status(
    host_ip: str,
    gpus: int,
    kubelet_version: str,
    now: datetime.datetime,
    previous_conditions: list[dict[str, Any]] | None = None,
    gpu_resource: str = "nvidia.com/gpu",
) -> dict[str, Any]:
    capacity = {"cpu": str(max(os.cpu_count() or 2, 8)), "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    if gpus:
        capacity[gpu_resource] = str(gpus)
    prev = {c["type"]: c for c in previous_conditions or []}
    conds = []
    for ctype, status, reason, message in [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "executor has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "executor has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "executor has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "modelfleet local executor is posting ready status"),
    ]:
        p = prev.get(ctype)
        since = p["lastTransitionTime"] if p and p.get("status") == status else rfc3339(now)
        conds.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": rfc3339(now),
                "lastTransitionTime": since,
            }
        )
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": conds,
        "addresses": [{"type": "InternalIP", "address": host_ip}, {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": os.uname().release,
            "osImage": "modelfleet local executor",
            "containerRuntimeVersion": "modelfleet-executor://0.1",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


class NodeAgent:
    def __init__(
        self,
        core: CoreV1Api,
        coordination: CoordinationV1Api,
        name: str,
        host_ip: str,
        gpus: int,
        kubelet_version: str,
        log: logging.Logger,
    ) -> None:
        self.core, self.coordination = core, coordination
        self.name, self.host_ip, self.gpus, self.version, self.log = name, host_ip, gpus, kubelet_version, log
        self.uid = ""

    def register(self) -> None:
        body = desired_node(self.name, self.gpus)
        try:
            node = self.core.create_node(body)
        except ApiException as e:
            if e.status != 409:
                raise
            node = self.core.patch_node(self.name, {"metadata": {"labels": body["metadata"]["labels"]}})
        self.uid = node.metadata.uid
        self.post_status()
        self.renew_lease()

    def post_status(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        current = self.core.read_node_status(self.name, _preload_content=False)
        prev = (json.loads(current.data).get("status") or {}).get("conditions") or []
        self.core.patch_node_status(
            self.name, {"status": desired_node_status(self.host_ip, self.gpus, self.version, now, prev)}
        )

    def renew_lease(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}],
            },
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": _micro(now)},
        }
        try:
            self.coordination.patch_namespaced_lease(self.name, LEASE_NAMESPACE, {"spec": body["spec"]})
        except ApiException as e:
            if e.status != 404:
                raise
            self.coordination.create_namespaced_lease(LEASE_NAMESPACE, body)

    def heartbeat_forever(self, stop: threading.Event) -> None:
        last_status = time.monotonic()  # register() has just posted it
        while not stop.wait(RENEW_EVERY):
            try:
                self.renew_lease()
                if time.monotonic() - last_status >= STATUS_EVERY:
                    self.post_status()
                    last_status = time.monotonic()
            except ApiException as e:
                if e.status == 404:  # the Node was deleted: register again, as a kubelet does
                    self.register()
                else:
                    self.log.warning("node heartbeat failed: %s", e.reason)
            except Exception as e:  # the heartbeat must survive API outages (connection refused during restarts)
                self.log.warning("node heartbeat failed: %s", e)
