"""What start-up hands to the controller: configuration and clients, built once and passed through Kopf's memo."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes.client import ApiClient

from modelfleet.clients.kube import Kube
from modelfleet.clients.ports import PrometheusPort
from modelfleet.clients.prometheus import Prometheus
from modelfleet.config import OperatorConfig


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Deps:
    config: OperatorConfig
    api: ApiClient
    kube: Kube
    kueue: bool = False  # the API server serves Kueue's Workloads: the operator watches them
    clock: Callable[[], datetime.datetime] = field(default=utcnow)
    prometheus_for: Callable[[str], PrometheusPort] = field(default=lambda url: Prometheus(url))
