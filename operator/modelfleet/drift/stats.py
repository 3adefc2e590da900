"""Drift statistics computed from counts on a fixed grid.

Every statistic here takes two count vectors on the same grid (the reference profile's and the current window's), so
the live side never keeps raw values: it only adds to counts, and counts from several sub-windows or pods merge by
addition. For numeric features the layout is [underflow, bins..., overflow]; the tails also carry the sum of their
values so that Wasserstein can place their mass at its mean instead of at the grid's edge.

Conventions (chosen to match the peers' defaults, see docs/drift.md):
- PSI: proportions with empty bins floored at 1e-4 (as Evidently and most PSI write-ups do), natural logarithm.
- KS: the largest distance between the two binned CDFs, read at the bin edges. Against the exact two-sample KS on the
  raw values it is off by at most the mass of one bin (the largest difference can sit inside a bin).
- Jensen-Shannon: the distance (square root of the divergence), natural logarithm, as scipy.spatial.distance does.
- Wasserstein: W1 between the two distributions with each grid bin's mass spread uniformly over the bin and each tail's
  mass at its mean, divided by the reference's standard deviation (Evidently's "normed" Wasserstein).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PSI_FLOOR = 1e-4
STATISTICS = ("psi", "ks", "jensenshannon", "wasserstein")
NUMERIC_ONLY = frozenset({"ks", "wasserstein"})


def _proportions(counts: np.ndarray) -> np.ndarray | None:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return None if total <= 0 else c / total


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None:
        return math.nan
    p = np.maximum(p, PSI_FLOOR)
    q = np.maximum(q, PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: np.ndarray, current: np.ndarray) -> float:
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None:
        return math.nan
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    p, q = _proportions(reference), _proportions(current)
    if p is None or q is None:
        return math.nan
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, 0.5 * (kl_p + kl_q))))


def _piecewise_cdf(
    points: np.ndarray, counts: np.ndarray, edges: np.ndarray, tail_means: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The CDF's right limit at each point and its left limit, for bins spread uniformly and tails at their means."""
    p = np.asarray(counts, dtype=np.float64) / counts.sum()
    under, inner, over = p[0], p[1:-1], p[-1]
    # Within the grid the CDF is linear in each bin: np.interp over the cumulative mass at the edges.
    grid_cdf = np.interp(points, edges, np.concatenate([[0.0], np.cumsum(inner)]), left=0.0, right=inner.sum())
    right = grid_cdf + under * (points >= tail_means[0]) + over * (points >= tail_means[1])
    left = grid_cdf + under * (points > tail_means[0]) + over * (points > tail_means[1])
    return right, left


def wasserstein(
    reference: np.ndarray,
    current: np.ndarray,
    edges: np.ndarray,
    reference_tail_means: tuple[float, float],
    current_tail_means: tuple[float, float],
    reference_std: float,
) -> float:
    """Normalised W1 = integral of |F_ref - F_cur| dx / std_ref, integrated exactly for the piecewise model above."""
    if reference.sum() <= 0 or current.sum() <= 0 or not reference_std > 0:
        return math.nan
    lo, hi = float(edges[0]), float(edges[-1])
    tails = [min(m, lo) for m in (reference_tail_means[0], current_tail_means[0])]
    tails += [max(m, hi) for m in (reference_tail_means[1], current_tail_means[1])]
    points = np.unique(np.concatenate([edges, np.asarray(tails)]))
    ref_right, ref_left = _piecewise_cdf(points, reference, edges, _clip_tails(reference_tail_means, lo, hi))
    cur_right, cur_left = _piecewise_cdf(points, current, edges, _clip_tails(current_tail_means, lo, hi))
    # On each segment (a, b) both CDFs are linear: their difference goes from d0 (right of a) to d1 (left of b).
    d0 = (ref_right - cur_right)[:-1]
    d1 = (ref_left - cur_left)[1:]
    length = np.diff(points)
    same_sign = d0 * d1 >= 0
    denom = np.abs(d0) + np.abs(d1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(denom > 0, (d0 * d0 + d1 * d1) / (2 * denom), 0.0)
    area = np.where(same_sign, (np.abs(d0) + np.abs(d1)) / 2, crossing) * length
    return float(area.sum() / reference_std)


def _clip_tails(means: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    return (min(means[0], lo), max(means[1], hi))


def grid_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.linspace(lo, hi, bins + 1)


def compute(statistic: str, reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """psi, ks or jensenshannon of two count vectors (Wasserstein needs the grid: use `wasserstein`)."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if statistic == "psi":
        return psi(ref, cur)
    if statistic == "ks":
        return ks(ref, cur)
    if statistic == "jensenshannon":
        return jensenshannon(ref, cur)
    raise ValueError(f"unknown statistic {statistic!r}")
