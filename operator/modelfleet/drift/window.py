"""Counting live inputs on a reference profile's grids, and a sliding window of such counts.

`Reference` is the parsed profile.json. `Counts` holds, for one batch or one sub-window, per-feature counts on the
reference's grids (numeric: [underflow, bins..., overflow], tails' value sums, invalid values; categorical: the
profile's categories plus "other"). Counts merge by addition, so the sliding window is a ring of sub-windows
("buckets") and its total is their sum: adding a row is O(1) amortised and forgetting old rows is dropping a bucket.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelfleet.drift import stats
from modelfleet.drift.grid import BinTable, bin_matrix
from modelfleet.drift.profile import MAX_PSI_BINS, OTHER, edge_lut, insufficient_reason, psi_bins, psi_group_starts


@dataclass(frozen=True)
class Reference:
    """The reference profile, arranged for vectorised counting.

    Numeric features are counted with bin_matrix on their fine grids [lo, hi) (`fine` slots) and, for version 2
    profiles, mapped to their quantile bins by `lut`; `counts` holds the reference's counts in those bins and
    `edges` their inner edges. `psi_bins[i]` is the number of PSI bins of feature i (equal-mass groups of quantile
    bins; 0 when the reference is too small to measure drift, and for version 1 profiles, whose grid bins are used as
    they are, every bin)."""

    numeric: tuple[str, ...]
    lo: np.ndarray  # (numeric features,)
    hi: np.ndarray
    fine: int
    lut: BinTable | None  # grid slot -> bin, per numeric feature; None for version 1 profiles
    counts: np.ndarray  # (numeric features, bins)
    edges: np.ndarray  # (numeric features, bins - 1)
    psi_bins: np.ndarray  # (numeric features,)
    tail_means: np.ndarray  # (numeric features, 2): the means of the reference's values in the two outer bins
    std: np.ndarray
    categorical: tuple[str, ...]
    categories: tuple[dict[str, int], ...]  # per categorical feature: category -> slot (OTHER is the last slot)
    category_counts: tuple[np.ndarray, ...]
    insufficient: dict[str, str] = field(default_factory=dict)  # feature -> why its drift is not measured

    @classmethod
    def from_profile(
        cls, profile: Mapping[str, Any], features: Iterable[str] | None = None, *, max_psi_bins: int | None = None
    ) -> Reference:
        """`max_psi_bins` caps the PSI bins of a version 2 profile (default MAX_PSI_BINS; a reference's size may allow
        fewer, see profile.psi_bins)."""
        wanted = list(features) if features is not None else list(profile["features"])
        docs = profile["features"]
        numeric = [n for n in wanted if docs[n]["type"] == "numeric"]
        categorical = [n for n in wanted if docs[n]["type"] == "categorical"]
        grids = [docs[n]["grid"] for n in numeric]
        fine_counts = {int(g["bins"]) for g in grids}
        if len(fine_counts) > 1:
            raise ValueError(f"numeric features use different bin counts {sorted(fine_counts)}; one grid size expected")
        fine = fine_counts.pop() if fine_counts else 1
        lo = np.array([float(g["min"]) for g in grids], dtype=np.float64)
        hi = np.array([float(g["max"]) for g in grids], dtype=np.float64)
        quantile_binned = int(profile.get("version", 1)) >= 2
        width = len(docs[numeric[0]]["counts"]) if numeric else fine + 2
        counts = np.array([docs[n]["counts"] for n in numeric], dtype=np.float64).reshape(-1, width)
        insufficient: dict[str, str] = {}
        if quantile_binned:
            edges = np.array([docs[n]["edges"] for n in numeric], dtype=np.float64).reshape(-1, width - 1)
            slots = np.array([docs[n]["edgeSlots"] for n in numeric], dtype=np.int64).reshape(-1, width - 1)
            lut = BinTable.of(edge_lut(slots, fine)) if numeric else None
            quantile_bins = width - 2
            per_feature = []
            for n in numeric:
                b = psi_bins(int(docs[n]["count"]), quantile_bins, max_psi_bins or MAX_PSI_BINS)
                per_feature.append(b)
                if not b:
                    insufficient[n] = str(docs[n].get("insufficient") or insufficient_reason(int(docs[n]["count"])))
            group_bins = np.array(per_feature, dtype=np.int64)
        else:
            edges = np.array([stats.grid_edges(lo[i], hi[i], fine) for i in range(len(numeric))]).reshape(-1, fine + 1)
            lut, group_bins = None, np.full(len(numeric), width, dtype=np.int64)
        tail_means = np.array(
            [_tail_means(docs[n], edges[i, 0], edges[i, -1]) for i, n in enumerate(numeric)], dtype=np.float64
        ).reshape(-1, 2)
        std = np.array([float(docs[n].get("std") or 0.0) for n in numeric], dtype=np.float64)
        cats, cat_counts = [], []
        for n in categorical:
            freq = dict(docs[n]["counts"])
            other = freq.pop(OTHER, 0)
            names = list(freq)
            cats.append({c: i for i, c in enumerate(names)})
            cat_counts.append(np.array([*freq.values(), other], dtype=np.float64))
        return cls(
            tuple(numeric),
            lo,
            hi,
            fine,
            lut,
            counts,
            edges,
            group_bins,
            tail_means,
            std,
            tuple(categorical),
            tuple(cats),
            tuple(cat_counts),
            insufficient,
        )

    @property
    def bins(self) -> int:
        """Counting slots per numeric feature."""
        return int(self.counts.shape[1]) if self.counts.size else self.fine + 2

    def empty(self) -> Counts:
        return Counts(
            numeric=np.zeros((len(self.numeric), self.bins), dtype=np.int64),
            tail_sums=np.zeros((len(self.numeric), 2), dtype=np.float64),
            numeric_invalid=np.zeros(len(self.numeric), dtype=np.int64),
            categorical=[np.zeros(len(c) + 1, dtype=np.int64) for c in self.categories],
            categorical_invalid=np.zeros(len(self.categorical), dtype=np.int64),
        )

    def count(self, columns: Mapping[str, Any], *, tail_sums: bool = True) -> Counts:
        """Counts of one batch of rows given as {feature: column} (tail sums only matter to Wasserstein)."""
        out = self.empty()
        if self.numeric:
            matrix = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in self.numeric])
            counts, invalid, tails = self.count_matrix(matrix, tail_sums=tail_sums)
            out.numeric += counts
            out.numeric_invalid += invalid
            out.tail_sums += tails
        for i, name in enumerate(self.categorical):
            slots, other = self.categories[i], len(self.categories[i])
            for value in columns[name]:
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    out.categorical_invalid[i] += 1
                else:
                    out.categorical[i][slots.get(str(value), other)] += 1
        out.rows = _rows(columns, self.numeric + self.categorical)
        return out

    def count_matrix(self, matrix: np.ndarray, *, tail_sums: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """bin_matrix on this reference's bins: (counts, invalid, tails) of a (rows, numeric features) matrix."""
        return bin_matrix(matrix, self.lo, self.hi, self.fine, tail_sums=tail_sums, lut=self.lut)

    def numeric_statistic(self, statistic: str, i: int, current: np.ndarray, tail_means: tuple[float, float]) -> float:
        """One statistic of numeric feature i from the current counts in its bins (NaN when it is not measured)."""
        psi = int(self.psi_bins[i])
        if not psi:
            return math.nan
        ref, cur = self.counts[i], np.asarray(current, dtype=np.float64)
        if statistic == "wasserstein":
            return stats.wasserstein(ref, cur, self.edges[i], tuple(self.tail_means[i]), tail_means, self.std[i])
        if statistic in ("psi", "jensenshannon") and self.lut is not None:
            starts = psi_group_starts(self.bins - 2, psi)
            ref, cur = np.add.reduceat(ref, starts), np.add.reduceat(cur, starts)
        return stats.compute(statistic, ref, cur)

    def statistics(self, current: Counts, names: Iterable[str]) -> dict[str, dict[str, float]]:
        """{feature: {statistic: value}} for the statistics that apply to each feature (KS and Wasserstein: numeric).
        PSI and Jensen-Shannon use the PSI bins, KS and Wasserstein every bin."""
        wanted = list(names)
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.numeric):
            cur, tails = current.numeric[i], current.tail_means(i, self)
            out[name] = {s: self.numeric_statistic(s, i, cur, tails) for s in wanted}
        for i, name in enumerate(self.categorical):
            out[name] = {
                s: stats.compute(s, self.category_counts[i], current.categorical[i])
                for s in wanted
                if s not in stats.NUMERIC_ONLY
            }
        return out


def _tail_means(feature: Mapping[str, Any], lo: float, hi: float) -> tuple[float, float]:
    sums = feature.get("tailSums")
    counts = feature["counts"]
    if not sums:
        return (lo, hi)
    under = sums[0] / counts[0] if counts[0] else lo
    over = sums[1] / counts[-1] if counts[-1] else hi
    return (under, over)


def _rows(columns: Mapping[str, Any], names: Iterable[str]) -> int:
    for n in names:
        return len(columns[n])
    return 0


@dataclass
class Counts:
    numeric: np.ndarray
    tail_sums: np.ndarray
    numeric_invalid: np.ndarray
    categorical: list[np.ndarray]
    categorical_invalid: np.ndarray
    rows: int = 0

    def add(self, other: Counts) -> None:
        self.numeric += other.numeric
        self.tail_sums += other.tail_sums
        self.numeric_invalid += other.numeric_invalid
        for mine, theirs in zip(self.categorical, other.categorical, strict=True):
            mine += theirs
        self.categorical_invalid += other.categorical_invalid
        self.rows += other.rows

    def tail_means(self, i: int, reference: Reference) -> tuple[float, float]:
        under, over = self.numeric[i, 0], self.numeric[i, -1]
        return (
            self.tail_sums[i, 0] / under if under else float(reference.edges[i, 0]),
            self.tail_sums[i, 1] / over if over else float(reference.edges[i, -1]),
        )


@dataclass
class SlidingWindow:
    """The last `max_rows` rows (count-based) or the last `seconds` (time-based), in `buckets` sub-windows.

    Count-based: a bucket closes after max_rows / buckets rows, so the window holds between max_rows - bucket and
    max_rows rows. Time-based: a bucket covers seconds / buckets, and buckets older than `seconds` are dropped."""

    reference: Reference
    max_rows: int | None = 10_000
    seconds: float | None = None
    buckets: int = 10
    clock: Callable[[], float] = time.monotonic
    _ring: collections.deque[tuple[float, Counts]] = field(default_factory=collections.deque)

    def __post_init__(self) -> None:
        if (self.max_rows is None) == (self.seconds is None):
            raise ValueError("a window is either count-based (max_rows) or time-based (seconds)")

    def add_rows(self, columns: Mapping[str, Any], *, tail_sums: bool = True) -> None:
        """Count rows {feature: column} into the window; a count-based window splits them at bucket boundaries, so
        a large batch pushes out old rows bucket by bucket instead of landing in one oversized bucket."""
        rows = _rows(columns, self.reference.numeric + self.reference.categorical)
        start = 0
        while start < rows:
            take = rows - start
            if self.max_rows is not None:
                bucket = max(1, self.max_rows // self.buckets)
                filled = self._ring[-1][1].rows if self._ring and not self._bucket_full(self.clock()) else 0
                take = min(take, bucket - filled)
            piece = {name: np.asarray(col)[start : start + take] for name, col in columns.items()}
            self.add(self.reference.count(piece, tail_sums=tail_sums))
            start += take

    def add(self, counts: Counts) -> None:
        now = self.clock()
        if not self._ring or self._bucket_full(now):
            self._ring.append((now, self.reference.empty()))
        self._ring[-1][1].add(counts)
        self._expire(now)

    def _bucket_full(self, now: float) -> bool:
        opened, counts = self._ring[-1]
        if self.max_rows is not None:
            return counts.rows >= max(1, self.max_rows // self.buckets)
        assert self.seconds is not None
        return now - opened >= self.seconds / self.buckets

    def _expire(self, now: float) -> None:
        if self.max_rows is not None:
            while len(self._ring) > self.buckets:
                self._ring.popleft()
        else:
            assert self.seconds is not None
            while self._ring and now - self._ring[0][0] >= self.seconds:
                self._ring.popleft()

    def total(self) -> Counts:
        self._expire(self.clock())
        out = self.reference.empty()
        for _, counts in self._ring:
            out.add(counts)
        return out
