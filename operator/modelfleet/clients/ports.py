"""The ports reconcilers code against (layer: clients). `Kube` (the API server) and `CachedCluster` (the watch-fed
cache in front of it) both satisfy `Cluster`; tests may pass either. `Prometheus` is the PromQL client's port."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class ClusterReader(Protocol):
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def workload_of_job(self, namespace: str, job_uid: str) -> dict[str, Any] | None: ...

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def list_custom(
        self, namespace: str, plural: str, selector: str | None = None, *, fields: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]: ...

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None: ...

    def recorded_versions(self, namespace: str, model: str, model_uid: str) -> set[int]: ...

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def artifact_exists(self, namespace: str, uri: str) -> bool | None: ...


class ClusterWriter(Protocol):
    def create_custom(self, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any] | None: ...

    def create_claim(self, body: dict[str, Any]) -> bool: ...

    def apply(self, obj: dict[str, Any]) -> str | None: ...

    def delete_job(self, namespace: str, name: str) -> None: ...

    def delete_if_exists(self, kind: str, namespace: str, name: str) -> None: ...


class Cluster(ClusterReader, ClusterWriter, Protocol):
    """What a reconcile pass reads and writes."""


class Sample(Protocol):
    labels: dict[str, str]
    value: float


class PrometheusPort(Protocol):
    def query(self, expr: str, at: datetime.datetime | None = None) -> Sequence[Any]: ...


PrometheusFor = Callable[[str], PrometheusPort]
