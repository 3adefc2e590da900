"""The Prometheus HTTP API, read-only: instant queries (`/api/v1/query`) with a short timeout.

Everything that is not a usable answer becomes PrometheusUnavailable with a message that says which: connection
refused, timeout, HTTP status, a query Prometheus rejected. Values stay floats, NaN and ±Inf included; deciding what a
NaN means is the caller's job (the drift policy treats it as "not evaluated")."""

from __future__ import annotations

import datetime
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

from modelfleet.errors import PrometheusUnavailable

QUERY_SECONDS = Histogram(
    "modelfleet_promql_seconds",
    "Latency of the operator's PromQL queries (failures included).",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: datetime.datetime | None = None) -> list[Sample]:
        """An instant query; a scalar answer comes back as one sample without labels."""
        params = {"query": expr, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        started = time.perf_counter()
        outcome = "error"
        try:
            body = self._get("/api/v1/query", params)
            samples = _samples(body, expr)
            outcome = "ok"
            return samples
        finally:
            QUERY_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as e:
            detail = _error_text(e)
            if e.code in (400, 422):
                raise PrometheusUnavailable(f"Prometheus rejected the query: {detail}") from e
            raise PrometheusUnavailable(f"Prometheus at {self.url} answered {e.code}: {detail}") from e
        except TimeoutError as e:
            raise PrometheusUnavailable(f"Prometheus at {self.url} did not answer within {self.timeout:g}s") from e
        except urllib.error.URLError as e:
            reason = e.reason if not isinstance(e.reason, TimeoutError) else f"no answer within {self.timeout:g}s"
            raise PrometheusUnavailable(f"Prometheus at {self.url} is unreachable: {reason}") from e
        except (OSError, ValueError) as e:
            raise PrometheusUnavailable(f"Prometheus at {self.url}: {type(e).__name__}: {e}") from e


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(e.read())
        return str(body.get("error") or body)
    except (OSError, ValueError):
        return e.reason or str(e.code)


def _samples(body: dict[str, Any], expr: str) -> list[Sample]:
    if body.get("status") != "success":
        raise PrometheusUnavailable(f"Prometheus failed the query {expr!r}: {body.get('error', body)}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result") or []
    if kind == "scalar":
        return [Sample({}, _float(result[1]))]
    if kind == "vector":
        return [Sample(dict(r.get("metric") or {}), _float(r["value"][1])) for r in result]
    raise PrometheusUnavailable(f"the query {expr!r} returned a {kind}, not an instant vector or scalar")


def _float(text: str) -> float:
    try:
        return float(text)  # Prometheus writes NaN, +Inf and -Inf, which float() reads
    except ValueError:
        return math.nan
