"""The executor process: registers its Node, watches the pods bound to it and runs one PodWorker per pod."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from modelfleet.devcluster.executor.node import NodeAgent
from modelfleet.devcluster.executor.podstatus import rfc3339
from modelfleet.devcluster.executor.provisioner import Provisioner
from modelfleet.devcluster.executor.volumes import ClusterReads
from modelfleet.devcluster.executor.worker import PodContext, PodWorker
from modelfleet.devcluster.processes import MARKER_ENV, environ_of, marked_pids, terminate

NODE_ENV = "MODELFLEET_EXECUTOR_NODE"
RELIST_SECONDS = 60.0


def pod_network(cluster_id: str) -> ipaddress.IPv4Network:
    """A loopback /16 of this cluster's own, 127.N.0.0/16 with N from 1 to 254 chosen by the cluster's id: two dev
    clusters on one machine (the demo's and a test session's) would otherwise hand out the same pod addresses, and a
    new pod's server could not bind while the other cluster's server answered in its place."""
    digest = hashlib.sha256(cluster_id.encode()).digest()
    return ipaddress.IPv4Network(f"127.{1 + int.from_bytes(digest[:4], 'big') % 254}.0.0/16")


class IpAllocator:
    """One loopback address per pod in the cluster's pod network; 127.0.0.1 stays the node's."""

    def __init__(self, network: ipaddress.IPv4Network | None = None) -> None:
        self.used: dict[str, str] = {}
        self.network = network or pod_network(os.environ.get(MARKER_ENV, ""))

    def allocate(self, uid: str, preferred: str | None) -> str:
        if uid in self.used:
            return self.used[uid]
        taken = set(self.used.values())
        if preferred and preferred not in taken and ipaddress.ip_address(preferred) in self.network:
            self.used[uid] = preferred
            return preferred
        for host in self.network.hosts():
            ip = str(host)
            if ip.endswith(".0") or ip.endswith(".1") or ip.endswith(".255") or ip in taken:
                continue
            self.used[uid] = ip
            return ip
        raise RuntimeError("no loopback addresses left for pods")

    def release(self, uid: str) -> None:
        self.used.pop(uid, None)


def _now() -> str:
    return rfc3339(datetime.datetime.now(datetime.UTC))


class Executor:
    def __init__(self, kubeconfig: Path, node_name: str, state_dir: Path, gpus: int, ca_file: Path) -> None:
        self.log = logging.getLogger("modelfleet.executor")
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 64  # one status writer per pod thread
        self.api_client = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api_client)
        self.node_name, self.state_dir, self.gpus, self.ca_file = node_name, state_dir, gpus, ca_file
        self.host_ip = "127.0.0.1"
        self.stop = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.ips = IpAllocator()
        server = urllib3.util.parse_url(cfg.host)
        venv_bin = str(Path(sys.executable).parent)
        self.base_env = {
            "PATH": os.pathsep.join(
                [venv_bin, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            ),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            # The service environment the kubelet injects, pointing at the API server, so in-cluster config works.
            "KUBERNETES_SERVICE_HOST": server.host or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(server.port or 443),
            "KUBERNETES_PORT": f"tcp://{server.host}:{server.port}",
        }
        self.marker_env = {NODE_ENV: node_name}
        if os.environ.get(MARKER_ENV):
            self.marker_env[MARKER_ENV] = os.environ[MARKER_ENV]
        self.ctx = PodContext(
            api=self.core,
            node_name=node_name,
            host_ip=self.host_ip,
            state_dir=state_dir,
            reads=ClusterReads(
                configmap=self._configmap,
                secret=self._secret,
                secret_text=self._secret_decoded,
                claim_path=self._claim_path,
                service_account_token=self._token,
                root_ca=lambda: self.ca_file.read_text(),
            ),
            base_env=self.base_env,
            marker_env=self.marker_env,
            emit_event=self._event,
            log=self.log,
        )

    # -- reads for volumes and env ------------------------------------------------------------------------
    def _read(self, fn: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return json.loads(fn(*args, _preload_content=False).data)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _configmap(self, ns: str, name: str) -> Mapping[str, str] | None:
        obj = self._read(self.core.read_namespaced_config_map, name, ns)
        if obj is None:
            return None
        binary = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("binaryData") or {}).items()}
        return {**(obj.get("data") or {}), **binary}

    def _secret(self, ns: str, name: str) -> Mapping[str, str] | None:
        obj = self._read(self.core.read_namespaced_secret, name, ns)
        return None if obj is None else (obj.get("data") or {})

    def _secret_decoded(self, ns: str, name: str) -> Mapping[str, str] | None:
        data = self._secret(ns, name)
        return None if data is None else {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}

    def _claim_path(self, ns: str, claim: str) -> Path | None:
        pvc = self._read(self.core.read_namespaced_persistent_volume_claim, claim, ns)
        if not pvc or (pvc.get("status") or {}).get("phase") != "Bound":
            return None
        pv = self._read(self.core.read_persistent_volume, pvc["spec"]["volumeName"])
        path = ((pv or {}).get("spec") or {}).get("hostPath", {}).get("path")
        return Path(path) if path else self.state_dir / "claims" / ns / claim

    def _token(self, pod: Mapping[str, Any], audience: str | None, seconds: int) -> str:
        meta = pod["metadata"]
        spec: dict[str, Any] = {
            "expirationSeconds": max(int(seconds), 600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if audience:
            spec["audiences"] = [audience]
        resp = self.core.create_namespaced_service_account_token(
            pod["spec"].get("serviceAccountName", "default"), meta["namespace"], {"spec": spec}
        )
        return str(resp.status.token)

    def _event(self, pod: Mapping[str, Any], etype: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": etype,
            "reason": reason,
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "source": {"component": "modelfleet-executor", "host": self.node_name},
            "reportingComponent": "modelfleet-executor",
            "reportingInstance": self.node_name,
        }
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
            self.core.create_namespaced_event(meta["namespace"], body)

    # -- pods -------------------------------------------------------------------------------------------------
    def _sync(self, pod: dict[str, Any]) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        uid = meta["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
            # Nothing runs for it here (finished before an executor restart, or deleted before it started).
            if meta.get("deletionTimestamp"):
                with contextlib.suppress(ApiException):
                    self.core.delete_namespaced_pod(
                        meta["name"],
                        meta["namespace"],
                        grace_period_seconds=0,
                        body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                    )
            return
        ip = self.ips.allocate(uid, status.get("podIP"))
        worker = PodWorker(self.ctx, pod, ip)
        self.workers[uid] = worker
        worker.start()

    def _reap(self, present: set[str] | None = None) -> None:
        for uid, worker in list(self.workers.items()):
            if present is not None and uid not in present:
                worker.mark_gone()
            if not worker.is_alive():
                del self.workers[uid]
                self.ips.release(uid)
                shutil.rmtree(worker.pod_dir, ignore_errors=True)

    def _relist(self) -> str:
        data = json.loads(
            self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node_name}", _preload_content=False
            ).data
        )
        for pod in data["items"]:
            self._sync(pod)
        self._reap({p["metadata"]["uid"] for p in data["items"]})
        return str(data["metadata"]["resourceVersion"])

    def watch_pods(self) -> None:
        rv: str | None = None
        last_list = 0.0
        while not self.stop.is_set():
            try:
                if rv is None or time.monotonic() - last_list > RELIST_SECONDS:
                    rv, last_list = self._relist(), time.monotonic()
                w = watch.Watch()
                for ev in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.node_name}",
                    resource_version=rv,
                    timeout_seconds=5,
                    allow_watch_bookmarks=True,
                ):
                    obj = ev["raw_object"]
                    if ev["type"] == "ERROR":
                        rv = None  # 410 Gone and friends: list again
                        break
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if ev["type"] == "DELETED":
                        worker = self.workers.get(obj["metadata"]["uid"])
                        if worker:
                            worker.mark_gone()
                    elif ev["type"] in ("ADDED", "MODIFIED"):
                        self._sync(obj)
                    if self.stop.is_set():
                        break
                self._reap()
            except ApiException as e:
                self.log.warning("pod watch failed (%s); listing again", e.reason)
                rv = None
                self.stop.wait(1)
            except Exception as e:  # API server restarting or unreachable: keep the pods running, retry
                self.log.warning("pod watch interrupted: %s", e)
                rv = None
                self.stop.wait(1)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def kill_leftovers(self) -> None:
        """Container processes of an earlier executor of this node that crashed (found by their marker)."""
        me = os.getpid()
        pids = [p for p in marked_pids(os.environ.get(MARKER_ENV, "")) if p != me] if os.environ.get(MARKER_ENV) else []
        pids = [p for p in pids if environ_of(p).get(NODE_ENV) == self.node_name]
        if pids:
            self.log.warning("stopping %d process(es) left by an earlier executor", len(pids))
            terminate(pids, grace=3.0)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        self.kill_leftovers()
        version = "v0.0.0"
        deadline = time.monotonic() + 120
        while True:
            try:
                version = client.VersionApi(self.api_client).get_code().git_version
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        agent = NodeAgent(
            self.core,
            client.CoordinationV1Api(self.api_client),
            self.node_name,
            self.host_ip,
            self.gpus,
            version,
            self.log,
        )
        agent.register()
        threading.Thread(target=agent.heartbeat_forever, args=(self.stop,), daemon=True, name="heartbeat").start()
        provisioner = Provisioner(self.core, self.state_dir / "volumes", self.log)
        threading.Thread(target=provisioner.run_forever, args=(self.stop,), daemon=True, name="provisioner").start()
        self.log.info("executor node %s ready", self.node_name)
        try:
            self.watch_pods()
        finally:
            for worker in self.workers.values():
                worker.request_exit()
            for worker in self.workers.values():
                worker.join(timeout=15)
            self.log.info("executor stopped")
