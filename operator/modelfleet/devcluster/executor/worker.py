"""One thread per pod bound to the executor's node: prepares volumes, runs init containers then containers as local
processes, runs probes, applies the restart policy with back-off, publishes status, and stops gracefully on deletion."""

from __future__ import annotations

import datetime
import http.client
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from modelfleet.devcluster.executor.envvars import EnvError, build_env, container_argv
from modelfleet.devcluster.executor.podstatus import ContainerRecord, compute_phase, compute_pod_status
from modelfleet.devcluster.executor.probes import ProbeTracker, run_probe
from modelfleet.devcluster.executor.process import ContainerProcess
from modelfleet.devcluster.executor.volumes import ClusterReads, VolumeError, container_mounts, prepare_volumes

TICK = 0.2
RETRY_CONFIG_SECONDS = 2.0


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class PodContext:
    """What every pod worker shares."""

    api: CoreV1Api
    node_name: str
    host_ip: str
    state_dir: Path
    reads: ClusterReads
    base_env: Mapping[str, str]
    marker_env: Mapping[str, str]
    emit_event: Callable[[Mapping[str, Any], str, str, str], None]  # (pod, type, reason, message)
    backoff_base: float = 2.0
    backoff_max: float = 60.0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("modelfleet.executor"))


@dataclass
class Slot:
    """One container of the pod across its restarts."""

    spec: dict[str, Any]
    record: ContainerRecord
    proc: ContainerProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    started_mono: float = 0.0
    not_before: float = 0.0  # back-off / config retry: do not (re)start before this monotonic time
    backoff: float = 0.0
    done: bool = False  # will not run again
    startup: ProbeTracker | None = None
    liveness: ProbeTracker | None = None
    readiness: ProbeTracker | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.record.state == "running"


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N -> 128+N, as a container runtime reports


class PodWorker(threading.Thread):
    def __init__(self, ctx: PodContext, pod: dict[str, Any], pod_ip: str) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.ctx = ctx
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.pod_ip = pod_ip
        self.pod_dir = ctx.state_dir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid}"
        # Logs outlive the pod directory (removed with the pod) so failed tests can still show them.
        self.log_dir = ctx.state_dir / "logs" / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        spec = pod.get("spec", {})
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [self._slot(c, "PodInitializing") for c in spec.get("initContainers") or []]
        self.main = [
            self._slot(c, "PodInitializing" if self.init else "ContainerCreating") for c in spec.get("containers") or []
        ]
        start = (pod.get("status") or {}).get("startTime")
        self.start_time = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")) if start else utcnow()
        self.volumes: dict[str, Path] | None = None
        self.terminal = False
        self.gone = False  # deleted from the API without us (force deletion)
        self.exit_requested = False  # executor shutting down
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._published: dict[str, Any] | None = None

    @staticmethod
    def _slot(spec: dict[str, Any], waiting_reason: str) -> Slot:
        return Slot(
            spec=spec, record=ContainerRecord(name=spec["name"], image=spec.get("image", ""), reason=waiting_reason)
        )

    # -- called from the executor's watch thread -------------------------------------------------------------
    def update(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self.pod = pod
        self._wake.set()

    def mark_gone(self) -> None:
        self.gone = True
        self._wake.set()

    def request_exit(self) -> None:
        self.exit_requested = True
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except Exception:
            self.ctx.log.exception("pod worker %s/%s crashed; stopping its processes", self.namespace, self.pod_name)
        finally:
            for slot in self.init + self.main:
                if slot.proc:
                    slot.proc.kill_group()

    @property
    def deleting(self) -> bool:
        with self._lock:
            return bool(self.pod["metadata"].get("deletionTimestamp"))

    def _loop(self) -> None:
        self._publish()
        while True:
            if self.exit_requested:
                self._stop_containers(grace=5.0, run_pre_stop=False)
                return
            if self.gone:
                self._stop_containers(grace=2.0, run_pre_stop=False)
                return
            if self.deleting:
                self._delete_gracefully()
                return
            if not self.terminal:
                self._step()
                self._publish()
            self._wake.wait(TICK)
            self._wake.clear()

    def _step(self) -> None:
        now = time.monotonic()
        if self.volumes is None:
            try:
                self.volumes = prepare_volumes(self.pod, self.pod_dir, self.ctx.reads, self.pod_ip, self.ctx.host_ip)
            except (VolumeError, EnvError, ApiException, OSError) as e:
                self._all_waiting("ContainerCreating", f"failed to prepare volumes: {e}")
                return
        pending_init = next((s for s in self.init if not s.record.succeeded), None)
        if pending_init is not None:
            self._drive(pending_init, now, init=True)
            if pending_init.record.succeeded:
                for s in self.main:
                    if s.record.state == "waiting" and s.record.reason == "PodInitializing":
                        s.record.reason = "ContainerCreating"
            elif pending_init.done:  # failed for good (restartPolicy Never)
                self.terminal = True
            return
        for slot in self.main:
            self._drive(slot, now, init=False)
        phase = compute_phase(self.restart_policy, [s.record for s in self.init], True, [s.record for s in self.main])
        if phase in ("Succeeded", "Failed"):
            self.terminal = True

    def _drive(self, slot: Slot, now: float, *, init: bool) -> None:
        if slot.done:
            return
        if slot.proc is None or slot.record.state != "running":
            if now >= slot.not_before:
                self._start(slot, now, init=init)
            return
        code = slot.proc.poll()
        if code is not None:
            self._on_exit(slot, code, init=init)
            return
        self._probe(slot, now)

    # -- starting and stopping one container ---------------------------------------------------------------------
    def _start(self, slot: Slot, now: float, *, init: bool) -> None:
        spec, rec = slot.spec, slot.record
        assert self.volumes is not None
        try:
            slot.env = build_env(
                spec,
                self.pod,
                pod_ip=self.pod_ip,
                host_ip=self.ctx.host_ip,
                configmaps=self.ctx.reads.configmap,
                secrets=self.ctx.reads.secret_text,
                base=self.ctx.base_env,
            )
            argv = container_argv(spec, slot.env)
            workdir = self.pod_dir / "containers" / spec["name"]
            mounts = container_mounts(spec, self.volumes, workdir / "termination-log")
        except (EnvError, VolumeError, ApiException) as e:
            if rec.reason != "CreateContainerConfigError":
                self.ctx.emit_event(self.pod, "Warning", "Failed", f"Error: {e}")
            rec.state, rec.reason, rec.message = "waiting", "CreateContainerConfigError", str(e)
            slot.not_before = now + RETRY_CONFIG_SECONDS
            return
        if slot.proc is not None:  # a restart
            rec.restart_count += 1
        slot.proc = ContainerProcess(workdir, self.log_dir / f"{spec['name']}.log", workdir / "termination-log")
        cwd = spec.get("workingDir") or str(workdir)
        try:
            pid = slot.proc.start(
                argv,
                slot.env,
                mounts,
                cwd,
                {**self.ctx.marker_env, "MODELFLEET_EXECUTOR_POD": f"{self.namespace}/{self.pod_name}"},
            )
        except OSError as e:
            self._terminated(slot, 128, "StartError", f"failed to start container: {e}")
            self._after_exit(slot, 128, init=init)
            return
        rec.state, rec.reason, rec.message, rec.exit_code = "running", None, None, None
        rec.started_at, rec.finished_at = utcnow(), None
        rec.container_id = f"modelfleet://{self.uid}-{spec['name']}-{rec.restart_count}-{pid}"
        slot.started_mono = now
        slot.startup = ProbeTracker(spec["startupProbe"], now) if spec.get("startupProbe") else None
        slot.liveness = ProbeTracker(spec["livenessProbe"], now) if spec.get("livenessProbe") else None
        slot.readiness = ProbeTracker(spec["readinessProbe"], now) if spec.get("readinessProbe") else None
        rec.started = slot.startup is None
        rec.ready = rec.started and slot.readiness is None
        self.ctx.emit_event(self.pod, "Normal", "Started", f"Started container {spec['name']}")

    def _terminated(self, slot: Slot, code: int, reason: str, message: str | None) -> None:
        rec = slot.record
        rec.state, rec.exit_code, rec.reason, rec.message = "terminated", code, reason, message
        rec.finished_at = utcnow()
        rec.ready = False
        rec.started = False

    def _on_exit(self, slot: Slot, raw_code: int, *, init: bool) -> None:
        assert slot.proc is not None
        code = _exit_code(raw_code)
        start_error = slot.proc.start_error(raw_code)
        slot.proc.kill_group()  # reap the group: children of the command must not outlive it
        if start_error:
            self._terminated(slot, raw_code, "StartError", start_error)
            self.ctx.emit_event(self.pod, "Warning", "Failed", f"Error: {start_error}")
        else:
            policy = slot.spec.get("terminationMessagePolicy", "File")
            message = slot.proc.termination_message(code, policy)
            self._terminated(slot, code, "Completed" if code == 0 else "Error", message)
        self._after_exit(slot, code, init=init)

    def _after_exit(self, slot: Slot, code: int, *, init: bool) -> None:
        restart = self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)
        if init:
            restart = code != 0 and self.restart_policy != "Never"
        if not restart:
            slot.done = True
            return
        rec = slot.record
        ran_for = time.monotonic() - slot.started_mono
        # A container that ran ten minutes without trouble starts its back-off afresh, as with the kubelet.
        slot.backoff = (
            self.ctx.backoff_base
            if (slot.backoff == 0 or ran_for > 600)
            else min(slot.backoff * 2, self.ctx.backoff_max)
        )
        slot.not_before = time.monotonic() + slot.backoff
        rec.last_terminated = rec.terminated_dict()
        rec.state, rec.reason = "waiting", "CrashLoopBackOff"
        rec.message = f"back-off {slot.backoff:.0f}s restarting failed container={rec.name} pod={self.pod_name}"
        rec.exit_code = None
        if code != 0:
            self.ctx.emit_event(self.pod, "Warning", "BackOff", "Back-off restarting failed container " + rec.name)

    def _probe(self, slot: Slot, now: float) -> None:
        rec = slot.record
        if slot.startup and slot.startup.result is not True:
            self._probe_once(slot, slot.startup, now, "Startup")
            if slot.startup.result is True:
                rec.started = True
                rec.ready = slot.readiness is None
            elif slot.startup.result is False:
                self._kill_for_probe(slot, "Startup")
            return
        if slot.liveness and slot.liveness.due(now):
            self._probe_once(slot, slot.liveness, now, "Liveness")
            if slot.liveness.result is False:
                self._kill_for_probe(slot, "Liveness")
                return
        if slot.readiness and slot.readiness.due(now):
            self._probe_once(slot, slot.readiness, now, "Readiness")
            rec.ready = bool(slot.readiness.result)

    def _probe_once(self, slot: Slot, tracker: ProbeTracker, now: float, kind: str) -> None:
        if not tracker.due(now):
            return
        ok, message = run_probe(tracker.probe, slot.spec, self.pod_ip, slot.env)
        tracker.record(ok, message, time.monotonic())
        if not ok and tracker.failures == int(tracker.probe.get("failureThreshold", 3)):
            self.ctx.emit_event(self.pod, "Warning", "Unhealthy", f"{kind} probe failed: {message}")

    def _kill_for_probe(self, slot: Slot, kind: str) -> None:
        assert slot.proc is not None
        name = slot.spec["name"]
        self.ctx.emit_event(
            self.pod, "Normal", "Killing", f"Container {name} failed {kind.lower()} probe, will be restarted"
        )
        slot.proc.signal(signal.SIGTERM)
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        deadline = time.monotonic() + grace
        while slot.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        slot.proc.kill_group()
        self._on_exit(slot, slot.proc.poll() or -signal.SIGKILL, init=False)

    def _all_waiting(self, reason: str, message: str) -> None:
        for slot in self.init + self.main:
            if slot.record.state == "waiting":
                slot.record.reason, slot.record.message = reason, message

    # -- deletion --------------------------------------------------------------------------------------------
    def _run_pre_stop(self, slot: Slot, budget: float) -> None:
        handler = ((slot.spec.get("lifecycle") or {}).get("preStop")) or {}
        try:
            if "sleep" in handler:
                time.sleep(min(float(handler["sleep"]["seconds"]), budget))
            elif "exec" in handler:
                subprocess.run(
                    handler["exec"]["command"], env=slot.env, timeout=budget, check=False, capture_output=True
                )
            elif "httpGet" in handler:
                hg = handler["httpGet"]
                conn = http.client.HTTPConnection(hg.get("host") or self.pod_ip, int(hg["port"]), timeout=budget)
                conn.request("GET", hg.get("path", "/"))
                conn.getresponse()
                conn.close()
        except (OSError, subprocess.TimeoutExpired, http.client.HTTPException, ValueError) as e:
            self.ctx.emit_event(self.pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {e}")

    def _stop_containers(self, grace: float, run_pre_stop: bool) -> None:
        running = [s for s in self.init + self.main if s.running]
        deadline = time.monotonic() + grace
        if run_pre_stop:
            hooks = [threading.Thread(target=self._run_pre_stop, args=(s, grace), daemon=True) for s in running]
            for t in hooks:
                t.start()
            for t in hooks:
                t.join(max(0.0, deadline - time.monotonic()))
        for s in running:
            assert s.proc is not None
            s.proc.signal(signal.SIGTERM)
        while time.monotonic() < deadline and any(s.proc and s.proc.poll() is None for s in running):
            time.sleep(0.1)
        for s in running:
            assert s.proc is not None
            s.proc.kill_group()
            code = s.proc.poll()
            self._terminated(
                s,
                _exit_code(code if code is not None else -signal.SIGKILL),
                "Completed" if code == 0 else "Error",
                None,
            )

    def _delete_gracefully(self) -> None:
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        if any(s.running for s in self.main):
            self.ctx.emit_event(
                self.pod,
                "Normal",
                "Killing",
                "Stopping container(s) " + ", ".join(s.spec["name"] for s in self.main if s.running),
            )
        self._stop_containers(float(grace), run_pre_stop=True)
        for slot in self.init + self.main:
            slot.done = True
            if slot.record.state == "waiting":  # never ran: report it as not started, as the kubelet does
                self._terminated(
                    slot,
                    137,
                    "ContainerStatusUnknown",
                    "The container could not be located when the pod was terminated",
                )
        # A pod that stopped because it is being deleted ends in a terminal phase before it goes away.
        self.restart_policy = "Never"
        self._publish()
        try:
            self.ctx.api.delete_namespaced_pod(
                self.pod_name,
                self.namespace,
                grace_period_seconds=0,
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    # -- status ------------------------------------------------------------------------------------------------
    def _publish(self) -> None:
        with self._lock:
            previous = list((self.pod.get("status") or {}).get("conditions") or [])
        status = compute_pod_status(
            restart_policy=self.restart_policy,
            init=[s.record for s in self.init],
            main=[s.record for s in self.main],
            sandbox_ready=self.volumes is not None,
            pod_ip=self.pod_ip if self.volumes is not None else None,
            host_ip=self.ctx.host_ip,
            start_time=self.start_time,
            previous_conditions=previous,
            now=utcnow(),
        )
        comparable = {
            **status,
            "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status["conditions"]],
        }
        if comparable == self._published:
            return
        try:
            self.ctx.api.patch_namespaced_pod_status(self.pod_name, self.namespace, {"status": status})
            self._published = comparable
        except ApiException as e:
            if e.status == 404:
                self.mark_gone()
            else:
                self.ctx.log.warning("status update of %s/%s failed: %s", self.namespace, self.pod_name, e.reason)
