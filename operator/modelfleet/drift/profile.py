"""Reference profiles: what each feature looked like in the training data, computed once by the trainer.

Numeric features (profile version 2) are binned on quantile bins of the reference: `QUANTILE_BINS` bins of equal
reference mass, their edges the reference's quantiles at k / QUANTILE_BINS, plus two outer bins for its most extreme
0.1 % on each side (edges repeat where values tie, and the bins between equal edges stay empty, so a discrete
feature's edges sit on its distinct values). PSI and
Jensen-Shannon are computed on equal-mass groups of those bins (10 by default, as Evidently and NannyML do, fewer
for small references: see `psi_bins`), KS and Wasserstein on all of them, so no statistic's meaning depends on where
the data happens to sit on an equal-width grid. Counting stays fast and mergeable: a value is placed on a fine
equal-width grid between the first and the last edge (`FINE_BINS` slots plus two tails) and a per-feature look-up
table maps its slot to its bin. The table comes from the slot at which each edge's bin starts, chosen by the trainer
(`edge_slots`) and stored in the profile: a value equal to an edge that is a reference value is always counted above
it, every reference value is on its own side of every edge where the grid can tell them apart, and a live value within
one slot of an edge may land on its other side (the only approximation: 1/2,048 of the central 99.8 %). The profile
also keeps the sums of the values in the two outer bins (Wasserstein places their mass at their means), quantiles,
mean and standard deviation.

Version 1 profiles (32 equal-width bins between the 0.1 % and 99.9 % quantiles, written by earlier trainers) still
load: their grid is their bins, and every statistic is computed on it as before.

Categorical features get the frequencies of their most common categories plus an "other" bucket. NaN and infinite
values are counted apart and never enter the bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelfleet.drift.grid import bin_matrix, fine_slots

PROFILE_VERSION = 2
QUANTILE_BINS = 40
"""Equal-mass bins per numeric feature. 40 has the PSI bin counts 2, 4, 5, 8, 10 and 20 as divisors, so those PSI
bins are unions of whole quantile bins, and it bounds the binned KS's error by about a fortieth of the mass."""
FINE_BINS = 2048
"""Equal-width slots between a feature's first and last edge, used only to find a value's bin fast."""
MAX_PSI_BINS = 10
MIN_ROWS_PER_PSI_BIN = 20
MIN_REFERENCE_ROWS = 50
"""A numeric feature with fewer finite reference values is not binned honestly: its statistics are not computed."""
TAIL_QUANTILE = 0.001
MAX_CATEGORIES = 64
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
OTHER = "__other__"


def psi_bins(reference_rows: int, bins: int = QUANTILE_BINS, wanted: int = MAX_PSI_BINS) -> int:
    """How many equal-mass PSI bins a reference of this many rows supports: at most `wanted`, at least
    MIN_ROWS_PER_PSI_BIN reference rows in each, and a divisor of the quantile bins (so PSI bins are unions of whole
    quantile bins); 0 when the reference is under MIN_REFERENCE_ROWS."""
    if reference_rows < MIN_REFERENCE_ROWS:
        return 0
    most = max(2, min(wanted, reference_rows // MIN_ROWS_PER_PSI_BIN))
    return max(d for d in range(1, most + 1) if bins % d == 0)


def insufficient_reason(reference_rows: int) -> str | None:
    if reference_rows >= MIN_REFERENCE_ROWS:
        return None
    return (
        f"the reference has {reference_rows} finite values; drift needs at least {MIN_REFERENCE_ROWS} "
        f"({MIN_ROWS_PER_PSI_BIN} per PSI bin) to be measured honestly"
    )


def edge_positions(bins: int = QUANTILE_BINS) -> tuple[float, ...]:
    """Where a numeric feature's edges sit, as fractions of the reference: the 0.1 % quantile, the quantiles at
    k / bins (k = 1 .. bins - 1), the 99.9 % quantile. So there are bins + 2 bins: the two outer ones hold the
    reference's most extreme 0.1 % each (Wasserstein places their mass at their means; values far outside the
    reference land there), the bins between them equal mass."""
    return (TAIL_QUANTILE, *(k / bins for k in range(1, bins)), 1.0 - TAIL_QUANTILE)


def psi_group_starts(bins: int, psi: int) -> np.ndarray:
    """The first bin of each PSI bin (for np.add.reduceat): `bins` // `psi` consecutive quantile bins each, the
    outer tail bins joining the first and the last."""
    per = bins // psi
    return np.array([0, *(1 + j * per for j in range(1, psi))], dtype=np.intp)


def fine_grid(edges: np.ndarray) -> tuple[float, float]:
    """The equal-width counting grid [lo, hi) of a feature: from its first to its last edge (unit width when they
    tie, i.e. for a constant feature)."""
    lo, hi = float(edges[0]), float(edges[-1])
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def edge_slots(edges: np.ndarray, ordered: np.ndarray, lo: float, hi: float, fine: int) -> np.ndarray:
    """The counting slot at which each edge's bin starts (ordered: the reference's finite values, sorted).

    An edge that is one of the reference's values (always so for ties, as in discrete features) starts at its own
    slot, so every copy of it is counted above it, as the definition says. Any other edge starts at the slot
    boundary nearest to it that keeps the reference's values on their sides of the edge (when the gap between the
    two values around it holds a boundary), so the reference's counts are exactly the definition's and only values
    of the current data closer to the edge than that boundary can land on the other side. The first and the last
    edge are the grid's own ends: pinned to its first and last slot whatever float rounding says, so the outer bins
    are exactly its underflow and overflow."""
    grid_lo, grid_hi = np.array([lo]), np.array([hi])

    def slot_of(values: np.ndarray) -> np.ndarray:
        return fine_slots(values[:, None], grid_lo, grid_hi, fine)[:, 0].astype(np.int64)

    position = (edges - lo) * (fine / (hi - lo)) + 1.0
    nearest = np.clip(np.floor(position + 0.5), 0, fine + 1).astype(np.int64)
    at = np.searchsorted(ordered, edges, side="left")  # ordered[at - 1] < edge <= ordered[at]
    above = ordered[np.minimum(at, ordered.size - 1)]
    below = ordered[np.maximum(at - 1, 0)]
    is_value = above == edges
    lowest = np.where(at > 0, slot_of(below) + 1, 0)  # the boundary must leave `below` under the edge
    highest = slot_of(above)  # ... and `above` over it
    keeps_sides = lowest <= highest
    slots = np.where(keeps_sides, np.clip(nearest, lowest, np.maximum(lowest, highest)), nearest)
    slots = np.where(is_value, slot_of(edges), slots)
    slots[0] = max(int(slots[0]), 1)
    slots[-1] = min(int(slots[-1]), fine + 1)
    return np.maximum.accumulate(np.clip(slots, 0, fine + 1))


def edge_lut(slots: np.ndarray, fine: int) -> np.ndarray:
    """(features, fine + 2): the bin of each counting slot, i.e. how many of the feature's edges start at or below
    it (slots: (features, edges), non-decreasing)."""
    every_slot = np.arange(fine + 2)
    return np.array([np.searchsorted(row, every_slot, side="right") for row in slots], dtype=np.int32)


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    invalid = int(v.size - finite.size)
    ordered = np.sort(finite)  # one sort serves every quantile (faster than repeated selection)
    positions = edge_positions()
    edges = np.array(_quantiles(ordered, positions) if finite.size else [0.0] * len(positions))
    lo, hi = fine_grid(edges)
    slots = edge_slots(edges, ordered, lo, hi, FINE_BINS) if finite.size else np.ones(edges.size, dtype=np.int64)
    lut = edge_lut(slots[None, :], FINE_BINS)
    counts, _, tails = bin_matrix(finite[:, None], np.array([lo]), np.array([hi]), FINE_BINS, lut=lut)
    out: dict[str, Any] = {
        "type": "numeric",
        "count": int(finite.size),
        "invalid": invalid,
        "edges": edges.tolist(),
        "edgeSlots": slots.tolist(),
        "grid": {"min": lo, "max": hi, "bins": FINE_BINS},
        "counts": counts[0].tolist(),
        "tailSums": tails[0].tolist(),
        "psiBins": psi_bins(int(finite.size)),
    }
    reason = insufficient_reason(int(finite.size))
    if reason:
        out["insufficient"] = reason
    if finite.size:
        out["mean"] = float(finite.mean())
        out["std"] = float(finite.std())
        out["quantiles"] = {str(q): x for q, x in zip(QUANTILES, _quantiles(ordered, QUANTILES), strict=True)}
    return out


def _quantiles(ordered: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of sorted values with linear interpolation (numpy's default method)."""
    position = np.asarray(qs) * (ordered.size - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, ordered.size - 1)
    frac = position - below
    return [float(x) for x in ordered[below] * (1 - frac) + ordered[above] * frac]


def categorical_profile(values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=object)
    missing = np.array([x is None or (isinstance(x, float) and not np.isfinite(x)) for x in v], dtype=bool)
    present = np.array([str(x) for x in v[~missing]], dtype=object)
    cats, counts = np.unique(present, return_counts=True) if present.size else (np.array([]), np.array([]))
    order = np.argsort(-counts, kind="stable")
    top = order[:MAX_CATEGORIES]
    frequencies = {str(cats[i]): int(counts[i]) for i in top}
    other = int(counts[order[MAX_CATEGORIES:]].sum()) if order.size > MAX_CATEGORIES else 0
    return {
        "type": "categorical",
        "count": int(present.size),
        "invalid": int(missing.sum()),
        "counts": {**frequencies, OTHER: other},
    }


def build_profile(columns: dict[str, tuple[str, np.ndarray]]) -> dict[str, Any]:
    """{feature: (numeric|categorical, values)} -> the profile document written as profile.json."""
    return {
        "version": PROFILE_VERSION,
        "binning": {"quantileBins": QUANTILE_BINS, "fineBins": FINE_BINS, "minRowsPerPsiBin": MIN_ROWS_PER_PSI_BIN},
        "features": {
            name: numeric_profile(vals) if kind == "numeric" else categorical_profile(vals)
            for name, (kind, vals) in columns.items()
        },
    }


def reference_summary(profile: dict[str, Any]) -> dict[str, Any]:
    """What the profile offers as a drift reference, for the TrainingJob's result and the model's version record:
    the fewest finite values of any numeric feature (categorical features when there are none), the PSI bins that
    allows, and why drift cannot be measured when the reference is too small."""
    features = list(profile["features"].values())
    numeric = [f for f in features if f["type"] == "numeric"] or features
    rows = min((int(f["count"]) for f in numeric), default=0)
    out: dict[str, Any] = {"rows": rows, "psiBins": psi_bins(rows)}
    reason = insufficient_reason(rows)
    if reason:
        out["insufficient"] = reason
    return out
