"""What the gateway knows, as plain data: the models of its namespace (from their MLModels) and their ready serving
pods (from the pods themselves), and the choice of a pod for a request. Pure: the watches feed it, the proxy reads it.

Why pods and not EndpointSlices: the dev cluster's pods have loopback addresses, which an EndpointSlice cannot hold,
and a pod's Ready condition is exactly what an EndpointSlice's `ready` copies; one path for both clusters."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.api.v1alpha1.common import parse_duration
from modelfleet.vocabulary import LABEL_MODEL, LABEL_VERSION

SERVER_PORT = 8080
DEFAULT_COLD_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    pod: str
    model: str
    version: str
    address: str  # host:port


@dataclass
class ModelEntry:
    """One MLModel as the gateway sees it."""

    name: str
    cold_start_timeout: float = DEFAULT_COLD_START_TIMEOUT
    scale_to_zero: bool = False  # minReplicas 0: a request may find no pod and must wait for one
    canary_version: str | None = None  # status.canary: the version on trial ...
    canary_weight: int = 0  # ... and the percent of requests it gets


def ready_endpoint(pod: Mapping[str, Any]) -> Endpoint | None:
    """The pod as a place to send requests: a serving pod of a model, with an IP, Ready, and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    model, ip = labels.get(LABEL_MODEL), status.get("podIP")
    if not model or not ip or meta.get("deletionTimestamp"):
        return None
    conditions = status.get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return Endpoint(meta.get("name", ""), model, str(labels.get(LABEL_VERSION, "")), f"{host}:{SERVER_PORT}")


def model_entry(obj: Mapping[str, Any]) -> ModelEntry:
    """An MLModel's routing settings; a value the gateway cannot read falls back to the default, never fails."""
    serving = ((obj.get("spec") or {}).get("serving")) or {}
    try:
        timeout = parse_duration(str(serving.get("coldStartTimeout", ""))) if serving.get("coldStartTimeout") else None
    except ValueError:
        timeout = None
    canary = ((obj.get("status") or {}).get("canary")) or {}
    try:
        weight = max(0, min(100, int(canary.get("weight", 0))))
    except (TypeError, ValueError):
        weight = 0
    return ModelEntry(
        name=str((obj.get("metadata") or {}).get("name", "")),
        cold_start_timeout=float(timeout) if timeout else DEFAULT_COLD_START_TIMEOUT,
        scale_to_zero=int(serving.get("minReplicas", 1)) == 0,
        canary_version=str(canary["version"]) if canary.get("version") is not None else None,
        canary_weight=weight,
    )


@dataclass
class RoutingTable:
    """Models by name, ready endpoints by pod; a round-robin position per model."""

    models: dict[str, ModelEntry] = field(default_factory=dict)
    pods: dict[str, Endpoint] = field(default_factory=dict)
    ejected: dict[str, float] = field(default_factory=dict)  # pod -> monotonic time it may take requests again
    _turns: dict[str, itertools.count[int]] = field(default_factory=dict)

    def set_model(self, entry: ModelEntry) -> None:
        self.models[entry.name] = entry

    def remove_model(self, name: str) -> None:
        self.models.pop(name, None)

    def set_pod(self, name: str, endpoint: Endpoint | None) -> bool:
        """Records a pod's state; True when its model gained a ready endpoint it did not have."""
        before = self.pods.get(name)
        self.ejected.pop(name, None)
        if endpoint is None:
            self.pods.pop(name, None)
            return False
        self.pods[name] = endpoint
        return before is None

    def replace_pods(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """A relist: the pods as they are now, whatever the missed events were."""
        self.pods = {e.pod: e for e in (ready_endpoint(p) for p in pods) if e is not None}
        self.ejected.clear()

    def replace_models(self, models: Iterable[Mapping[str, Any]]) -> None:
        self.models = {e.name: e for e in (model_entry(m) for m in models)}

    def eject(self, pod: str, seconds: float, now: float) -> None:
        """No requests to the pod for a while (it refused a connection); the watch's next word on it ends that."""
        self.ejected[pod] = now + seconds

    def endpoints(self, model: str, now: float | None = None) -> list[Endpoint]:
        """The model's ready endpoints, in a stable order; at `now`, without those ejected until later."""
        return sorted(
            (
                e
                for e in self.pods.values()
                if e.model == model and (now is None or self.ejected.get(e.pod, 0.0) <= now)
            ),
            key=lambda e: e.pod,
        )

    def pick(self, model: str, now: float) -> Endpoint | None:
        """The next ready endpoint of the model, in turn; None when it has none. During a canary, the version on
        trial gets its weight's share of the turns, spread evenly (10 %: every tenth request), and the others the
        rest; a side with no ready endpoint gives its turns to the other."""
        ready = self.endpoints(model, now)
        if not ready:
            return None
        turn = next(self._turns.setdefault(model, itertools.count()))
        entry = self.models.get(model)
        if entry is not None and entry.canary_version is not None:
            trial = [e for e in ready if e.version == entry.canary_version]
            rest = [e for e in ready if e.version != entry.canary_version]
            # Smooth weighted choice: the trial's share of turns 0..turn rises by one exactly when it is due one.
            due = (turn + 1) * entry.canary_weight // 100 > turn * entry.canary_weight // 100
            side = trial if (due and trial) or not rest else rest
            return side[turn % len(side)]
        return ready[turn % len(ready)]

    def known(self) -> list[str]:
        return sorted(set(self.models) | {e.model for e in self.pods.values()})
