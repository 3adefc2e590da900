"""The local control plane behaves like a real cluster: API round trips, RBAC, controllers, scheduling with GPUs,
garbage collection, and pods that really run on the local executor."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.devcluster import DevCluster
from modelfleet.devcluster.processes import environ_of
from tests.support import Kube, has_condition, wait_for


def _pod(kube: Kube, ns: str, **selector: str) -> dict[str, Any]:
    return wait_for(lambda: (kube.items("pods", ns, **selector) or [None])[0], 60, f"a pod with {selector}")


def _container_pids(ns: str, pod: str) -> list[int]:
    """PIDs of the processes the executor runs for this pod (marked in their environment)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and environ_of(int(entry.name)).get("MODELFLEET_EXECUTOR_POD") == f"{ns}/{pod}":
            pids.append(int(entry.name))
    return pids


def test_namespace_and_configmap_round_trip(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"greeting": "grüß dich", "n": "42"},
        },
        namespace,
    )
    got = kube.get("configmap", "cfg", namespace)
    assert got and got["data"] == {"greeting": "grüß dich", "n": "42"}
    assert kube.get("namespace", namespace)["status"]["phase"] == "Active"  # type: ignore[index]


def test_rbac_is_enforced_for_service_accounts(kube: Kube, namespace: str, kubeconfig: Path) -> None:
    kube.run("create", "serviceaccount", "reader", "-n", namespace)
    token = kube.run("create", "token", "reader", "-n", namespace).stdout.strip()
    cfg = yaml.safe_load(kubeconfig.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=cfg["clusters"][0]["cluster"]["certificate-authority"])

    def list_pods() -> int:
        req = urllib.request.Request(
            f"{server}/api/v1/namespaces/{namespace}/pods", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return e.code

    assert list_pods() == 403
    kube.run("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace)
    kube.run(
        "create", "rolebinding", "reader", "--role=pod-reader", f"--serviceaccount={namespace}:reader", "-n", namespace
    )
    # The authorizer's informer sees the new binding a moment later.
    wait_for(lambda: list_pods() == 200, 30, "the RoleBinding to take effect")


def test_deployment_becomes_available_with_a_real_process_serving_its_probe(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: python:3.11-slim
        command: [python, -m, http.server, "8080", --bind, "$(POD_IP)"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /, port: http}}, periodSeconds: 1}}
""")
    wait_for(lambda: has_condition(kube.get("deployment", "web", namespace), "Available"), 90, "Deployment Available")
    pod = _pod(kube, namespace, selector="app=web")
    assert pod["spec"]["nodeName"] == "modelfleet-executor"
    assert pod["status"]["phase"] == "Running"
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.") and not ip.startswith("127.0.")  # the cluster's own loopback /16, never the node's
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
        assert resp.status == 200


def test_job_completes_with_its_termination_message(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: report, namespace: {namespace}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: ignored
        command: [sh, -c, 'printf "{{\\"accuracy\\": 0.97}}" > /tmp/result.json && cp /tmp/result.json /results/msg']
        terminationMessagePath: /results/msg
""")
    wait_for(lambda: has_condition(kube.get("job", "report", namespace), "Complete"), 90, "Job Complete")
    pod = _pod(kube, namespace, selector="job-name=report")
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["reason"] == "Completed" and state["exitCode"] == 0
    assert json.loads(state["message"]) == {"accuracy": 0.97}


def test_gpu_job_is_scheduled_to_a_simulated_gpu_node_and_completes(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: train-gpu, namespace: {namespace}}}
spec:
  template:
    spec:
      restartPolicy: Never
      tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
      containers:
      - name: train
        image: ignored
        command: [python, -m, modelfleet.trainer]
        resources: {{limits: {{nvidia.com/gpu: 1}}}}
""")
    wait_for(lambda: has_condition(kube.get("job", "train-gpu", namespace), "Complete"), 90, "GPU Job Complete")
    pod = _pod(kube, namespace, selector="job-name=train-gpu")
    assert pod["spec"]["nodeName"].startswith("kwok-gpu-")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending_unschedulable(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: too-big, namespace: {namespace}}}
spec:
  tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
  containers:
  - {{name: main, image: ignored, command: [sleep, "1"], resources: {{limits: {{nvidia.com/gpu: 64}}}}}}
""")

    def unschedulable() -> dict[str, Any] | None:
        pod = kube.get("pod", "too-big", namespace)
        conds = {c["type"]: c for c in (pod or {}).get("status", {}).get("conditions") or []}
        sched = conds.get("PodScheduled")
        return sched if sched and sched["status"] == "False" and sched.get("reason") == "Unschedulable" else None

    cond = wait_for(unschedulable, 60, "PodScheduled=False/Unschedulable")
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    assert kube.get("pod", "too-big", namespace)["status"]["phase"] == "Pending"  # type: ignore[index]


def test_gpu_pod_without_toleration_never_lands_on_gpu_nodes(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: plain, namespace: {namespace}}}
spec:
  restartPolicy: Never
  containers: [{{name: main, image: ignored, command: ["true"]}}]
""")
    pod = wait_for(
        lambda: (
            (kube.get("pod", "plain", namespace) or {}).get("spec", {}).get("nodeName")
            and kube.get("pod", "plain", namespace)
        ),
        60,
        "scheduling",
    )
    assert pod["spec"]["nodeName"] == "modelfleet-executor"


def test_deleting_an_owner_garbage_collects_its_dependents(kube: Kube, namespace: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}, "data": {}}, namespace)
    owner = kube.get("configmap", "owner", namespace)
    assert owner
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
                ],
            },
            "stringData": {"k": "v"},
        },
        namespace,
    )
    kube.run("delete", "configmap", "owner", "-n", namespace)
    wait_for(lambda: kube.get("secret", "dependent", namespace) is None, 60, "the dependent to be collected")


def test_deleting_a_pod_stops_its_processes_including_children(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: sleeper, namespace: {namespace}}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - {{name: main, image: ignored, command: [sh, -c, "sleep 600 & sleep 600"]}}
""")
    wait_for(
        lambda: (kube.get("pod", "sleeper", namespace) or {}).get("status", {}).get("phase") == "Running",
        60,
        "the pod to run",
    )
    pids = wait_for(
        lambda: len(_container_pids(namespace, "sleeper")) >= 2 and _container_pids(namespace, "sleeper"),
        30,
        "the container's processes",
    )
    kube.run("delete", "pod", "sleeper", "-n", namespace, "--wait=true", "--timeout=60s")
    assert kube.get("pod", "sleeper", namespace) is None
    wait_for(lambda: not _container_pids(namespace, "sleeper"), 15, f"processes {pids} to stop")


def test_missing_command_fails_the_pod_with_a_clear_reason(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: broken, namespace: {namespace}}}
spec:
  restartPolicy: Never
  containers: [{{name: main, image: ignored, command: [no-such-command-anywhere, --flag]}}]
""")
    pod = wait_for(
        lambda: (p := kube.get("pod", "broken", namespace)) and p["status"].get("phase") == "Failed" and p,
        60,
        "the pod to fail",
    )
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert term["exitCode"] == 128
    assert '"no-such-command-anywhere"' in term["message"] and "No such file" in term["message"]
    # The executor survived: another pod still runs.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "after"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x", "command": ["true"]}]},
        },
        namespace,
    )
    wait_for(
        lambda: (kube.get("pod", "after", namespace) or {}).get("status", {}).get("phase") == "Succeeded",
        60,
        "a later pod to succeed",
    )


def test_env_sources_volumes_and_claims_appear_where_the_spec_says(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {namespace}}}
data: {{mode: fast, config.yaml: "threshold: 0.2"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {namespace}}}
stringData: {{token: s3cr3t}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: artifacts, namespace: {namespace}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: writer, namespace: {namespace}}}
spec:
  template:
    spec:
      restartPolicy: Never
      volumes:
      - {{name: cfg, configMap: {{name: settings}}}}
      - {{name: sec, secret: {{secretName: creds}}}}
      - {{name: data, persistentVolumeClaim: {{claimName: artifacts}}}}
      - {{name: scratch, emptyDir: {{}}}}
      containers:
      - name: main
        image: ignored
        env:
        - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}}}
        - {{name: TOKEN, valueFrom: {{secretKeyRef: {{name: creds, key: token}}}}}}
        - {{name: POD_NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        - {{name: GREETING, value: "mode=$(MODE)"}}
        volumeMounts:
        - {{name: cfg, mountPath: /etc/model}}
        - {{name: sec, mountPath: /var/secrets, readOnly: true}}
        - {{name: data, mountPath: /artifacts}}
        - {{name: scratch, mountPath: /tmp}}
        command: [sh, -c]
        args:
        - |
          set -e
          echo "$GREETING" > /tmp/out
          echo "first run" > /artifacts/model.txt
          printf '%s|%s|%s|%s|%s' "$(cat /tmp/out)" "$TOKEN" "$POD_NS" "$(cat /etc/model/config.yaml)" \\
            "$(cat /var/secrets/token)" > /dev/termination-log
---
apiVersion: batch/v1
kind: Job
metadata: {{name: reader, namespace: {namespace}}}
spec:
  template:
    spec:
      restartPolicy: Never
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: artifacts}}}}]
      containers:
      - name: main
        image: ignored
        volumeMounts: [{{name: data, mountPath: /artifacts}}]
        command: [sh, -c, 'until [ -f /artifacts/model.txt ]; do sleep 0.2; done;
                  cat /artifacts/model.txt > /dev/termination-log']
""")
    for job in ("writer", "reader"):
        wait_for(lambda j=job: has_condition(kube.get("job", j, namespace), "Complete"), 90, f"Job {job} Complete")
    msg = _pod(kube, namespace, selector="job-name=writer")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert msg["message"] == f"mode=fast|s3cr3t|{namespace}|threshold: 0.2|s3cr3t"
    read = _pod(kube, namespace, selector="job-name=reader")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert read["message"].strip() == "first run"
    assert kube.get("pvc", "artifacts", namespace)["status"]["phase"] == "Bound"  # type: ignore[index]
    # An emptyDir on /tmp did not hide the claim's directory (which lives under /tmp in this test session), and
    # nothing leaked onto the host's paths: the mounts were private to the container.
    assert not Path("/artifacts/model.txt").exists()


def test_pod_reaches_the_api_server_with_its_projected_service_account_token(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: incluster, namespace: {namespace}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: ignored
    command:
    - python
    - -c
    - |
      from kubernetes import client, config
      config.load_incluster_config()
      v = client.VersionApi().get_code().git_version
      open("/dev/termination-log", "w").write(v)
""")
    pod = wait_for(
        lambda: (
            (p := kube.get("pod", "incluster", namespace)) and p["status"].get("phase") in ("Succeeded", "Failed") and p
        ),
        90,
        "the pod to finish",
    )
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Succeeded", term
    assert term["message"].startswith("v1.")


def test_restart_policy_on_failure_restarts_with_back_off_then_succeeds(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: flaky, namespace: {namespace}}}
spec:
  restartPolicy: OnFailure
  volumes: [{{name: state, emptyDir: {{}}}}]
  containers:
  - name: main
    image: ignored
    volumeMounts: [{{name: state, mountPath: /state}}]
    command: [sh, -c, 'if [ -f /state/ran ]; then exit 0; fi; touch /state/ran; echo boom >&2; exit 3']
""")
    pod = wait_for(
        lambda: (p := kube.get("pod", "flaky", namespace)) and p["status"].get("phase") == "Succeeded" and p,
        90,
        "the pod to succeed after a restart",
    )
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"


def test_failing_liveness_probe_restarts_the_container(kube: Kube, namespace: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: unhealthy, namespace: {namespace}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ignored
    command: [sleep, "600"]
    livenessProbe: {{tcpSocket: {{port: 9}}, periodSeconds: 1, failureThreshold: 2}}
""")
    wait_for(
        lambda: (
            ((kube.get("pod", "unhealthy", namespace) or {}).get("status", {}).get("containerStatuses") or [{}])[0].get(
                "restartCount", 0
            )
            >= 1
        ),
        60,
        "a liveness restart",
    )
    events = kube.items("events", namespace, field_selector="involvedObject.name=unhealthy")
    assert any(e["reason"] == "Unhealthy" and "Liveness" in e["message"] for e in events)


@pytest.mark.parametrize("policy", ["FallbackToLogsOnError"])
def test_failed_container_falls_back_to_its_log_for_the_message(kube: Kube, namespace: str, policy: str) -> None:
    kube.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: crashes, namespace: {namespace}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: ignored
    terminationMessagePolicy: {policy}
    command: [sh, -c, 'echo "dataset has no column target" >&2; exit 2']
""")
    pod = wait_for(
        lambda: (p := kube.get("pod", "crashes", namespace)) and p["status"].get("phase") == "Failed" and p,
        60,
        "the pod to fail",
    )
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 2 and term["reason"] == "Error"
    assert "dataset has no column target" in term["message"]


def test_the_dev_s3_server_starts_on_demand_once_with_its_credentials_in_a_secret(
    dev_cluster: DevCluster | None, kube: Kube, namespace: str
) -> None:
    import base64

    from modelfleet.artifact.objectstore import ObjectStore, S3Settings, S3Uri

    if dev_cluster is None:
        pytest.skip("an external cluster (MODELFLEET_REUSE_CLUSTER=1) has no dev S3 server")
    settings = dev_cluster.object_store([namespace])
    assert settings["MODELFLEET_ARTIFACTS_URI"] == "s3://modelfleet/fleet"
    pid = dev_cluster.sup.pid_of("versitygw")
    assert pid is not None
    secret = kube.get("secret", "modelfleet-s3", namespace)
    assert secret
    env = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert env["AWS_ENDPOINT_URL"] == settings["MODELFLEET_S3_ENDPOINT"]
    assert (dev_cluster.state_dir / "s3" / "credentials.json").stat().st_mode & 0o077 == 0
    # The Secret's keys work against the bucket; asking again reuses the running server.
    store = ObjectStore(S3Settings.from_env(env))
    store.put_bytes(S3Uri("modelfleet", f"probe/{namespace}"), b"hello")
    assert store.exists(S3Uri("modelfleet", f"probe/{namespace}"))
    assert dev_cluster.object_store() == settings and dev_cluster.sup.pid_of("versitygw") == pid
