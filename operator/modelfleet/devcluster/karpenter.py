"""Karpenter for the dev cluster and the tests: the real Karpenter with its KWOK provider (sigs.k8s.io/karpenter/kwok,
built from its Go module by hack/karpenter.sh), started on demand as a dev-cluster process. It provisions a node for
pods that cannot be scheduled and removes nodes that have become empty; the nodes it creates carry the
kwok.x-k8s.io/node=fake annotation, so the dev cluster's KWOK runs them like its own simulated GPU nodes.

The instance types it may offer are simulated GPU machines (`nvidia.com/gpu` in their resources reaches the node's
allocatable). NodePools and the KWOKNodeClass are the user's to create."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from modelfleet.devcluster.binaries import REPO_ROOT, SetupError

BUILD_SCRIPT = REPO_ROOT / "hack" / "karpenter.sh"
NAMESPACE = "karpenter"
ZONE = "dev-zone-a"


def find_karpenter() -> Path:
    """The directory with `karpenter-kwok` and its `crds/` (built on first use; MODELFLEET_KARPENTER_DIR: prebuilt)."""
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SetupError("building Karpenter failed (hack/karpenter.sh); the step and its log file are named above")
    return Path(res.stdout.strip().splitlines()[-1])


def gpu_instance_type(gpus: int, price: float) -> dict[str, Any]:
    """A simulated GPU machine in the format of Karpenter's kwok/cloudprovider/instance_types.json (on-demand, one
    zone)."""
    return {
        "name": f"sim-gpu-{gpus}x",
        "architecture": "amd64",
        "operatingSystems": ["linux"],
        "resources": {
            "cpu": str(8 * gpus),
            "memory": f"{64 * gpus}Gi",
            "ephemeral-storage": "200Gi",
            "pods": "110",
            "nvidia.com/gpu": str(gpus),
        },
        "offerings": [
            {
                "Price": price,
                "Available": True,
                "Requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [ZONE]},
                ],
            }
        ],
    }


INSTANCE_TYPES = [gpu_instance_type(1, 1.2), gpu_instance_type(4, 4.5)]


def command(
    binary: Path, state_dir: Path, kubeconfig: Path, *, metrics_port: int, health_port: int
) -> tuple[list[str], dict[str, str]]:
    types = state_dir / "karpenter" / "instance-types.json"
    types.parent.mkdir(parents=True, exist_ok=True)
    types.write_text(json.dumps(INSTANCE_TYPES, indent=1))
    env = {
        "KUBECONFIG": str(kubeconfig),
        "SYSTEM_NAMESPACE": NAMESPACE,
        "DISABLE_LEADER_ELECTION": "true",
        "METRICS_PORT": str(metrics_port),
        "HEALTH_PROBE_PORT": str(health_port),
        "INSTANCE_TYPES_FILE_PATH": str(types),
        "LOG_LEVEL": "info",
        # Short batching windows: a pending pod is provisioned for within about a second (defaults: 1 s idle, 10 s).
        "BATCH_IDLE_DURATION": "1s",
        "BATCH_MAX_DURATION": "3s",
    }
    return [str(binary)], env
