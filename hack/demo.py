"""The README's demo: the whole story on the local control plane, with a real Prometheus.

1. bring up the local control plane (etcd, API server, controllers, scheduler, KWOK GPU nodes, the local executor);
2. install the CRDs, start Prometheus (Debian's package; it finds pods through the API server and scrapes the model
   servers, the operator and a DCGM stand-in exporter) and the operator;
3. put a real dataset (breast cancer, bundled with scikit-learn) on a volume and apply an MLModel and its DriftPolicy:
   the operator trains version 1 for real on the executor node, serves it, and it answers a v2 inference request;
4. the same training spec as a TrainingJob of its own: a cache hit, no second Job;
5. traffic like the training data: the policy evaluates it, no drift;
6. the world changes: the dataset file now holds a shifted feature, and so does the traffic. The policy sees drift
   sustained for its `for`, retrains on the data as it is now (a TrainingJob with reason drift, never a cache hit),
   version 2 is served, and the same traffic is no longer drift for it;
7. GPU training on the simulated GPU nodes: one GPU is scheduled (its utilisation read from DCGM series), sixteen
   stay Queued/Unschedulable — what a cluster autoscaler acts on;
8. GPU training through the real Kueue and Karpenter (both built from their Go modules): two 4-GPU runs against a
   4-GPU ClusterQueue; one is admitted, the other waits on quota in Kueue's words; Karpenter provisions a GPU node for
   the admitted one, it is scheduled there and runs, the other is admitted after it, and the empty node is removed.
It ends with `modelfleet status` and draws drift and versions over time into docs/demo.png.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.datasets import feature_spec, write  # noqa: E402

from modelfleet.devcluster import ClusterConfig, DevCluster, SetupError, default_state_dir  # noqa: E402
from modelfleet.devcluster.cluster import GPU_TAINT  # noqa: E402
from modelfleet.devcluster.dcgm import serve as serve_dcgm  # noqa: E402
from modelfleet.devcluster.processes import free_port  # noqa: E402
from modelfleet.devcluster.prometheus import PrometheusServer, pod_scrape_job, static_job  # noqa: E402

NS = "modelfleet-demo"
MODEL = "tumour-classifier"
TRAFFIC_ROWS = 569  # the whole dataset, once: more than the default minRows
PSI_THRESHOLD = 0.2  # the documented default (docs/drift.md: false alarms under 1 % from 500-row windows)
PICTURE = ROOT / "docs" / "demo.png"
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
    say("1/8 bringing up the local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK, executor)")
    try:
        cluster.up(progress=lambda m: say(f"     {m}"))
    except SetupError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    try:  # before the operator, which asks discovery for Kueue's Workloads when it starts
        cluster.kueue(progress=lambda m: say(f"     {m}"))
        cluster.karpenter(progress=lambda m: say(f"     {m}"))
    except SetupError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    say("     Kueue and Karpenter (KWOK provider) running")

    def kubectl(*args: str, input: str | None = None) -> str:
        return cluster.kubectl(*args, input=input).stdout

    def get(kind: str, name: str) -> dict[str, Any]:
        res = cluster.kubectl("get", kind, name, "-n", NS, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else {}

    def cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
        return next((c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == ctype), {})

    def apply(obj: dict[str, Any]) -> None:
        kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(obj))

    say("2/8 installing the CRDs; starting Prometheus, a DCGM stand-in exporter and the operator")
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=modelfleet")
    dcgm_values = cluster.state_dir / "dcgm-values.json"
    dcgm_values.write_text("[]")
    dcgm_port, metrics_port = free_port(), free_port()
    dcgm = serve_dcgm(dcgm_port, dcgm_values)
    threading.Thread(target=dcgm.serve_forever, daemon=True).start()
    prom_dir = cluster.state_dir / "prometheus"
    shutil.rmtree(prom_dir, ignore_errors=True)
    prometheus = PrometheusServer(
        prom_dir,
        [
            pod_scrape_job(cluster.kubeconfig, interval="1s"),
            static_job("modelfleet-operator", [f"127.0.0.1:{metrics_port}"], {}, interval="2s"),
            static_job("dcgm-exporter", [f"127.0.0.1:{dcgm_port}"], {}, interval="2s"),
        ],
    ).start()
    say(f"     Prometheus {prometheus.url} (3.16, built from its module), finding pods with kubernetes_sd_configs")
    log = cluster.state_dir / "logs" / "operator.log"
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfleet",
            "operator",
            "run",  # cluster-wide: scoped to a terminating namespace, the operator would leave its objects alone
            f"--metrics-port={metrics_port}",
            "--health-port=0",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "MODELFLEET_ACTIVITY_SECONDS": "5",
            "MODELFLEET_PROMETHEUS_URL": prometheus.url,
        },
    )
    say(f"     operator running (log: {log})")
    try:
        # The previous run's namespace goes first. Nothing of ours holds it (no finalizers); a namespace left by an
        # older version loses its finalizers when this operator starts, which is why the operator runs first.
        cluster.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)
        kubectl("create", "namespace", NS)
        wait(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0, 60, "namespace")
        story_started = time.time()
        say("3/8 a scikit-learn MLModel on real data and its DriftPolicy: trained and served on the executor node")
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
        dataset = dirs["datasets"] / "breast_cancer.csv"
        write("breast_cancer", dataset)
        model = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "MLModel",
            "metadata": {"name": MODEL},
            "spec": {
                "owner": {"team": "oncology-ml", "contact": "oncology-ml@example.com"},
                "riskClass": "limited",
                "framework": "sklearn",
                "task": "classification",
                "dataset": dataset_spec(),
                "training": {
                    "estimator": "sklearn.ensemble.RandomForestClassifier",
                    "hyperparameters": {"n_estimators": 100, "max_depth": 8},
                    "validation": {"metric": "roc_auc", "minScore": 0.9},
                },
                "serving": {"driftMonitoring": {"windowRows": 600}},  # values from 500 rows (the default minRows)
                "artifacts": {"uri": f"pvc://model-store/{MODEL}"},
            },
        }
        apply(model)
        apply(
            {
                "apiVersion": "modelfleet.io/v1alpha1",
                "kind": "DriftPolicy",
                "metadata": {"name": f"{MODEL}-drift"},
                "spec": {
                    "modelRef": {"name": MODEL},
                    "interval": "2s",
                    "checks": [{"name": "psi-all-features", "statistic": "psi", "threshold": PSI_THRESHOLD}],
                    "trigger": {"for": "10s"},
                    "action": "Retrain",
                    "cooldown": "30m",
                    "budget": {"maxRetrainsPerWeek": 3},
                },
            }
        )
        tj = wait(lambda: get("tj", f"{MODEL}-v1") or None, 60, "the TrainingJob")
        say(f"     TrainingJob {tj['metadata']['name']} created (reason: {tj['spec']['reason']})")
        running = wait(
            lambda: (t := get("tj", f"{MODEL}-v1")) and t.get("status", {}).get("jobName") and t, 60, "the Job"
        )
        say(f"     Job {running['status']['jobName']} runs python -m modelfleet.trainer on the executor node")
        trained = wait(lambda: (m := get("mlm", MODEL)) and m.get("status", {}).get("latestVersion") and m, 300, "v1")
        v1 = trained["status"]["latestVersion"]
        say(f"     version 1 trained: {', '.join(f'{k}={v:.3f}' for k, v in sorted(v1['metrics'].items()))}")
        say(
            f"     artifact {v1['artifactUri']} ({v1['artifactDigest'][:19]}...), dataset {v1['datasetDigest'][:19]}..."
        )
        ready = wait(lambda: (m := get("mlm", MODEL)) and cond(m, "Ready").get("status") == "True" and m, 180, "Ready")
        ip = serving_ip(kubectl, 1)
        say(f"     Ready: version 1 served by the model server (pod IP {ip}; endpoint {ready['status']['endpoint']})")
        answer = infer(ip, rows(dataset, 0, 3))
        import pyarrow.csv as pacsv

        labels = pacsv.read_csv(dataset).column("target").to_pylist()[:3]
        say(
            f"     POST /v2/models/{MODEL}/infer (3 rows) -> predict {answer['outputs'][0]['data']}, "
            f"true labels {labels}"
        )

        say("4/8 the same training spec as a TrainingJob of its own: a cache hit, no second Job")
        again = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "rerun"},
            "spec": {
                **{k: get("tj", f"{MODEL}-v1")["spec"][k] for k in ("framework", "task", "dataset", "training")},
                "output": {"uri": "pvc://model-store/rerun"},
            },
        }
        apply(again)
        hit = wait(lambda: (t := get("tj", "rerun")) and cond(t, "Succeeded").get("status") == "True" and t, 60, "hit")
        say(f"     {cond(hit, 'CacheHit').get('message')}")

        say("5/8 traffic like the training data: evaluated, no drift")
        send(ip, dataset, TRAFFIC_ROWS)
        quiet = wait(
            lambda: (
                (p := get("dpol", f"{MODEL}-drift"))
                and cond(p, "DriftDetected").get("status") == "False"
                and (p["status"].get("checks") or [{}])[0].get("value") is not None
                and p
            ),
            90,
            "an evaluation with data",
        )
        check = quiet["status"]["checks"][0]
        say(
            f"     {check['name']}: {check['value']:.3f} (worst feature {check['feature']}) "
            f"<= {PSI_THRESHOLD}: no drift"
        )

        say("6/8 the world changes: mean_radius shifts by 3 standard deviations, in the data and in the traffic")
        write("breast_cancer", dataset, shift={"mean_radius": 3.0})
        send(ip, dataset, TRAFFIC_ROWS)
        detected = wait(
            lambda: (p := get("dpol", f"{MODEL}-drift")) and cond(p, "DriftDetected").get("status") == "True" and p,
            90,
            "drift to be detected",
        )
        say(f"     DriftDetected: {cond(detected, 'DriftDetected')['message']}")
        retrain = wait(lambda: get("tj", f"{MODEL}-v2") or None, 60, "the drift TrainingJob")
        say(
            f"     TrainingJob {retrain['metadata']['name']} created (reason: {retrain['spec']['reason']}): "
            "trains on the data as it is now"
        )
        served = wait(
            lambda: (
                (m := get("mlm", MODEL))
                and (m["status"].get("servingVersion") or {}).get("number") == 2
                and cond(m, "Ready").get("status") == "True"
                and m
            ),
            300,
            "version 2 to be served",
        )
        v2 = served["status"]["servingVersion"]
        done = get("tj", f"{MODEL}-v2")
        say(
            f"     version 2 serving: {', '.join(f'{k}={v:.3f}' for k, v in sorted(v2['metrics'].items()))}; "
            f"cache hit: {'yes' if done['status'].get('cachedFrom') else 'no'}; dataset {v2['datasetDigest'][:19]}..."
        )
        send(serving_ip(kubectl, 2), dataset, TRAFFIC_ROWS)
        wait(
            lambda: (p := get("dpol", f"{MODEL}-drift")) and cond(p, "DriftDetected").get("status") == "False" and p,
            90,
            "the new version's traffic to be quiet",
        )
        say("     the shifted traffic is what version 2 learned from: no drift any more; one retrain in all")
        for line in events(kubectl, f"{MODEL}-drift") + events(kubectl, MODEL):
            say(f"     event  {line}")

        say("7/8 GPU training on the simulated GPU nodes")
        for name, gpus in (("gpu-train", 1), ("gpu-too-big", 16)):
            apply(gpu_trainingjob(name, gpus))

        def gpu_pod() -> dict[str, Any] | None:
            pods = json.loads(
                kubectl("get", "pods", "-n", NS, "-l", "modelfleet.io/trainingjob=gpu-train", "-o", "json")
            )["items"]
            return pods[0] if pods and pods[0]["spec"].get("nodeName") else None

        pod = wait(gpu_pod, 60, "the GPU pod")
        dcgm_values.write_text(json.dumps([{"namespace": NS, "pod": pod["metadata"]["name"], "util": 63.0}]))
        say(
            f"     1 GPU: pod scheduled to {pod['spec']['nodeName']} with limits "
            f"{pod['spec']['containers'][0]['resources']['limits']}; the DCGM stand-in reports 63% for it"
        )
        gpu_done = wait(
            lambda: (t := get("tj", "gpu-train")) and (t.get("status") or {}).get("utilization") and t, 120, "GPU use"
        )
        use = gpu_done["status"]["utilization"]
        say(
            f"     KWOK does not run it ({cond(gpu_done, 'Failed').get('reason')}); GPU use from DCGM series: "
            f"{use.get('gpuPercent')}% over the run, {use.get('gpuHours')} GPU-hours"
        )
        queued = wait(
            lambda: (t := get("tj", "gpu-too-big")) and cond(t, "Queued").get("reason") == "Unschedulable" and t,
            60,
            "Unschedulable",
        )
        say(f"     16 GPUs: Queued/Unschedulable: {cond(queued, 'Queued')['message']}")

        say("8/8 GPU training through Kueue (quota) and Karpenter (nodes)")
        kueue_and_karpenter(kubectl, get, cond, apply)

        time.sleep(3)  # one more scrape of the last state for the picture
        draw(prometheus.url, story_started, time.time())
        print()
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        print(
            subprocess.run(
                [sys.executable, "-m", "modelfleet", "status", "-n", NS], env=env, capture_output=True, text=True
            ).stdout
        )
        print(kubectl("get", "mlm,tj,dpol", "-n", NS))
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        prometheus.stop()
        dcgm.shutdown()
    say(f"picture of drift and versions over time: {PICTURE.relative_to(ROOT)}")
    say(
        f"done in {time.monotonic() - START:.0f}s. The cluster keeps running: export KUBECONFIG={cluster.kubeconfig}; "
        "stop it with `.venv/bin/modelfleet dev-cluster down`"
    )
    return 0


POOL = "demo-gpu"
POOL_LABEL = "modelfleet.io/pool"


def queue_and_pool() -> list[dict[str, Any]]:
    """A ResourceFlavor whose node labels are a Karpenter NodePool's (Kueue puts them on the Job it admits, so the
    pod can only land on a node of that pool), a 4-GPU ClusterQueue, and the NodePool of simulated GPU machines,
    removed once empty."""
    kueue = "kueue.x-k8s.io/v1beta2"
    quota = [{"name": "cpu", "nominalQuota": "64"}, {"name": "memory", "nominalQuota": "512Gi"}]
    return [
        {
            "apiVersion": kueue,
            "kind": "ResourceFlavor",
            "metadata": {"name": POOL},
            "spec": {"nodeLabels": {POOL_LABEL: POOL}},
        },
        {
            "apiVersion": kueue,
            "kind": "ClusterQueue",
            "metadata": {"name": POOL},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [
                            {"name": POOL, "resources": [*quota, {"name": "nvidia.com/gpu", "nominalQuota": "4"}]}
                        ],
                    }
                ],
            },
        },
        {"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": {"name": POOL}},
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": POOL},
            "spec": {
                "template": {
                    "metadata": {"labels": {POOL_LABEL: POOL}},
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": POOL},
                        "requirements": [
                            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["sim-gpu-4x"]}
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


def kueue_and_karpenter(
    kubectl: Callable[..., str],
    get: Callable[[str, str], dict[str, Any]],
    cond: Callable[[dict[str, Any], str], dict[str, Any]],
    apply: Callable[[dict[str, Any]], None],
) -> None:
    """Step 8: two 4-GPU runs against a 4-GPU quota, on nodes Karpenter makes and removes, with the times."""
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": queue_and_pool()}))
    apply(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "gpu"},
            "spec": {"clusterQueue": POOL},
        }
    )
    runs = ("gpu-queued-a", "gpu-queued-b")
    started = time.monotonic()
    for name in runs:
        run = gpu_trainingjob(name, 4)
        run["spec"]["training"]["queueName"] = "gpu"
        apply(run)

    def queued(name: str) -> dict[str, Any]:
        return cond(get("tj", name), "Queued")

    def split() -> tuple[str, str] | None:
        words = {name: queued(name).get("message", "") for name in runs}
        admitted = [n for n in runs if "admitted by Kueue's ClusterQueue" in words[n]]
        waiting = [n for n in runs if queued(n).get("reason") == "Pending"]
        return (admitted[0], waiting[0]) if len(admitted) == 1 and len(waiting) == 1 else None

    first, second = wait(split, 60, "one run admitted and one waiting on quota")
    say(f"     {first}: {queued(first)['message']}")
    say(f"     {second}: Queued/{queued(second)['reason']}: {queued(second)['message']}")

    def pool_nodes(ready_only: bool = True) -> list[dict[str, Any]]:
        nodes = json.loads(kubectl("get", "nodes", "-l", f"{POOL_LABEL}={POOL}", "-o", "json"))["items"]
        return [
            n
            for n in nodes
            if not ready_only
            or any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
        ]

    node = wait(lambda: (ns := pool_nodes()) and ns[0], 120, "Karpenter's node")
    say(
        f"     Karpenter: NodeClaim -> node {node['metadata']['name']} "
        f"({node['metadata']['labels']['node.kubernetes.io/instance-type']}, "
        f"{node['status']['allocatable']['nvidia.com/gpu']} GPUs) Ready "
        f"{time.monotonic() - started:.1f}s after the runs were applied"
    )
    for name in (first, second):
        done = wait(
            lambda n=name: (t := get("tj", n)) and cond(t, "Failed").get("status") == "True" and t,
            180,
            f"{name} to end",
        )
        pod = json.loads(kubectl("get", "pods", "-n", NS, "-l", f"modelfleet.io/trainingjob={name}", "-o", "json"))[
            "items"
        ]
        say(
            f"     {name} scheduled to {pod[0]['spec'].get('nodeName') if pod else '?'}, ran and ended "
            f"({cond(done, 'Failed').get('reason')}: KWOK runs no trainer)"
        )
    emptied = time.monotonic()
    wait(lambda: not pool_nodes(ready_only=False), 180, "Karpenter to remove the empty node")
    say(
        f"     the node was empty; Karpenter removed it {time.monotonic() - emptied:.1f}s later "
        "(consolidation WhenEmpty)"
    )


def serving_ip(kubectl: Callable[..., str], version: int) -> str:
    selector = f"modelfleet.io/model={MODEL},modelfleet.io/version={version},app.kubernetes.io/component=serving"

    def ready_ip() -> str | None:
        pods = json.loads(kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json"))["items"]
        for p in pods:
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []):
                return str(p["status"]["podIP"])
        return None

    return wait(ready_ip, 120, f"a ready pod of version {version}")


def rows(dataset: Path, start: int, n: int) -> dict[str, list[Any]]:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(dataset)
    return {f["name"]: table.column(f["name"]).to_pylist()[start : start + n] for f in feature_spec("breast_cancer")}


def infer(ip: str, cols: dict[str, list[Any]]) -> dict[str, Any]:
    n = len(next(iter(cols.values())))
    body = {
        "inputs": [
            {
                "name": f["name"],
                "shape": [n],
                "datatype": "BYTES" if f["type"] == "categorical" else "FP64",
                "data": cols[f["name"]],
            }
            for f in feature_spec("breast_cancer")
        ]
    }
    req = urllib.request.Request(
        f"http://{ip}:8080/v2/models/{MODEL}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def send(ip: str, dataset: Path, n: int, batch: int = 50) -> None:
    for start in range(0, n, batch):
        infer(ip, rows(dataset, start, batch))


def events(kubectl: Callable[..., str], name: str) -> list[str]:
    items = json.loads(
        kubectl("get", "events", "-n", NS, f"--field-selector=involvedObject.name={name}", "-o", "json")
    )["items"]
    items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    noise = ("Logging", "ScalingReplicaSet", "FailedToUpdateEndpoint", "FailedToUpdateEndpointSlices")
    return [f"{name}: {e['reason']}: {e['message'][:110]}" for e in items if e["reason"] not in noise]


def dataset_spec() -> dict[str, Any]:
    """The breast-cancer dataset on the demo's volume, as MLModels and TrainingJobs name it."""
    return {"uri": "pvc://datasets/breast_cancer.csv", "target": "target", "features": feature_spec("breast_cancer")}


def gpu_trainingjob(name: str, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "framework": "pytorch",
            "task": "classification",
            "dataset": dataset_spec(),
            "training": {
                "estimator": "mlp",
                "resources": {"gpu": gpus, "memory": "8Gi"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "output": {"uri": f"pvc://model-store/{name}"},
        },
    }


def query_range(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1s"})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=10) as r:
        return list(json.loads(r.read())["data"]["result"])


def draw(url: str, start: float, end: float) -> None:
    """Drift (the worst feature's PSI, per serving version) and the serving version over time, from Prometheus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drift = query_range(
        url,
        f'max by (version) (modelfleet_feature_drift{{namespace="{NS}",model="{MODEL}",statistic="psi"}})',
        start,
        end,
    )
    versions = query_range(url, f'modelfleet_model_serving_version{{namespace="{NS}",model="{MODEL}"}}', start, end)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for series in drift:
        t = [float(v[0]) - start for v in series["values"]]
        y = [float(v[1]) for v in series["values"]]
        top.plot(t, y, label=f"version {series['metric'].get('version', '?')}")
    top.axhline(PSI_THRESHOLD, color="red", linestyle="--", label=f"threshold {PSI_THRESHOLD:g}")
    top.set_ylabel("PSI, worst feature")
    top.set_title(f"{MODEL}: drift and versions (from Prometheus, one demo run)")
    top.legend(loc="upper left")
    for series in versions:
        t = [float(v[0]) - start for v in series["values"]]
        bottom.step(t, [float(v[1]) for v in series["values"]], where="post", color="black")
    bottom.set_ylabel("serving version")
    bottom.set_yticks([1, 2])
    bottom.set_xlabel("seconds since the model was applied")
    fig.tight_layout()
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PICTURE, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
