"""What handlers hand to reconcilers: configuration and clients, built once at start-up and passed through memo."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelfleet.config import OperatorConfig


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Deps:
    config: OperatorConfig
    api: Any  # kubernetes.client.ApiClient
    kube: Any = None  # modelfleet.clients.kube.Kube over `api`
    clock: Callable[[], datetime.datetime] = field(default=utcnow)
    prometheus_for: Callable[[str], Any] = field(default=lambda url: _prometheus(url))


def _prometheus(url: str) -> Any:
    from modelfleet.clients.prometheus import Prometheus

    return Prometheus(url)
