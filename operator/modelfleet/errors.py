"""Domain errors raised by reconcilers and translated to Kopf's at the handler boundary (handlers/common.py)."""

from __future__ import annotations


class ReconcileError(Exception):
    """Base of the errors a reconciler raises on purpose."""

    reason = "ReconcileError"


class InvalidSpec(ReconcileError):
    """The spec passed the schema but cannot work (only the operator can judge it). Permanent until the spec
    changes: Ready=False/InvalidSpec and a Warning Event, no retries."""

    reason = "InvalidSpec"


class DependencyNotReady(ReconcileError):
    """Something the object needs is not there yet (a referenced model, a Job still starting). Temporary: retried
    after `delay` seconds."""

    reason = "DependencyNotReady"

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


class PrometheusUnavailable(DependencyNotReady):
    """Prometheus is down, slow or returned nothing usable."""

    reason = "PrometheusUnavailable"
