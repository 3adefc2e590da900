"""Kueue admits training: the real Kueue (built from its Go module by hack/kueue.sh, started by the dev cluster) holds
ModelFleet's suspended, queue-labelled Jobs against a ClusterQueue's GPU quota, and the TrainingJob says what Kueue
says. Two 4-GPU runs against a quota of 4 GPUs: one is admitted and runs on a simulated GPU node (KWOK completes it,
so `NoResult` stays honest), the other waits with Kueue's own message until the first has finished."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from modelfleet.devcluster.cluster import DevCluster
from tests.e2e.conftest import claim, dump
from tests.e2e.test_training import finished, gpu_trainingjob
from tests.support import Kube, OperatorProcess, condition, wait_for

FLAVOR = "sim-h100"


@pytest.fixture(scope="module")
def kueue(dev_cluster: DevCluster | None) -> None:
    """Kueue in the session's dev cluster. Tests list it before `operator`: the operator asks discovery for Kueue's
    Workloads once, when it starts."""
    if dev_cluster is None:
        pytest.skip("Kueue is started by the tests' own dev cluster (MODELFLEET_REUSE_CLUSTER is set)")
    dev_cluster.kueue()


def queue_objects(namespace: str, gpus: int) -> tuple[str, list[dict[str, Any]]]:
    """A GPU flavour for the simulated nodes, a ClusterQueue admitting only `namespace` with `gpus` GPUs of quota,
    and the LocalQueue `training` pointing at it."""
    cluster_queue = f"gpu-{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"
    api = "kueue.x-k8s.io/v1beta2"
    return cluster_queue, [
        {
            "apiVersion": api,
            "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}},
        },
        {
            "apiVersion": api,
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": FLAVOR,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "64"},
                                    {"name": "memory", "nominalQuota": "512Gi"},
                                    {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": api,
            "kind": "LocalQueue",
            "metadata": {"name": "training", "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        },
    ]


def queued_run(name: str, gpus: int, queue: str = "training") -> dict[str, Any]:
    run = gpu_trainingjob(name, gpus)
    run["spec"]["training"]["queueName"] = queue
    return run


def test_two_4_gpu_runs_share_a_4_gpu_quota_one_after_the_other(
    kueue: None, kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    cluster_queue, objects = queue_objects(namespace, gpus=4)
    kube.apply(objects[:2], None)
    # The GPU nodes are cordoned while both runs are queued: KWOK completes a pod within seconds, so the admitted
    # run's quota would be released before the other could be seen waiting. Kueue admits against quota, not nodes.
    nodes = [n["metadata"]["name"] for n in kube.items("nodes") if n["metadata"]["name"].startswith("kwok-gpu-")]
    for node in nodes:
        kube.run("cordon", node)
    try:
        kube.apply(objects[2], namespace)
        kube.apply([queued_run("first", 4), queued_run("second", 4)], namespace)

        def both() -> tuple[dict[str, Any], dict[str, Any]] | None:
            runs = [kube.get("tj", name, namespace) for name in ("first", "second")]
            queued = [condition(r, "Queued") or {} for r in runs]
            admitted = [
                i
                for i, q in enumerate(queued)
                if f"admitted by Kueue's ClusterQueue {cluster_queue}" in q.get("message", "")
            ]
            waiting = [i for i, q in enumerate(queued) if q.get("status") == "True" and q.get("reason") == "Pending"]
            if len(admitted) == 1 and len(waiting) == 1 and runs[0] and runs[1]:
                return runs[admitted[0]], runs[waiting[0]]
            return None

        admitted, waiting = wait_for(both, 90, "one run admitted by the ClusterQueue and the other pending on quota")
        message = (condition(waiting, "Queued") or {})["message"]
        assert "insufficient unused quota for nvidia.com/gpu" in message, dump(waiting["status"])
        assert waiting["status"]["phase"] == "Queued", dump(waiting["status"])
        assert admitted["status"]["phase"] in ("Queued", "Pending"), dump(admitted["status"])  # no node yet
        job = kube.get("jobs", admitted["status"]["jobName"], namespace) or {}
        assert job["spec"]["suspend"] is False and job["spec"]["template"]["spec"]["nodeSelector"] == {
            "nvidia.com/gpu.present": "true"  # the flavour's node labels, put there by Kueue
        }, dump(job["spec"])
        for node in nodes:
            kube.run("uncordon", node)
        first = wait_for(lambda: finished(kube, namespace, admitted["metadata"]["name"]), 120, "the admitted run")
        assert (condition(first, "Failed") or {})["reason"] == "NoResult", dump(first["status"])  # KWOK ran nothing
        second = wait_for(lambda: finished(kube, namespace, waiting["metadata"]["name"]), 180, "the waiting run")
        assert (condition(second, "Failed") or {})["reason"] == "NoResult", dump(second["status"])
        assert cluster_queue in (condition(second, "Queued") or {})["message"], dump(second["status"])
        # The waiting run started only once the first had finished and given its quota back.
        assert second["status"]["startTime"] >= first["status"]["completionTime"], (first["status"], second["status"])
    finally:
        for node in nodes:
            kube.run("uncordon", node, check=False)
        kube.run("delete", "clusterqueue", cluster_queue, "--ignore-not-found", "--wait=false", check=False)


def test_a_run_whose_queue_is_missing_stays_queued_in_kueues_words(
    kueue: None, kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    """A LocalQueue that does not exist, and one whose ClusterQueue does not: each run stays Queued (never Running),
    with Kueue's message naming what is missing."""
    claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    orphan = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "orphan", "namespace": namespace},
        "spec": {"clusterQueue": "no-such-cluster-queue"},
    }
    kube.apply(orphan, namespace)
    kube.apply([queued_run("nowhere", 1, queue="no-such-queue"), queued_run("orphaned", 1, queue="orphan")], namespace)
    for name, missing in (("nowhere", "no-such-queue"), ("orphaned", "no-such-cluster-queue")):
        waiting = wait_for(
            lambda name=name, missing=missing: (
                (t := kube.get("tj", name, namespace))
                and (c := condition(t, "Queued"))
                and missing in c.get("message", "")
                and c.get("reason") != "AwaitingAdmission"
                and t
            ),
            90,
            f"Kueue's word on {missing}",
        )
        assert waiting["status"]["phase"] == "Queued", dump(waiting["status"])
        assert (condition(waiting, "Running") or {})["status"] == "False", dump(waiting["status"])
