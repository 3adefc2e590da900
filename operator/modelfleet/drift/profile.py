"""Reference profiles: what each feature looked like in the training data, computed once by the trainer.

Numeric features get a histogram on a fixed grid (equal-width bins [lo, hi) between the 0.1% and 99.9% quantiles,
plus an underflow and an overflow bin, and the sums of the values in those two), quantiles, mean and standard
deviation; categorical features get the frequencies of their most common categories plus an "other" bucket. NaN
and infinite values are counted apart and never enter the bins. Counts on a fixed grid are mergeable: the server's
live window is binned on the same grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelfleet.drift.grid import bin_matrix

GRID_BINS = 32
MAX_CATEGORIES = 64
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
OTHER = "__other__"


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    invalid = int(v.size - finite.size)
    ordered = np.sort(finite)  # one sort serves every quantile (faster than repeated selection)
    if finite.size == 0:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = _quantiles(ordered, (0.001, 0.999))
        if not hi > lo:  # a constant feature: a unit-wide grid around its value
            lo, hi = lo - 0.5, lo + 0.5
    counts, _, tails = bin_matrix(finite[:, None], np.array([lo]), np.array([hi]), GRID_BINS)
    out: dict[str, Any] = {
        "type": "numeric",
        "count": int(finite.size),
        "invalid": invalid,
        "grid": {"min": lo, "max": hi, "bins": GRID_BINS},
        "counts": counts[0].tolist(),
        "tailSums": tails[0].tolist(),
    }
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
        "version": 1,
        "features": {
            name: numeric_profile(vals) if kind == "numeric" else categorical_profile(vals)
            for name, (kind, vals) in columns.items()
        },
    }
