"""Pure rules of the local executor: pod phase and conditions, environment, mounts, probes, IPs, provisioning."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from modelfleet.devcluster.cluster import GPU_TAINT, desired_gpu_node
from modelfleet.devcluster.executor.envvars import EnvError, build_env, container_argv, expand
from modelfleet.devcluster.executor.executor import IpAllocator
from modelfleet.devcluster.executor.node import desired_node, desired_node_status
from modelfleet.devcluster.executor.podstatus import ContainerRecord, compute_phase, compute_pod_status
from modelfleet.devcluster.executor.probes import ProbeTracker
from modelfleet.devcluster.executor.provisioner import desired_volume
from modelfleet.devcluster.executor.volumes import container_mounts

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def rec(state: str = "running", code: int | None = None, last: bool = False, ready: bool = False) -> ContainerRecord:
    r = ContainerRecord(name="c", image="i", state=state, exit_code=code, ready=ready)  # type: ignore[arg-type]
    r.last_terminated = {"exitCode": 1} if last else None
    return r


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        ("Never", [rec("terminated", 0)], "Succeeded"),
        ("Never", [rec("terminated", 1)], "Failed"),
        ("Never", [rec("terminated", 0), rec("running")], "Running"),
        ("OnFailure", [rec("terminated", 1)], "Running"),  # it will be restarted
        ("OnFailure", [rec("terminated", 0)], "Succeeded"),
        ("Always", [rec("terminated", 0)], "Running"),
        ("Always", [rec("waiting", last=True)], "Running"),  # CrashLoopBackOff counts as stopped, not pending
        ("Always", [rec("waiting")], "Pending"),
    ],
)
def test_phase_follows_the_kubelet(policy: str, containers: list[ContainerRecord], phase: str) -> None:
    assert compute_phase(policy, [], True, containers) == phase


def test_failed_init_container_fails_the_pod_only_without_restarts() -> None:
    init = [rec("terminated", 2)]
    assert compute_phase("Never", init, False, [rec("waiting")]) == "Failed"
    assert compute_phase("OnFailure", init, False, [rec("waiting")]) == "Pending"


def test_conditions_keep_transition_times_and_foreign_conditions() -> None:
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
    first = compute_pod_status(
        restart_policy="Always",
        init=[],
        main=[rec(ready=False)],
        sandbox_ready=True,
        pod_ip="127.0.0.2",
        host_ip="127.0.0.1",
        start_time=T0,
        previous_conditions=[scheduled],
        now=T0,
    )
    ready = {c["type"]: c for c in first["conditions"]}
    assert ready["PodScheduled"] == scheduled
    assert ready["Ready"]["status"] == "False" and ready["Ready"]["reason"] == "ContainersNotReady"
    later = T0 + datetime.timedelta(seconds=30)
    second = compute_pod_status(
        restart_policy="Always",
        init=[],
        main=[rec(ready=False)],
        sandbox_ready=True,
        pod_ip="127.0.0.2",
        host_ip="127.0.0.1",
        start_time=T0,
        previous_conditions=first["conditions"],
        now=later,
    )
    assert {c["type"]: c for c in second["conditions"]}["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    third = compute_pod_status(
        restart_policy="Always",
        init=[],
        main=[rec(ready=True)],
        sandbox_ready=True,
        pod_ip="127.0.0.2",
        host_ip="127.0.0.1",
        start_time=T0,
        previous_conditions=second["conditions"],
        now=later,
    )
    assert {c["type"]: c for c in third["conditions"]}["Ready"] == {
        "type": "Ready",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": "2026-01-01T00:00:30Z",
    }
    assert third["podIP"] == "127.0.0.2" and third["podIPs"] == [{"ip": "127.0.0.2"}]


def test_terminated_container_status_shape() -> None:
    r = ContainerRecord(
        name="train",
        image="img",
        state="terminated",
        exit_code=0,
        reason="Completed",
        message='{"acc": 1}',
        started_at=T0,
        finished_at=T0,
        container_id="modelfleet://x",
    )
    assert r.to_status()["state"] == {
        "terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "message": '{"acc": 1}',
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:00Z",
            "containerID": "modelfleet://x",
        }
    }


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("cost $5", env) == "cost $5"


def test_build_env_resolves_every_source_in_order() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"team": "fraud"}}, "spec": {"nodeName": "n"}}
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}},
            {"name": "URL", "value": "http://$(IP):8080"},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        ],
        "resources": {"limits": {"cpu": "1500m"}},
    }
    cms = {("ns", "cm"): {"mode": "fast"}}
    secrets = {("ns", "s"): {"t": "tok"}}
    env = build_env(
        container,
        pod,
        pod_ip="127.0.0.7",
        host_ip="127.0.0.1",
        configmaps=lambda ns, n: cms.get((ns, n)),
        secrets=lambda ns, n: secrets.get((ns, n)),
        base={"PATH": "/bin"},
    )
    assert env == {
        "PATH": "/bin",
        "CM_mode": "fast",
        "IP": "127.0.0.7",
        "TEAM": "fraud",
        "TOKEN": "tok",
        "URL": "http://127.0.0.7:8080",
        "CPU": "1500",
    }


def test_missing_required_reference_is_a_config_error() -> None:
    container = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(EnvError, match='secret "nope" not found'):
        build_env(
            container,
            {"metadata": {"namespace": "ns"}},
            pod_ip=None,
            host_ip="h",
            configmaps=lambda *_: None,
            secrets=lambda *_: None,
            base={},
        )


def test_argv_needs_a_command_because_images_are_ignored() -> None:
    assert container_argv({"command": ["python", "-m", "x"], "args": ["--ip=$(IP)"]}, {"IP": "1"}) == [
        "python",
        "-m",
        "x",
        "--ip=1",
    ]
    with pytest.raises(EnvError, match="no command"):
        container_argv({"image": "python"}, {})


def test_mounts_cover_volumes_subpaths_and_the_termination_log(tmp_path: Path) -> None:
    vols = {"data": tmp_path / "data"}
    (tmp_path / "data").mkdir()
    mounts = container_mounts(
        {
            "volumeMounts": [
                {"name": "data", "mountPath": "/artifacts", "readOnly": True},
                {"name": "data", "mountPath": "/models", "subPath": "v1"},
            ],
            "terminationMessagePath": "/results/msg",
        },
        vols,
        tmp_path / "c" / "termination-log",
    )
    assert mounts == [
        {"source": str(tmp_path / "data"), "target": "/artifacts", "read_only": True},
        {"source": str(tmp_path / "data" / "v1"), "target": "/models", "read_only": False},
        {"source": str(tmp_path / "c" / "termination-log"), "target": "/results/msg", "read_only": False},
    ]
    assert (tmp_path / "data" / "v1").is_dir() and (tmp_path / "c" / "termination-log").read_bytes() == b""


def test_probe_tracker_applies_thresholds_and_initial_delay() -> None:
    t = ProbeTracker(
        {"initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 2, "successThreshold": 2}, started_at=100.0
    )
    assert not t.due(104.9) and t.due(105.0)
    t.record(True, "", 105.0)
    assert t.result is None and not t.due(106.0)
    t.record(True, "", 107.0)
    assert t.result is True
    t.record(False, "HTTP 500", 109.0)
    assert t.result is True  # one failure is under the threshold
    t.record(False, "HTTP 500", 111.0)
    assert t.result is False and t.message == "HTTP 500"


def test_ip_allocator_skips_reserved_addresses_and_reuses_reported_ones() -> None:
    import ipaddress

    ips = IpAllocator(ipaddress.IPv4Network("127.7.0.0/16"))
    assert ips.allocate("a", None) == "127.7.0.2"
    assert ips.allocate("b", "127.7.0.9") == "127.7.0.9"
    assert ips.allocate("c", "127.7.0.9") == "127.7.0.3"  # taken: a fresh one
    assert ips.allocate("d", "127.0.0.5") == "127.7.0.4"  # another cluster's network: not ours to reuse
    assert ips.allocate("a", None) == "127.7.0.2"  # stable per pod
    ips.release("a")
    assert ips.allocate("e", None) == "127.7.0.2"


def test_each_cluster_gets_its_own_pod_network() -> None:
    from modelfleet.devcluster.executor.executor import pod_network

    networks = {pod_network(f"cluster-{i}") for i in range(20)}
    assert len(networks) >= 18  # 254 choices: collisions are rare
    assert all(n.prefixlen == 16 and str(n).startswith("127.") and not str(n).startswith("127.0.") for n in networks)
    assert pod_network("same") == pod_network("same")


def test_gpu_nodes_are_tainted_and_advertise_gpus() -> None:
    node = desired_gpu_node(1, 4)
    assert node["metadata"]["name"] == "kwok-gpu-1"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["spec"]["taints"] == [GPU_TAINT]
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"


def test_executor_node_advertises_gpus_only_when_asked() -> None:
    assert "nvidia.com/gpu" not in desired_node_status("127.0.0.1", 0, "v1", T0)["capacity"]
    assert desired_node_status("127.0.0.1", 2, "v1", T0)["capacity"]["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu.present" not in desired_node("n", 0)["metadata"]["labels"]


def test_provisioned_volume_is_prebound_to_its_claim(tmp_path: Path) -> None:
    pvc = {
        "metadata": {"name": "artifacts", "namespace": "ml", "uid": "1234567890ab"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "modelfleet-local",
        },
    }
    pv = desired_volume(pvc, tmp_path)
    assert pv["metadata"]["name"] == "pvc-1234567890ab"
    assert pv["spec"]["claimRef"]["uid"] == "1234567890ab"
    assert pv["spec"]["capacity"] == {"storage": "5Gi"}
    assert pv["spec"]["hostPath"]["path"] == str(tmp_path / "ml" / "artifacts-12345678")
