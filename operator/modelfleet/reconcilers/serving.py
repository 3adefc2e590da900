"""Serving: which version to serve, how its rollout is going, and when to roll back. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelfleet.api.v1alpha1.mlmodel import MLModelSpec, TrainedVersion
from modelfleet.builders.serving import SERVER_CONTAINER
from modelfleet.builders.training import LABEL_VERSION

CRASH_RESTARTS = 2  # restarts of a new version's server before the rollout counts as failed


def choose_version(spec: MLModelSpec, versions: Sequence[TrainedVersion]) -> TrainedVersion | None:
    """The newest promotable version; for riskClass high only the approved one."""
    promotable = [v for v in versions if v.promotable]
    if spec.risk_class == "high":
        return next((v for v in promotable if v.number == spec.serving.approved_version), None)
    return promotable[-1] if promotable else None


def _pods_of(pods: Sequence[dict[str, Any]], number: int) -> list[dict[str, Any]]:
    return [p for p in pods if p["metadata"].get("labels", {}).get(LABEL_VERSION) == str(number)]


def rollout_failure(deployment: dict[str, Any] | None, pods: Sequence[dict[str, Any]], number: int) -> str | None:
    """Why version `number` cannot become ready, or None while it still might."""
    for pod in _pods_of(pods, number):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != SERVER_CONTAINER:
                continue
            last = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated") or {}
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if cs.get("restartCount", 0) >= CRASH_RESTARTS or (last and pod["spec"].get("restartPolicy") == "Never"):
                detail = (last.get("message") or waiting.get("message") or last.get("reason") or "").strip()
                return (
                    f"pod {pod['metadata']['name']}: the server exited with code {last.get('exitCode')}: "
                    f"{detail.splitlines()[-1] if detail else 'no message'}"
                )
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message", "the rollout exceeded its progress deadline"))
    return None


def rollout_complete(deployment: dict[str, Any] | None, number: int) -> bool:
    """True when the Deployment runs version `number` and all its replicas of it are available."""
    if not deployment:
        return False
    template = deployment["spec"]["template"]["metadata"].get("labels", {})
    st = deployment.get("status") or {}
    want = deployment["spec"].get("replicas", 1)
    return (
        template.get(LABEL_VERSION) == str(number)
        and st.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and st.get("updatedReplicas", 0) >= want
        and st.get("availableReplicas", 0) >= want
        and st.get("replicas", 0) == st.get("updatedReplicas", 0)
    )
