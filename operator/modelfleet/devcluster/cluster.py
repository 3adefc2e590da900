"""The local control plane: etcd, kube-apiserver (TLS, RBAC, service-account signing), kube-controller-manager,
kube-scheduler, kwok (simulated GPU nodes) and the local executor node, all on loopback.

`up` is idempotent (a healthy cluster is left alone) and recovers from a crash (leftover processes are stopped by
their marker, etcd's data and the certificates are kept). A failed start stops everything it started and raises
`StartError` naming the component and showing the end of its log: never a half-started cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelfleet.devcluster.binaries import SetupError, find_binaries
from modelfleet.devcluster.kubeconfig import write_kubeconfig
from modelfleet.devcluster.pki import Pki, ensure_pki
from modelfleet.devcluster.processes import Supervisor, free_ports, port_is_free, tail

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "executor")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
SERVICE_CIDR = "10.96.0.0/16"
KWOK_POD_CIDR = "127.64.0.0/16"
DEV_BUCKET = "modelfleet"


class StartError(SetupError):
    """A component did not become ready."""


def default_state_dir() -> Path:
    import os

    base = os.environ.get("MODELFLEET_STATE_DIR")
    if base:
        return Path(base)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "modelfleet" / "dev-cluster"


@dataclass
class ClusterConfig:
    state_dir: Path
    gpu_nodes: int = 2
    gpus_per_node: int = 4
    executor_node: str = "modelfleet-executor"
    executor_gpus: int = 0
    ready_timeout: float = 180.0  # generous: a loaded two-core machine starts the API server slowly


def desired_gpu_node(index: int, gpus: int) -> dict[str, Any]:
    """A simulated GPU node managed by KWOK, labelled and tainted like a GPU-operator node."""
    name = f"kwok-gpu-{index}"
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "modelfleet.io/simulated": "true",
                "node.kubernetes.io/instance-type": f"sim-gpu-{gpus}x",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.count": str(gpus),
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.memory": "81559",
            },
        },
        "spec": {"taints": [GPU_TAINT]},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def _tls_context(pki: Pki | None) -> ssl.SSLContext:
    if pki is None:  # component health endpoints use self-signed certificates
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.client_cert("admin")), str(pki.client_key("admin")))
    return ctx


def _get_ok(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class DevCluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.cfg = config
        self.state_dir = config.state_dir
        self.state_file = self.state_dir / "cluster.json"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.pki = Pki(self.state_dir / "pki")
        self.sup = Supervisor(self.state_dir, self._cluster_id())

    # -- state --------------------------------------------------------------------------------------------------
    def _cluster_id(self) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "cluster-id"
        if not path.exists():
            path.write_text(f"mf-{secrets.token_hex(6)}")
        return path.read_text().strip()

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def log_path(self, component: str) -> Path:
        return self.sup.log_path(component)

    # -- faults (the chaos tests) ----------------------------------------------------------------------------------
    def stop_component(self, component: str) -> None:
        """Stops one component (SIGTERM, then SIGKILL): an outage of the API server or etcd, for fault tests."""
        self.sup.stop(component, grace=5.0)

    def start_component(self, component: str) -> None:
        """Starts a component stopped with stop_component on its old address, and waits until it serves."""
        self.sup.restart(component)
        state = self._load()
        if component == "kube-apiserver":
            self._wait(component, lambda: _get_ok(f"{state['server']}/readyz", _tls_context(self.pki)))
        elif component == "etcd":
            self._wait(component, lambda: _get_ok(f"http://127.0.0.1:{state['ports']['etcd_client']}/health"))

    # -- status -----------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self._load()
        procs = {c: self.sup.pid_of(c) for c in COMPONENTS}
        api_ready = bool(state) and _get_ok(f"{state['server']}/readyz", _tls_context(self.pki))
        return {
            "state_dir": str(self.state_dir),
            "kubeconfig": str(self.kubeconfig),
            "server": state.get("server"),
            "version": state.get("version"),
            "api_ready": api_ready,
            "processes": procs,
        }

    def healthy(self) -> bool:
        st = self.status()
        return bool(st["api_ready"]) and all(pid is not None for pid in st["processes"].values())

    # -- up --------------------------------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        with self._locked():
            if self.healthy():
                progress(f"dev cluster already running (kubeconfig: {self.kubeconfig})")
                return
            leftovers = self.sup.stop_all_marked()
            if leftovers:
                progress(f"stopped {len(leftovers)} leftover process(es) of an earlier run")
            bin_dir = find_binaries()
            last: StartError | None = None
            for attempt in range(3):  # a free port can be taken between our check and the bind: retry with new ones
                try:
                    self._start_all(bin_dir, progress, reuse_ports=attempt == 0)
                    return
                except StartError as e:
                    self.sup.stop_all_marked()
                    last = e
                    if "address already in use" not in str(e):
                        raise
                    progress("a port was taken meanwhile; retrying with new ports")
            assert last is not None
            raise last

    def _recorded_ports(self) -> dict[str, int]:
        try:
            recorded = json.loads(self.state_file.read_text()).get("ports") or {}
            return {str(k): int(v) for k, v in recorded.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _choose_ports(self, progress: Callable[[str], None], reuse: bool) -> dict[str, int]:
        """The ports of the last start where they are free, so the API server keeps its address (kubeconfigs and
        running clients keep working, as with a real cluster's stable endpoint); new ones where they are not."""
        recorded = self._recorded_ports() if reuse else {}
        keys = ("etcd_client", "etcd_peer", "apiserver", "kcm", "scheduler", "kwok")
        ports: dict[str, int] = {}
        for key in keys:
            before = recorded.get(key)
            if before and before not in ports.values() and port_is_free(before):
                ports[key] = before
        missing = [k for k in keys if k not in ports]
        for key, port in zip(missing, free_ports(len(missing), taken=set(ports.values())), strict=True):
            ports[key] = port
            if recorded.get(key) and key == "apiserver":
                progress(
                    f"the API server's port {recorded[key]} is taken; it moves to {port} "
                    "(the kubeconfig is rewritten; clients holding the old address must reload it)"
                )
        return {k: ports[k] for k in keys}

    def _start_all(self, bin_dir: Path, progress: Callable[[str], None], reuse_ports: bool = True) -> None:
        ensure_pki(self.pki.dir)
        ports = self._choose_ports(progress, reuse_ports)
        server = f"https://127.0.0.1:{ports['apiserver']}"
        write_kubeconfig(self.kubeconfig, server, self.pki, "admin")
        kcm_kc = write_kubeconfig(
            self.state_dir / "kubeconfigs" / "kcm.kubeconfig", server, self.pki, "kube-controller-manager"
        )
        sched_kc = write_kubeconfig(
            self.state_dir / "kubeconfigs" / "scheduler.kubeconfig", server, self.pki, "kube-scheduler"
        )
        version = subprocess.run(
            [str(bin_dir / "kube-apiserver"), "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[-1]
        self.state_file.write_text(
            json.dumps({"server": server, "ports": ports, "bin_dir": str(bin_dir), "version": version}, indent=2)
        )
        b = lambda name: str(bin_dir / name)  # noqa: E731
        etcd_url = f"http://127.0.0.1:{ports['etcd_client']}"

        progress(f"starting etcd (Kubernetes {version})")
        self.sup.start(
            "etcd",
            [
                b("etcd"),
                "--name=dev",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
                f"--initial-cluster=dev=http://127.0.0.1:{ports['etcd_peer']}",
                "--unsafe-no-fsync",  # a throw-away dev cluster: durability is not worth the latency on slow disks
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: _get_ok(f"{etcd_url}/health"))

        progress("starting kube-apiserver")
        p = self.pki
        self.sup.start(
            "kube-apiserver",
            [
                b("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports['apiserver']}",
                f"--tls-cert-file={p.serving_cert}",
                f"--tls-private-key-file={p.serving_key}",
                f"--client-ca-file={p.ca_cert}",
                "--authorization-mode=RBAC",
                # The front-proxy settings fill kube-system/extension-apiserver-authentication, which the controller
                # manager and scheduler read for delegated authentication (without them they log errors constantly).
                f"--requestheader-client-ca-file={p.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",  # nothing on this machine routes to the service network
                # API Priority and Fairness stays on, as in every real cluster: the admin identity of the tests and the
                # dev tools is in system:masters (exempt), and the chaos tests throttle an operator's own flow with it.
                f"--cert-dir={self.state_dir / 'apiserver-certs'}",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver", lambda: _get_ok(f"{server}/readyz", _tls_context(self.pki)))

        progress("starting kube-controller-manager, kube-scheduler, kwok and the local executor")
        self.sup.start(
            "kube-controller-manager",
            [
                b("kube-controller-manager"),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kcm']}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                f"--cert-dir={self.state_dir / 'kcm-certs'}",
                "--v=1",
            ],
        )
        self.sup.start(
            "kube-scheduler",
            [
                b("kube-scheduler"),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                "--leader-elect=false",
                f"--cert-dir={self.state_dir / 'scheduler-certs'}",
                "--v=1",
            ],
        )
        self.sup.start(
            "kwok",
            [
                b("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self._kwok_config(bin_dir)}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                "--node-lease-duration-seconds=40",
                # Simulated pods get loopback addresses (KWOK's default is 10.0.0.0/24): Prometheus discovers every
                # annotated pod, and a scrape of a simulated one must stay on this machine (it is refused there).
                f"--cidr={KWOK_POD_CIDR}",
            ],
        )
        self.sup.start(
            "executor",
            [
                sys.executable,
                "-m",
                "modelfleet.devcluster.executor",
                f"--kubeconfig={self.kubeconfig}",
                f"--node-name={self.cfg.executor_node}",
                f"--state-dir={self.state_dir / 'executor'}",
                f"--ca-file={p.ca_cert}",
                f"--gpus={self.cfg.executor_gpus}",
            ],
        )
        insecure = _tls_context(None)
        self._wait("kube-controller-manager", lambda: _get_ok(f"https://127.0.0.1:{ports['kcm']}/healthz", insecure))
        self._wait("kube-scheduler", lambda: _get_ok(f"https://127.0.0.1:{ports['scheduler']}/healthz", insecure))
        self._wait("kwok", lambda: _get_ok(f"http://127.0.0.1:{ports['kwok']}/healthz"))

        progress(f"registering {self.cfg.gpu_nodes} simulated GPU node(s) with {self.cfg.gpus_per_node} GPUs each")
        self._bootstrap_objects()
        self._wait("executor", lambda: self._nodes_ready([self.cfg.executor_node]))
        gpu_nodes = [f"kwok-gpu-{i}" for i in range(self.cfg.gpu_nodes)]
        self._wait("kwok", lambda: self._nodes_ready(gpu_nodes))
        self._wait("kube-controller-manager", self._default_service_account_exists)
        progress(f"dev cluster ready: export KUBECONFIG={self.kubeconfig}")

    def _kwok_config(self, bin_dir: Path) -> Path:
        """KWOK's stages (copied from its module by hack/k8s-binaries.sh) as one configuration file."""
        stages = sorted((bin_dir / "kwok-stages").glob("*.yaml"))
        if not stages:
            raise SetupError(f"{bin_dir}/kwok-stages has no KWOK stage files; run hack/k8s-binaries.sh again")
        path = self.state_dir / "kwok.yaml"
        path.write_text("\n---\n".join(s.read_text().strip() for s in stages) + "\n")
        return path

    def _wait(self, component: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.cfg.ready_timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.sup.exited(component):
                raise StartError(
                    f"{component} exited during start-up; last lines of {self.log_path(component)}:\n"
                    f"{tail(self.log_path(component))}"
                )
            time.sleep(0.25)
        raise StartError(
            f"{component} not ready after {self.cfg.ready_timeout:.0f}s; last lines of "
            f"{self.log_path(component)}:\n{tail(self.log_path(component))}"
        )

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        bin_dir = Path(self._load()["bin_dir"])
        return subprocess.run(
            [str(bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
        )

    def _bootstrap_objects(self) -> None:
        from modelfleet.devcluster.executor.provisioner import desired_storage_class

        objects = [desired_storage_class()] + [
            desired_gpu_node(i, self.cfg.gpus_per_node) for i in range(self.cfg.gpu_nodes)
        ]
        for obj in objects:
            # Server-side apply: idempotent, and a Node's status is kept on create (as a kubelet registers).
            res = self.kubectl(
                "apply",
                "--server-side",
                "--field-manager=modelfleet-dev-cluster",
                "--force-conflicts",
                "-f",
                "-",
                input=json.dumps(obj),
                check=False,
            )
            if res.returncode != 0:
                raise StartError(f"registering {obj['kind']} {obj['metadata']['name']} failed: {res.stderr.strip()}")

    def _nodes_ready(self, names: list[str]) -> bool:
        res = self.kubectl("get", "nodes", "-o", "json", check=False)
        if res.returncode != 0:
            return False
        ready = {
            n["metadata"]["name"]
            for n in json.loads(res.stdout)["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
        }
        return set(names) <= ready

    def _default_service_account_exists(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    # -- object storage (on demand) ------------------------------------------------------------------------------
    def object_store(self, namespaces: Sequence[str] = (), bucket: str = DEV_BUCKET) -> dict[str, str]:
        """Starts the dev S3 server (versitygw) unless it runs, with credentials generated once and kept in the state
        directory (mode 0600), makes `bucket`, and puts the credentials Secret (modelfleet-s3) in each namespace.
        Returns the operator settings that make the bucket its default artifact store. `down` stops it too (it
        carries the cluster's marker)."""
        from modelfleet.artifact.objectstore import ObjectStore, S3Settings
        from modelfleet.devcluster.s3 import (
            SECRET_NAME,
            credentials_env,
            secret_manifest,
            versitygw_command,
            wait_listening,
        )

        with self._locked():
            state = self._load()
            if not state:
                raise SetupError("no dev cluster here; run `modelfleet dev-cluster up` first")
            creds_file = self.state_dir / "s3" / "credentials.json"
            creds_file.parent.mkdir(parents=True, exist_ok=True)
            if not creds_file.exists():
                creds_file.touch(mode=0o600)
                creds_file.write_text(
                    json.dumps({"access_key": f"mf{secrets.token_hex(8)}", "secret_key": secrets.token_urlsafe(30)})
                )
            creds = json.loads(creds_file.read_text())
            taken = set(state.get("ports", {}).values())
            port = int(state.get("ports", {}).get("s3") or 0)
            if self.sup.pid_of("versitygw") is None or not port:
                port = port if port and port_is_free(port) else free_ports(1, taken=taken)[0]
                argv, env = versitygw_command(port, self.state_dir / "s3" / "buckets", **creds)
                (self.state_dir / "s3" / "buckets").mkdir(parents=True, exist_ok=True)
                self.sup.start("versitygw", argv, env)
                wait_listening(port, lambda: self.sup.exited("versitygw"), self.log_path("versitygw"), 20.0)
                state.setdefault("ports", {})["s3"] = port
                self.state_file.write_text(json.dumps(state, indent=2))
        endpoint = f"http://127.0.0.1:{port}"
        env = credentials_env(endpoint, creds["access_key"], creds["secret_key"])
        store = ObjectStore(S3Settings.from_env(env))
        if not store.client.bucket_exists(bucket):
            store.client.make_bucket(bucket)
        for ns in namespaces:
            res = self.kubectl("apply", "-f", "-", input=json.dumps(secret_manifest(ns, env)), check=False)
            if res.returncode != 0:
                raise SetupError(f"writing Secret {SECRET_NAME} in namespace {ns} failed: {res.stderr.strip()}")
        return {
            "MODELFLEET_ARTIFACTS_URI": f"s3://{bucket}/fleet",
            "MODELFLEET_S3_ENDPOINT": endpoint,
            "MODELFLEET_S3_SECRET": SECRET_NAME,
        }

    # -- Kueue (on demand) ---------------------------------------------------------------------------------------
    def kueue(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        """Starts Kueue (built from its Go module) unless it runs: its CRDs applied server-side (the Workload CRD is
        too large for a client-side apply's annotation), its namespace, serving certificates for its webhook and
        metrics servers, then the process, supervised like the others (`down` stops it). Waits for its readiness
        probe. ClusterQueues, ResourceFlavors and LocalQueues are the user's to create."""
        from modelfleet.devcluster import kueue
        from modelfleet.devcluster.pki import issue_loopback_serving_cert

        with self._locked():
            state = self._state_to_start("kueue", "kueue_health")
            if state is None:
                return
            ports = state["ports"]
            directory = kueue.find_kueue()
            self._install_crds("Kueue", directory / "crds", kueue.NAMESPACE)
            cert_dir = self.state_dir / "kueue" / "certs"
            for where in (cert_dir, kueue.METRICS_CERT_DIR):
                try:
                    issue_loopback_serving_cert(self.pki, "kueue", where / "tls.crt", where / "tls.key")
                except OSError as e:
                    raise StartError(
                        f"writing Kueue's serving certificate to {where} failed ({e}); Kueue reads its metrics "
                        "certificate from that fixed path, which needs root"
                    ) from e
            names = ("kueue_webhook", "kueue_health", "kueue_metrics")
            ports.update(zip(names, free_ports(len(names), taken=set(ports.values())), strict=True))
            config = kueue.write_configuration(
                self.state_dir / "kueue" / "config.yaml",
                kueue.configuration(
                    webhook_port=ports["kueue_webhook"],
                    health_port=ports["kueue_health"],
                    metrics_port=ports["kueue_metrics"],
                    cert_dir=cert_dir,
                ),
            )
            argv, env = kueue.command(directory / "kueue", config, self.kubeconfig)
            progress(f"starting Kueue ({directory / 'kueue'})")
            self.sup.start("kueue", argv, env)
            self._wait("kueue", lambda: _get_ok(f"http://127.0.0.1:{ports['kueue_health']}/readyz"))
            self.state_file.write_text(json.dumps(state, indent=2))

    def _state_to_start(self, component: str, health_port: str) -> dict[str, Any] | None:
        """The cluster's state, to start an on-demand `component` with (its `ports` map present); None when it runs
        already. Called with the cluster's lock held."""
        state = self._load()
        if not state:
            raise SetupError("no dev cluster here; run `modelfleet dev-cluster up` first")
        state.setdefault("ports", {})
        if self.sup.pid_of(component) is not None and state["ports"].get(health_port):
            return None
        return state

    def _install_crds(self, what: str, directory: Path, namespace: str) -> None:
        """Applies a component's CRDs server-side (some are too large for a client-side apply's annotation), waits
        until they are established, and makes the component's namespace."""
        crds = sorted(directory.glob("*.yaml"))
        for crd in crds:
            res = self.kubectl(
                "apply", "--server-side", "--field-manager=modelfleet-dev-cluster", "--force-conflicts", "-f", str(crd),
                check=False,
            )  # fmt: skip
            if res.returncode != 0:
                raise StartError(f"applying {what}'s CRD {crd.name} failed: {res.stderr.strip()}")
        names = [f"crd/{plural}.{group}" for group, plural in (c.stem.split("_", 1) for c in crds)]
        res = self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names, check=False)
        if res.returncode != 0:
            raise StartError(f"{what}'s CRDs were not established: {res.stderr.strip()}")
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )

    # -- Karpenter (on demand) -----------------------------------------------------------------------------------
    def karpenter(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        """Starts Karpenter with its KWOK provider (built from its Go module) unless it runs: its CRDs, its namespace,
        then the process, supervised like the others (`down` stops it). Waits for its readiness probe. NodePools and
        KWOKNodeClasses are the user's to create; the nodes Karpenter makes are run by the dev cluster's KWOK."""
        from modelfleet.devcluster import karpenter

        with self._locked():
            state = self._state_to_start("karpenter", "karpenter_health")
            if state is None:
                return
            ports = state["ports"]
            directory = karpenter.find_karpenter()
            self._install_crds("Karpenter", directory / "crds", karpenter.NAMESPACE)
            names = ("karpenter_metrics", "karpenter_health")
            ports.update(zip(names, free_ports(len(names), taken=set(ports.values())), strict=True))
            argv, env = karpenter.command(
                directory / "karpenter-kwok",
                self.state_dir,
                self.kubeconfig,
                metrics_port=ports["karpenter_metrics"],
                health_port=ports["karpenter_health"],
            )
            progress(f"starting Karpenter ({directory / 'karpenter-kwok'})")
            self.sup.start("karpenter", argv, env)
            self._wait("karpenter", lambda: _get_ok(f"http://127.0.0.1:{ports['karpenter_health']}/readyz"))
            self.state_file.write_text(json.dumps(state, indent=2))

    # -- down ----------------------------------------------------------------------------------------------------
    def down(self, purge: bool = False, progress: Callable[[str], None] = lambda _m: None) -> None:
        with self._locked():
            # Kueue and Karpenter while the API server still answers them; the executor next, so it can stop its
            # container processes gracefully; etcd last.
            self.sup.stop("kueue")
            self.sup.stop("karpenter")
            for component in reversed(COMPONENTS):
                self.sup.stop(component, grace=20.0 if component == "executor" else 10.0)
            leftovers = self.sup.stop_all_marked()
            if leftovers:
                progress(f"stopped {len(leftovers)} leftover process(es)")
            self.state_file.unlink(missing_ok=True)
            if purge:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            progress("dev cluster stopped" + (" and its state removed" if purge else ""))
