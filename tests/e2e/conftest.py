"""End-to-end fixtures: the operator running against the dev cluster, and namespaces with data on real volumes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Kube, OperatorProcess, wait_for


@pytest.fixture(scope="module")
def operator(kubeconfig: Path, crds: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield op
    op.stop()


def claim(kube: Kube, namespace: str, name: str) -> Path:
    """Creates a PersistentVolumeClaim (the dev cluster provisions it) and returns its directory on this machine."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
        namespace,
    )
    pvc = wait_for(
        lambda: (p := kube.get("pvc", name, namespace)) and p["status"].get("phase") == "Bound" and p,
        60,
        f"claim {name} to be bound",
    )
    pv = kube.get("pv", pvc["spec"]["volumeName"])
    assert pv
    path = Path(pv["spec"]["hostPath"]["path"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def events(kube: Kube, namespace: str, name: str) -> list[str]:
    return [
        f"{e['reason']}: {e['message']}"
        for e in sorted(
            kube.items("events", namespace, field_selector=f"involvedObject.name={name}"),
            key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
        )
    ]


def jobs_of(kube: Kube, namespace: str, trainingjob: str) -> list[dict[str, object]]:
    return kube.items("jobs", namespace, selector=f"modelfleet.io/trainingjob={trainingjob}")


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1)[:3000]
