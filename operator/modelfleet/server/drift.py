"""Per-feature drift of live inputs against the artifact's reference profile, exported as Prometheus gauges.

The request path only appends the parsed columns to a list (well under a microsecond). A background task bins what
has queued every `flush_seconds` in one vectorised call (about a microsecond per row for 30 features, see
bench/drift), and adds it to a sliding window of counts. The statistics are computed when Prometheus scrapes, from the
window's counts, so nothing is computed that nobody reads. Series are bounded: one per (feature, statistic), at most two
statistics, no per-pod or per-request labels. A window with fewer than `min_rows` rows exports no drift values at all,
because a statistic over a handful of rows is noise; DriftPolicies read that absence as "not evaluated", never as
drift."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelfleet.drift import stats
from modelfleet.drift.window import Reference, SlidingWindow

log = logging.getLogger(__name__)

DEFAULT_STATISTICS = ("psi", "ks")


class DriftMonitor(Collector):
    def __init__(
        self,
        reference: Reference,
        *,
        model: str,
        version: str,
        statistics: Sequence[str] = DEFAULT_STATISTICS,
        window_rows: int | None = 10_000,
        window_seconds: float | None = None,
        min_rows: int = 100,
        flush_seconds: float = 0.25,
    ) -> None:
        unknown = sorted(set(statistics) - set(stats.STATISTICS))
        if unknown:
            raise ValueError(f"unknown drift statistic(s) {unknown}; known: {', '.join(stats.STATISTICS)}")
        self.reference = reference
        self.model, self.version = model, version
        self.statistics = tuple(statistics)
        self.min_rows = min_rows
        self.flush_seconds = flush_seconds
        self.window = SlidingWindow(reference, max_rows=None if window_seconds else window_rows, seconds=window_seconds)
        self._features = reference.numeric + reference.categorical
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_artifact(cls, directory: Path, features: Sequence[str], **kwargs: Any) -> DriftMonitor | None:
        path = directory / "profile.json"
        if not path.exists():
            log.warning("no profile.json in %s: drift metrics are off", directory)
            return None
        profile = json.loads(path.read_text())
        present = [f for f in features if f in profile.get("features", {})]
        return cls(Reference.from_profile(profile, present), **kwargs)

    def observe(self, columns: dict[str, Any]) -> None:
        """Called on the request path with the validated columns: queue them, nothing more."""
        self._pending.append(columns)

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        merged = {name: np.concatenate([np.asarray(c[name]) for c in batch]) for name in self._features}
        self.window.add_rows(merged, tail_sums="wasserstein" in self.statistics)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # a bad batch must not end monitoring for the pod's lifetime
                log.exception("drift window update failed; the batch is dropped")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.flush()
        total = self.window.total()
        rows = GaugeMetricFamily(
            "modelfleet_drift_window_rows", "Rows in the drift window.", labels=["model", "version"]
        )
        rows.add_metric([self.model, self.version], total.rows)
        yield rows
        drift = GaugeMetricFamily(
            "modelfleet_feature_drift",
            "Drift of a feature's live inputs from the training data (psi, ks, jensenshannon, wasserstein).",
            labels=["model", "version", "feature", "statistic"],
        )
        if total.rows >= self.min_rows:
            for feature, values in self.reference.statistics(total, self.statistics).items():
                for statistic, value in values.items():
                    if np.isfinite(value):
                        drift.add_metric([self.model, self.version, feature, statistic], value)
        yield drift
