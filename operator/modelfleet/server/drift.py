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
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelfleet.drift import stats
from modelfleet.drift.window import Counts, Reference, SlidingWindow

log = logging.getLogger(__name__)

DEFAULT_STATISTICS = ("psi", "ks")
PUBLISH_SECONDS = 2.0  # a worker re-publishes its window this often even without new rows (time-based windows age)


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
        min_rows: int = 500,
        flush_seconds: float = 0.25,
        share_dir: Path | None = None,
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
        # With several worker processes each keeps its own window and publishes its counts here; whichever worker
        # answers a scrape merges them (counts on one grid add up).
        self.share_dir = share_dir
        self._published = 0.0

    @classmethod
    def from_artifact(
        cls, directory: Path, features: Sequence[str], *, psi_bins: int | None = None, **kwargs: Any
    ) -> DriftMonitor | None:
        path = directory / "profile.json"
        if not path.exists():
            log.warning("no profile.json in %s: drift metrics are off", directory)
            return None
        profile = json.loads(path.read_text())
        present = [f for f in features if f in profile.get("features", {})]
        reference = Reference.from_profile(profile, present, max_psi_bins=psi_bins)
        for feature, why in reference.insufficient.items():
            log.warning("no drift values for feature %s: %s", feature, why)
        return cls(reference, **kwargs)

    def observe(self, columns: dict[str, Any]) -> None:
        """Called on the request path with the validated columns: queue them, nothing more."""
        self._pending.append(columns)

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            merged = {name: np.concatenate([np.asarray(c[name]) for c in batch]) for name in self._features}
            self.window.add_rows(merged, tail_sums="wasserstein" in self.statistics)
            self._publish(force=True)
        else:
            self._publish(force=False)

    def _publish(self, force: bool) -> None:
        now = time.monotonic()
        if self.share_dir is None or (not force and now - self._published < PUBLISH_SECONDS):
            return
        self._published = now
        total = self.window.total()
        arrays: dict[str, Any] = {
            "numeric": total.numeric,
            "tail_sums": total.tail_sums,
            "numeric_invalid": total.numeric_invalid,
            "categorical_invalid": total.categorical_invalid,
            "rows": np.array(total.rows),
            **{f"categorical_{i}": c for i, c in enumerate(total.categorical)},
        }
        target = self.share_dir / f"drift-{os.getpid()}.npz"
        partial = self.share_dir / f".drift-{os.getpid()}.npz"
        with partial.open("wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(partial, target)

    def merged_total(self) -> Counts:
        """This worker's window, or every worker's windows added up."""
        if self.share_dir is None:
            return self.window.total()
        out = self.reference.empty()
        for path in self.share_dir.glob("drift-*.npz"):
            try:
                with np.load(path) as data:
                    out.add(
                        Counts(
                            numeric=data["numeric"],
                            tail_sums=data["tail_sums"],
                            numeric_invalid=data["numeric_invalid"],
                            categorical=[data[f"categorical_{i}"] for i in range(len(out.categorical))],
                            categorical_invalid=data["categorical_invalid"],
                            rows=int(data["rows"]),
                        )
                    )
            except (OSError, ValueError, KeyError):  # a worker's file vanished (it died) or is being replaced
                continue
        return out

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
        total = self.merged_total()
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
