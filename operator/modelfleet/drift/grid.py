"""Binning values on fixed grids: the one counting routine shared by the trainer's profile and the server's window.

Speed matters here (the server bins every request's rows; the benchmark bins 10^8 values), so the work is done in
float32 and int32 on chunks of rows small enough for the cache, with one `np.bincount` per chunk for all features at
once. Grids far from zero relative to their width (|lo| > 1000 x width, e.g. timestamps) are offset in float64 first,
so float32 never costs more than a thousandth of a bin."""

from __future__ import annotations

import numpy as np

# Values binned per step: the temporaries of one step (a few arrays of this many values) stay in cache.
CHUNK_VALUES = 2048 * 100
_FLOAT32_SAFE_RATIO = 1000.0


def bin_matrix(
    matrix: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int, *, tail_sums: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin a (rows, features) matrix on per-feature grids [lo, hi) with `bins` equal-width bins.

    Returns (counts, invalid, tails): counts is (features, bins + 2) with slot 0 for values below lo and slot
    bins + 1 for values at or above hi; invalid counts NaN and ±inf per feature (they enter no bin); tails is
    (features, 2), the sums of the under- and overflow values (Wasserstein places the tails' mass at their means),
    computed only when `tail_sums` is true and zero otherwise."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a (rows, features) matrix, got shape {matrix.shape}")
    rows, features = matrix.shape
    width = bins + 3  # slot bins + 2 collects invalid values and is split off at the end
    lo64 = np.asarray(lo, dtype=np.float64)
    hi64 = np.asarray(hi, dtype=np.float64)
    scale64 = bins / (hi64 - lo64)
    scale = scale64.astype(np.float32)
    shift = (1.0 - lo64 * scale64).astype(np.float32)
    offset_first = bool(np.any(np.maximum(np.abs(lo64), np.abs(hi64)) > _FLOAT32_SAFE_RATIO * (hi64 - lo64)))
    offsets = (np.arange(features, dtype=np.int32) * width)[None, :]
    invalid_slots = offsets + (bins + 2)
    flat = np.zeros(features * width, dtype=np.int64)
    tails = np.zeros((features, 2), dtype=np.float64)
    chunk_rows = max(1, CHUNK_VALUES // max(1, features))
    t = np.empty((min(rows, chunk_rows), features), dtype=np.float32)
    idx = np.empty(t.shape, dtype=np.int32)
    for start in range(0, rows, chunk_rows):
        x = matrix[start : start + chunk_rows]
        n = x.shape[0]
        tt, ii = t[:n], idx[:n]
        invalid = None if np.isfinite(x.sum()) else ~np.isfinite(x)  # one cheap pass proves a chunk clean
        if invalid is not None:
            x = np.where(invalid, lo64, x)
        if offset_first:
            np.subtract(x, lo64, out=tt, casting="unsafe")
            tt *= scale
            tt += np.float32(1.0)
        else:
            np.multiply(x, scale, out=tt, casting="unsafe")
            tt += shift
        np.clip(tt, 0.0, float(bins + 1), out=tt)
        ii[...] = tt  # truncation is floor here: every value is >= 0 after the clip
        ii += offsets
        if invalid is not None:
            np.copyto(ii, invalid_slots, where=invalid)
        chunk = np.bincount(ii.ravel(), minlength=features * width)
        flat += chunk
        if tail_sums:
            chunk_counts = chunk.reshape(features, width)
            # sum(min(x, lo)) = (sum of the values below lo) + lo * (rows not below lo); likewise for hi.
            np.minimum(x, lo64, out=tt, casting="unsafe")
            tails[:, 0] += tt.sum(axis=0, dtype=np.float64) - lo64 * (n - chunk_counts[:, 0])
            np.maximum(x, hi64, out=tt, casting="unsafe")
            tails[:, 1] += tt.sum(axis=0, dtype=np.float64) - hi64 * (n - chunk_counts[:, bins + 1])
    counts = flat.reshape(features, width)
    return counts[:, : bins + 2], counts[:, bins + 2], tails
