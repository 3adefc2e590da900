"""End-to-end fixtures: the operator running against the dev cluster, and namespaces with data on real volumes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelfleet.devcluster.prometheus import PrometheusServer, pod_scrape_job, static_job
from tests.support import GatewayProcess, Kube, OperatorProcess, wait_for


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


@dataclass
class WatchedNamespace:
    """A namespace-scoped operator that reads a real Prometheus (which scrapes the namespace's pods), and, when
    asked for, the namespace's gateway, scraped too."""

    operator: OperatorProcess
    prometheus: PrometheusServer
    gateway: GatewayProcess | None


@contextmanager
def watched_namespace(
    kubeconfig: Path,
    namespace: str,
    state: Path,
    *,
    gateway: bool = False,
    scrape_jobs: Sequence[dict[str, Any]] | None = None,
) -> Iterator[WatchedNamespace]:
    """Starts them (the gateway first: Prometheus is told its port), stops them in reverse order. `scrape_jobs`
    replaces the pod scrape job."""
    gw = GatewayProcess(kubeconfig, state / "gateway.log", namespace).start() if gateway else None
    jobs = list(scrape_jobs) if scrape_jobs is not None else [pod_scrape_job(kubeconfig, interval="1s")]
    if gw is not None:
        jobs.append(static_job("modelfleet-gateway", [f"127.0.0.1:{gw.port}"], {"namespace": namespace}, interval="1s"))
    prom = PrometheusServer(state / "prometheus", jobs).start()
    op = OperatorProcess(
        kubeconfig,
        state / "operator.log",
        "--namespace",
        namespace,
        env={"MODELFLEET_PROMETHEUS_URL": prom.url, "MODELFLEET_ACTIVITY_SECONDS": "1"},
    )
    try:
        op.start()
        yield WatchedNamespace(op, prom, gw)
    finally:
        op.stop()
        prom.stop()
        if gw is not None:
            gw.stop()
