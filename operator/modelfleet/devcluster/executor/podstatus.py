"""Pure computation of a pod's status from what the executor knows about its containers.

The rules follow the kubelet's (pkg/kubelet/kubelet_pods.go getPhase and the status manager) so that the Job,
ReplicaSet and Deployment controllers read our pods exactly as they read a kubelet's.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["waiting", "running", "terminated"]


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    """What the executor knows of one container right now."""

    name: str
    image: str
    state: State = "waiting"
    reason: str | None = "ContainerCreating"
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str | None = None
    last_terminated: dict[str, Any] | None = field(default=None)

    def terminated_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exitCode": self.exit_code if self.exit_code is not None else 0}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.started_at:
            out["startedAt"] = rfc3339(self.started_at)
        if self.finished_at:
            out["finishedAt"] = rfc3339(self.finished_at)
        if self.container_id:
            out["containerID"] = self.container_id
        return out

    def to_status(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": rfc3339(self.started_at)} if self.started_at else {}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_dict()}
        else:
            waiting: dict[str, Any] = {"reason": self.reason or "ContainerCreating"}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0


def compute_phase(
    restart_policy: str, init: list[ContainerRecord], init_done: bool, main: list[ContainerRecord]
) -> str:
    """The pod phase, as the kubelet's getPhase derives it."""
    if not init_done:
        if restart_policy == "Never" and any(c.state == "terminated" and not c.succeeded for c in init):
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for c in main:
        if c.state == "running":
            running += 1
        elif c.state == "terminated":
            stopped += 1
            succeeded += c.succeeded
        elif c.last_terminated is not None:  # waiting to restart after a previous run
            stopped += 1
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded and all(c.state == "terminated" for c in main):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: the failed ones restart
    return "Pending"


def _condition(
    ctype: str,
    ok: bool,
    previous: dict[str, dict[str, Any]],
    now: datetime.datetime,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    # lastTransitionTime moves only when the status flips.
    since = (
        prev["lastTransitionTime"]
        if prev and prev.get("status") == status and prev.get("lastTransitionTime")
        else rfc3339(now)
    )
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        cond["reason"] = reason
    if message and not ok:
        cond["message"] = message
    return cond


def compute_pod_status(
    *,
    restart_policy: str,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    sandbox_ready: bool,
    pod_ip: str | None,
    host_ip: str,
    start_time: datetime.datetime,
    previous_conditions: list[dict[str, Any]],
    now: datetime.datetime,
) -> dict[str, Any]:
    """The whole `status` the executor publishes for a pod."""
    init_done = all(c.succeeded for c in init)
    phase = compute_phase(restart_policy, init, init_done, main)
    previous = {c["type"]: c for c in previous_conditions if "type" in c}
    terminal = phase in ("Succeeded", "Failed")

    unready = [c.name for c in main if not c.ready]
    not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    not_ready_msg = None if terminal else f"containers with unready status: [{' '.join(unready)}]"
    pending_init = [c.name for c in init if not c.succeeded]
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal, previous, now),
        _condition(
            "Initialized",
            init_done,
            previous,
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        ),
        _condition("Ready", not unready and not terminal, previous, now, not_ready_reason, not_ready_msg),
        _condition("ContainersReady", not unready and not terminal, previous, now, not_ready_reason, not_ready_msg),
    ]
    ours = {c["type"] for c in conditions}
    # Keep what others own (PodScheduled from the scheduler, DisruptionTarget from controllers).
    conditions = [c for c in previous_conditions if c.get("type") not in ours] + conditions

    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": rfc3339(start_time),
        "containerStatuses": [c.to_status() for c in main],
    }
    if init:
        status["initContainerStatuses"] = [c.to_status() for c in init]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
