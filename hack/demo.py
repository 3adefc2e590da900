"""The README's demo: brings up the local control plane and shows real work on it.

Today it runs a web server on the local executor node (a real process answering through its pod IP), a GPU training
Job on the simulated GPU nodes, and a request for more GPUs than exist (what a cluster autoscaler would see).
Later stages grow it into the whole ModelFleet story (train, serve, drift, retrain).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from modelfleet.devcluster import ClusterConfig, DevCluster, SetupError, default_state_dir

NS = "modelfleet-demo"
T = TypeVar("T")
START = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", flush=True)


def wait(fn: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what}")


def main() -> int:
    cluster = DevCluster(ClusterConfig(state_dir=default_state_dir()))
    say("1/4 bringing up the local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK, executor)")
    try:
        cluster.up(progress=lambda m: say(f"     {m}"))
    except SetupError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1

    def kubectl(*args: str, input: str | None = None) -> str:
        return cluster.kubectl(*args, input=input).stdout

    def get(kind: str, name: str) -> dict[str, Any]:
        res = cluster.kubectl("get", kind, name, "-n", NS, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else {}

    def cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
        return next((c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == ctype), {})

    cluster.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)
    kubectl("create", "namespace", NS)
    wait(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0, 60, "namespace")

    say("2/4 a Deployment whose pod runs as a real process on the local executor node")
    kubectl(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "hello"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "hello"}},
                    "template": {
                        "metadata": {"labels": {"app": "hello"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "python:3.11-slim",
                                    "command": ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
                                    "env": [
                                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                                    ],
                                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                                }
                            ]
                        },
                    },
                },
            }
        ),
    )
    wait(lambda: cond(get("deployment", "hello"), "Available").get("status") == "True", 120, "Deployment Available")
    pod = json.loads(kubectl("get", "pods", "-n", NS, "-l", "app=hello", "-o", "json"))["items"][0]
    ip = pod["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
        say(
            f"     Deployment Available; pod {pod['metadata']['name']} on node {pod['spec']['nodeName']} "
            f"answers HTTP {resp.status} at {ip}:8080"
        )

    say("3/4 a training Job asking for one GPU lands on a simulated GPU node")
    kubectl(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "train-on-gpu"},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                            "containers": [
                                {
                                    "name": "train",
                                    "image": "modelfleet/trainer",
                                    "command": ["python", "-m", "train"],
                                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                                }
                            ],
                        }
                    }
                },
            }
        ),
    )
    wait(lambda: cond(get("job", "train-on-gpu"), "Complete").get("status") == "True", 120, "GPU Job Complete")
    gpu_pod = json.loads(kubectl("get", "pods", "-n", NS, "-l", "job-name=train-on-gpu", "-o", "json"))["items"][0]
    say(
        f"     Job Complete on {gpu_pod['spec']['nodeName']} with limits "
        f"{gpu_pod['spec']['containers'][0]['resources']['limits']}"
    )

    say("4/4 a pod asking for 16 GPUs (no node has that many) stays Pending: the signal autoscalers act on")
    kubectl(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "too-big"},
                "spec": {
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "train",
                            "image": "x",
                            "command": ["true"],
                            "resources": {"limits": {"nvidia.com/gpu": 16}},
                        }
                    ],
                },
            }
        ),
    )
    sched = wait(
        lambda: (c := cond(get("pod", "too-big"), "PodScheduled")).get("reason") == "Unschedulable" and c,
        60,
        "Unschedulable",
    )
    say(f"     PodScheduled=False/{sched['reason']}: {sched['message']}")

    print()
    print(
        kubectl(
            "get",
            "nodes",
            "-o",
            "custom-columns=NODE:.metadata.name,GPUS:.status.allocatable.nvidia\\.com/gpu,"
            "READY:.status.conditions[?(@.type=='Ready')].status",
        )
    )
    print(kubectl("get", "pods", "-n", NS, "-o", "wide"))
    say(
        f"done. The cluster keeps running: export KUBECONFIG={cluster.kubeconfig}; "
        "stop it with `.venv/bin/modelfleet dev-cluster down`"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
