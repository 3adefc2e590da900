"""Karpenter provisions GPU capacity for training: the real Karpenter with its KWOK provider (built from its Go
module by hack/karpenter.sh, started by the dev cluster) sees a GPU TrainingJob's pod that no node can take, creates a
NodeClaim and a Node offering GPUs (run by the dev cluster's KWOK), the pod is scheduled there and runs, and once the
run has finished and the node is empty, Karpenter removes it (consolidation WhenEmpty).

The runs ask for a NodePool label, so the dev cluster's two static GPU nodes never take them: the pool starts with no
node at all. The two times (pending -> node Ready, empty -> node gone) are printed for the README."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from modelfleet.devcluster.cluster import GPU_TAINT, DevCluster
from tests.e2e.conftest import claim, dump
from tests.e2e.test_training import finished, gpu_trainingjob
from tests.support import Kube, OperatorProcess, condition, wait_for

NODE_CLASS = "modelfleet-sim"
POOL_LABEL = "modelfleet.io/pool"


@pytest.fixture(scope="module")
def karpenter(dev_cluster: DevCluster | None) -> None:
    if dev_cluster is None:
        pytest.skip("Karpenter is started by the tests' own dev cluster (MODELFLEET_REUSE_CLUSTER is set)")
    dev_cluster.karpenter()


def pool_objects(pool: str) -> list[dict[str, Any]]:
    """A KWOKNodeClass and a NodePool of simulated GPU machines, tainted like GPU nodes, removed once empty."""
    return [
        {"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": {"name": NODE_CLASS}},
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": pool},
            "spec": {
                "template": {
                    "metadata": {"labels": {POOL_LABEL: pool}},
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": NODE_CLASS},
                        "requirements": [
                            {
                                "key": "node.kubernetes.io/instance-type",
                                "operator": "In",
                                "values": ["sim-gpu-1x", "sim-gpu-4x"],
                            }
                        ],
                        "taints": [GPU_TAINT],
                        "expireAfter": "Never",
                    },
                },
                "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "0s"},
                "limits": {"nvidia.com/gpu": "8"},
            },
        },
    ]


def pool_nodes(kube: Kube, pool: str) -> list[dict[str, Any]]:
    return kube.items("nodes", selector=f"{POOL_LABEL}={pool}")


def ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions") or [])


def test_a_pending_gpu_run_gets_a_node_from_karpenter_and_the_empty_node_goes(
    karpenter: None, kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    pool = f"gpu-{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"
    kube.apply(pool_objects(pool), None)
    try:
        assert pool_nodes(kube, pool) == []  # no GPU node in this pool at the start
        run = gpu_trainingjob("on-new-node", 4)
        run["spec"]["training"]["nodeSelector"] = {POOL_LABEL: pool}
        started = time.monotonic()
        kube.apply(run, namespace)
        wait_for(
            lambda: kube.items("nodeclaims", selector=f"karpenter.sh/nodepool={pool}"), 120, "a NodeClaim for the run"
        )
        node = wait_for(lambda: next((n for n in pool_nodes(kube, pool) if ready(n)), None), 120, "the new node")
        provisioned = time.monotonic() - started
        assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "sim-gpu-4x", dump(node["metadata"])
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4", dump(node["status"])
        registered = wait_for(
            lambda: [
                c
                for c in kube.items("nodeclaims", selector=f"karpenter.sh/nodepool={pool}")
                if (c.get("status") or {}).get("nodeName") == node["metadata"]["name"]
            ],
            60,
            "the NodeClaim to name its node",
        )
        assert len(registered) == 1

        done = wait_for(lambda: finished(kube, namespace, "on-new-node"), 180, "the run on the new node")
        assert (condition(done, "Failed") or {})["reason"] == "NoResult", dump(done["status"])  # KWOK ran nothing
        pods = kube.items("pods", namespace, selector="modelfleet.io/trainingjob=on-new-node")
        assert pods and {p["spec"]["nodeName"] for p in pods} == {node["metadata"]["name"]}, dump(pods)

        emptied = time.monotonic()
        wait_for(lambda: not pool_nodes(kube, pool), 180, "Karpenter to remove the empty node")
        removed = time.monotonic() - emptied
        print(f"\nKarpenter: pending -> node Ready {provisioned:.1f} s; run finished -> node gone {removed:.1f} s")
    finally:
        kube.run("delete", "nodepool", pool, "--ignore-not-found", "--wait=false", check=False)


def test_a_run_no_instance_type_can_hold_stays_unschedulable_with_the_schedulers_message(
    karpenter: None, kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    """16 GPUs in one pod: no instance type the pool offers has that many, so Karpenter creates nothing and the run
    stays Queued/Unschedulable with the scheduler's own message."""
    claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    pool = f"gpu-{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"
    kube.apply(pool_objects(pool), None)
    try:
        run = gpu_trainingjob("too-big", 16)
        run["spec"]["training"]["nodeSelector"] = {POOL_LABEL: pool}
        kube.apply(run, namespace)
        queued = wait_for(
            lambda: (
                (t := kube.get("tj", "too-big", namespace))
                and (c := condition(t, "Queued"))
                and c.get("reason") == "Unschedulable"
                and t
            ),
            90,
            "the run to be Unschedulable",
        )
        assert queued["status"]["phase"] == "Queued", dump(queued["status"])
        assert "didn't match Pod's node affinity/selector" in (condition(queued, "Queued") or {})["message"]
        # Karpenter's own word on the pod (an Event it posts after its scheduling simulation), then nothing made.
        said = wait_for(
            lambda: [
                e
                for e in kube.items("events", namespace)
                if e["involvedObject"].get("kind") == "Pod"
                and e["involvedObject"].get("name", "").startswith("too-big")
                and "karpenter" in ((e.get("source") or {}).get("component") or e.get("reportingComponent") or "")
            ],
            90,
            "Karpenter's Event on the pod",
        )
        assert any("nodepool" in e.get("message", "").lower() for e in said), dump(said)
        assert kube.items("nodeclaims", selector=f"karpenter.sh/nodepool={pool}") == []
        assert pool_nodes(kube, pool) == []
    finally:
        kube.run("delete", "nodepool", pool, "--ignore-not-found", "--wait=false", check=False)
