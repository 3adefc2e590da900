"""The README's demo: the local control plane, the operator, and a model trained for real.

1. bring up the local control plane (etcd, API server, controllers, scheduler, KWOK GPU nodes, the local executor);
2. install the CRDs and start the operator;
3. put a real dataset (breast cancer, bundled with scikit-learn) on a volume and apply an MLModel: the operator
   creates a TrainingJob, the Job's pod runs the real trainer on the executor node, version 1 lands in status, the
   model server serves it (Deployment on the executor node) and answers an Open Inference Protocol v2 request;
4. apply the same training again as a TrainingJob: a cache hit, no second Job;
5. a PyTorch TrainingJob asking for one GPU is scheduled to a simulated GPU node (KWOK does not run it);
   one asking for 16 GPUs stays Queued/Unschedulable — what a cluster autoscaler acts on.
Drift and retraining come in later stages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.datasets import feature_spec, write  # noqa: E402

from modelfleet.devcluster import ClusterConfig, DevCluster, SetupError, default_state_dir  # noqa: E402

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
    say("1/5 bringing up the local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK, executor)")
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

    def apply(obj: dict[str, Any]) -> None:
        kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(obj))

    say("2/5 installing the CRDs and starting the operator")
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=modelfleet")
    log = cluster.state_dir / "logs" / "operator.log"
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfleet",
            "operator",
            "run",  # cluster-wide: scoped to a terminating namespace, the operator would leave its objects alone
            "--metrics-port=0",
            "--health-port=0",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "MODELFLEET_POLL_SECONDS": "1"},
    )
    say(f"     operator running (log: {log})")
    try:
        # The operator runs before the previous run's namespace goes: Kopf keeps a finalizer on every object with a
        # timer, and only a running operator releases it, so only then does the deletion complete.
        cluster.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)
        kubectl("create", "namespace", NS)
        wait(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0, 60, "namespace")
        say("3/5 a scikit-learn MLModel on real data: trained and served on the executor node")
        dirs = {}
        for claim in ("datasets", "model-store"):
            apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            )
            pvc = wait(lambda c=claim: (p := get("pvc", c)) and p["status"].get("phase") == "Bound" and p, 60, claim)
            dirs[claim] = Path(
                json.loads(kubectl("get", "pv", pvc["spec"]["volumeName"], "-o", "json"))["spec"]["hostPath"]["path"]
            )
        write("breast_cancer", dirs["datasets"] / "breast_cancer.csv")
        model = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "MLModel",
            "metadata": {"name": "tumour-classifier"},
            "spec": {
                "owner": {"team": "oncology-ml", "contact": "oncology-ml@example.com"},
                "riskClass": "limited",
                "framework": "sklearn",
                "task": "classification",
                "dataset": {
                    "uri": "pvc://datasets/breast_cancer.csv",
                    "target": "target",
                    "features": feature_spec("breast_cancer"),
                },
                "training": {
                    "estimator": "sklearn.ensemble.RandomForestClassifier",
                    "hyperparameters": {"n_estimators": 100, "max_depth": 8},
                    "validation": {"metric": "roc_auc", "minScore": 0.9},
                },
                "artifacts": {"uri": "pvc://model-store/tumour-classifier"},
            },
        }
        apply(model)
        tj = wait(lambda: get("tj", "tumour-classifier-v1") or None, 60, "the TrainingJob")
        say(f"     TrainingJob {tj['metadata']['name']} created (reason: {tj['spec']['reason']})")
        running = wait(
            lambda: (t := get("tj", "tumour-classifier-v1")) and t.get("status", {}).get("jobName") and t, 60, "the Job"
        )
        say(f"     Job {running['status']['jobName']} runs python -m modelfleet.trainer on the executor node")
        trained = wait(
            lambda: (m := get("mlm", "tumour-classifier")) and m.get("status", {}).get("latestVersion") and m,
            300,
            "version 1",
        )
        v1 = trained["status"]["latestVersion"]
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(v1["metrics"].items()))
        say(f"     version {v1['number']} trained: {metrics}")
        say(
            f"     artifact {v1['artifactUri']} ({v1['artifactDigest'][:19]}...), dataset {v1['datasetDigest'][:19]}..."
        )

        ready = wait(
            lambda: (m := get("mlm", "tumour-classifier")) and cond(m, "Ready").get("status") == "True" and m,
            180,
            "the model to be Ready",
        )
        pods = json.loads(
            kubectl(
                "get",
                "pods",
                "-n",
                NS,
                "-l",
                "modelfleet.io/model=tumour-classifier,app.kubernetes.io/component=serving",
                "-o",
                "json",
            )
        )["items"]
        ip = next(p["status"]["podIP"] for p in pods if p["status"].get("podIP"))
        say(
            f"     Ready: version {ready['status']['servingVersion']['number']} served by the model server "
            f"(pod IP {ip}; endpoint {ready['status']['endpoint']})"
        )
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(dirs["datasets"] / "breast_cancer.csv")
        body = {
            "inputs": [
                {
                    "name": f["name"],
                    "shape": [3],
                    "datatype": "BYTES" if f["type"] == "categorical" else "FP64",
                    "data": table.column(f["name"]).to_pylist()[:3],
                }
                for f in feature_spec("breast_cancer")
            ]
        }
        req = urllib.request.Request(
            f"http://{ip}:8080/v2/models/tumour-classifier/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        say(
            f"     POST /v2/models/tumour-classifier/infer (3 rows) -> predict {answer['outputs'][0]['data']}, "
            f"true labels {table.column('target').to_pylist()[:3]}"
        )

        say("4/5 the same training spec as a TrainingJob of its own: a cache hit, no second Job")
        again = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "rerun"},
            "spec": {
                **{
                    k: get("tj", "tumour-classifier-v1")["spec"][k]
                    for k in ("framework", "task", "dataset", "training")
                },
                "output": {"uri": "pvc://model-store/rerun"},
            },
        }
        apply(again)
        hit = wait(
            lambda: (t := get("tj", "rerun")) and cond(t, "Succeeded").get("status") == "True" and t,
            60,
            "the cache hit",
        )
        say(f"     {cond(hit, 'CacheHit').get('message')}")

        say("5/5 GPU training on the simulated GPU nodes")
        for name, gpus in (("gpu-train", 1), ("gpu-too-big", 16)):
            apply(
                {
                    "apiVersion": "modelfleet.io/v1alpha1",
                    "kind": "TrainingJob",
                    "metadata": {"name": name},
                    "spec": {
                        "framework": "pytorch",
                        "task": "classification",
                        "dataset": {
                            "uri": "pvc://datasets/breast_cancer.csv",
                            "target": "target",
                            "features": feature_spec("breast_cancer"),
                        },
                        "training": {
                            "estimator": "mlp",
                            "resources": {"gpu": gpus, "memory": "8Gi"},
                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                        },
                        "output": {"uri": f"pvc://model-store/{name}"},
                    },
                }
            )

        def gpu_pod() -> dict[str, Any] | None:
            pods = json.loads(
                kubectl("get", "pods", "-n", NS, "-l", "modelfleet.io/trainingjob=gpu-train", "-o", "json")
            )["items"]
            return pods[0] if pods and pods[0]["spec"].get("nodeName") else None

        pod = wait(gpu_pod, 60, "the GPU pod")
        say(
            f"     1 GPU: pod scheduled to {pod['spec']['nodeName']} with limits "
            f"{pod['spec']['containers'][0]['resources']['limits']}"
        )
        queued = wait(
            lambda: (t := get("tj", "gpu-too-big")) and cond(t, "Queued").get("reason") == "Unschedulable" and t,
            60,
            "Unschedulable",
        )
        say(f"     16 GPUs: Queued/Unschedulable: {cond(queued, 'Queued')['message']}")
        print()
        print(kubectl("get", "mlm,tj", "-n", NS))
        print(
            kubectl(
                "get",
                "nodes",
                "-o",
                "custom-columns=NODE:.metadata.name,GPUS:.status.allocatable.nvidia"
                "\\.com/gpu,READY:.status.conditions[?(@.type=='Ready')].status",
            )
        )
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    say(
        f"done. The cluster keeps running: export KUBECONFIG={cluster.kubeconfig}; "
        "stop it with `.venv/bin/modelfleet dev-cluster down`"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
