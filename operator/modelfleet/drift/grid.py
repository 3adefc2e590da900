"""Binning values on fixed grids: the one counting routine shared by the trainer's profile and the server's window.

Speed matters here (the server bins every request's rows; the benchmark bins 10^8 values), so the work is done in
float32 and int32 on chunks of rows small enough for the cache. Grids far from zero relative to their width
(|lo| > 1000 x width, e.g. timestamps) are offset in float64 first, so float32 never costs more than a thousandth of a
bin.

Two tricks keep a chunk to a few passes plus one scattered increment per *two* values:
- Validity is proven by the float -> int cast itself: NumPy reports the CPU's "invalid" flag for a cast of NaN, ±inf
  or a value outside int32, so a chunk whose cast raises nothing holds only finite values and needs no separate
  `isfinite` pass. A chunk that raises is binned again the careful way (NaN and ±inf counted apart). Whether this
  platform reports the flag is checked once at import; if not, every chunk takes the careful way.
- Paired counting: the slots of row r and row r + n/2 of the same feature form one index into a (slots x slots) joint
  table per feature, so `np.bincount` does half the increments; the per-feature counts are the joint table's two
  marginals. Used while a chunk has enough rows to fill the joint tables (and they stay under 4 MiB); small batches
  (the server's requests) are counted one value per increment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows per chunk are chosen so a chunk holds about this many values: its temporaries stay in the cache.
CHUNK_VALUES = 4096 * 100
# Paired counting keeps features x slots^2 int64 counters. Measured on 10^8 values at 32 bins: pairing still beats
# single counting by 9-20 % at 200-350 features (up to 3.2 MiB of counters; 350 is the widest a 4,096 x 100-value
# chunk can pair), so the cap (4 MiB) only guards against tables far out of the cache.
PAIRED_COUNTERS_MAX = 1 << 19
_FLOAT32_SAFE_RATIO = 1000.0


def _casts_report_invalid() -> bool:
    """True when a float32 -> int32 cast of NaN, ±inf or an out-of-range value raises under errstate(invalid)."""
    for bad in (np.nan, np.inf, -np.inf, 3e9):
        values = np.ones(33, dtype=np.float32)
        values[17] = bad
        try:
            with np.errstate(invalid="raise"):
                values.astype(np.int32)
        except FloatingPointError:
            continue
        return False
    return True


CASTS_REPORT_INVALID = _casts_report_invalid()


@dataclass(frozen=True)
class BinTable:
    """A look-up table from grid slots to bins ((features, slots), non-decreasing along each row), with what counting
    needs of it prepared once (a reference keeps one; the server counts every flush with it)."""

    lut: np.ndarray  # int32
    flat: np.ndarray  # lut.ravel(), int32
    out_bins: int
    fold_index: np.ndarray  # lut + feature * out_bins, flattened: where each slot's count goes when folding
    tail_low: np.ndarray  # (1, features): slots below this are the first bin
    tail_high: np.ndarray  # (1, features): slots at or above this are the last bin

    @classmethod
    def of(cls, lut: np.ndarray) -> BinTable:
        table = np.ascontiguousarray(lut, dtype=np.int32)
        features = table.shape[0]
        out_bins = int(table.max()) + 1 if table.size else 1
        fold = (table.astype(np.int64) + (np.arange(features, dtype=np.int64) * out_bins)[:, None]).ravel()
        return cls(
            table,
            table.ravel(),
            out_bins,
            fold,
            (table == 0).sum(axis=1)[None, :],
            (table < out_bins - 1).sum(axis=1)[None, :],
        )


def bin_matrix(
    matrix: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    bins: int,
    *,
    tail_sums: bool = True,
    lut: np.ndarray | BinTable | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin a (rows, features) matrix on per-feature grids [lo, hi) with `bins` equal-width bins.

    Returns (counts, invalid, tails): counts is (features, bins + 2) with slot 0 for values below lo and slot
    bins + 1 for values at or above hi; invalid counts NaN and ±inf per feature (they enter no bin); tails is
    (features, 2), the sums of the values counted in the first and the last slot (Wasserstein places the tails' mass
    at their means), computed only when `tail_sums` is true and zero otherwise.

    With `lut` ((features, bins + 2) integers, non-decreasing along each row), the equal-width slots are only a means
    of counting fast: a value in slot s of feature f belongs to bin lut[f, s], so counts is (features, lut.max() + 1),
    folded from the slots' counts once at the end (chunks with fewer rows than slots map each value instead). Bins of
    any widths (quantile bins) thus cost what a grid of `bins` slots costs (measured: 1,024-2,048 slots counted singly
    ~1.1-1.4x 32 slots counted in pairs), no look-up per value."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a (rows, features) matrix, got shape {matrix.shape}")
    counter = _Counter(matrix.shape[1], lo, hi, bins, fast=CASTS_REPORT_INVALID, lut=lut, tail_sums=tail_sums)
    rows, features = matrix.shape
    chunk_rows = max(2, CHUNK_VALUES // max(1, features)) // 2 * 2  # even, so a paired chunk splits in halves
    counter.allocate(min(rows, chunk_rows))
    for start in range(0, rows, chunk_rows):
        counter.count(matrix[start : start + chunk_rows])
    counts, invalid = counter.totals()
    return counts, invalid, counter.tails


def fine_slots(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """The fine slot bin_matrix gives each finite value of a (rows, features) float64 matrix: the same arithmetic,
    so a look-up table built from these slots puts every value on the side of an edge that the edge itself is on."""
    counter = _Counter(values.shape[1], lo, hi, bins, fast=False, lut=None, tail_sums=False)
    counter.allocate(values.shape[0])
    n = values.shape[0]
    t, idx = counter.t[:n], counter.idx[:n]
    counter._affine(np.asarray(values, dtype=np.float64), t)
    np.clip(t, 0.0, float(bins + 1), out=t)
    idx[...] = t
    return idx.copy()


class _Counter:
    """The state of one bin_matrix call: the grids' affine map, scratch buffers and the running counts."""

    def __init__(
        self,
        features: int,
        lo: np.ndarray,
        hi: np.ndarray,
        bins: int,
        *,
        fast: bool,
        lut: np.ndarray | BinTable | None,
        tail_sums: bool,
    ) -> None:
        self.features, self.bins, self.fast = features, bins, fast
        self.fine = bins + 2  # the grid's slots: underflow, bins, overflow
        self.table = None if lut is None else lut if isinstance(lut, BinTable) else BinTable.of(lut)
        self.out_bins = self.fine if self.table is None else self.table.out_bins
        self.lo64 = np.asarray(lo, dtype=np.float64)
        self.hi64 = np.asarray(hi, dtype=np.float64)
        scale64 = bins / (self.hi64 - self.lo64)
        self.scale = scale64.astype(np.float32)
        self.shift = (1.0 - self.lo64 * scale64).astype(np.float32)
        span = self.hi64 - self.lo64
        self.offset_first = bool(np.any(np.maximum(np.abs(self.lo64), np.abs(self.hi64)) > _FLOAT32_SAFE_RATIO * span))
        self.tails = np.zeros((features, 2), dtype=np.float64)
        self.tail_sums = tail_sums

    def allocate(self, rows: int) -> None:
        """Scratch buffers for chunks of up to `rows` rows, and how to count them. With a look-up table, chunks with
        fewer rows than the grid has slots (the server's small batches) map each value to its bin and count bins;
        larger ones count slots and fold them at the end (a table of features x slots is then cheap)."""
        self.t = np.empty((rows, self.features), dtype=np.float32)
        self.idx = np.empty((rows, self.features), dtype=np.int32)
        self.mapping = self.table is not None and rows < self.fine
        if self.mapping:
            self.fine_offsets = (np.arange(self.features, dtype=np.int32) * self.fine)[None, :]
        self.slots = self.out_bins if self.mapping else self.fine  # what is counted
        # The tails are the values that end in the first and in the last bin: counted slots below tail_low and at or
        # above tail_high (when slots are folded, the table's first and last bins' slots).
        if self.table is None or self.mapping:
            self.tail_low, self.tail_high = np.ones((1, self.features)), np.full((1, self.features), self.slots - 1)
        else:
            self.tail_low, self.tail_high = self.table.tail_low, self.table.tail_high
        self.width = self.slots + 1  # single counting: the last slot collects invalid values, split off at the end
        self.offsets = (np.arange(self.features, dtype=np.int32) * self.width)[None, :]
        self.invalid_slots = self.offsets + self.slots
        self.single = np.zeros(self.features * self.width, dtype=np.int64)
        self.paired_counters = self.features * self.slots * self.slots
        self.pairing = self.paired_counters <= PAIRED_COUNTERS_MAX and rows >= self.slots * self.slots
        self.paired = np.zeros(0, dtype=np.int64)  # allocated only for chunks large enough to pair
        if self.pairing:
            self.paired = np.zeros(self.paired_counters, dtype=np.int64)
            self.pairs = np.empty((rows // 2, self.features), dtype=np.int32)
            pair_offsets = np.arange(self.features, dtype=np.int32) * (self.slots * self.slots)
            self.pair_offsets = np.broadcast_to(pair_offsets, self.pairs.shape).copy()  # contiguous: a flat add

    def count(self, x: np.ndarray) -> None:
        """Count one chunk of rows."""
        n = x.shape[0]
        t, idx = self.t[:n], self.idx[:n]
        invalid = None
        if self.fast:
            self._affine(x, t)
            try:
                with np.errstate(invalid="raise"):
                    idx[...] = t  # truncates toward zero; raises on NaN, ±inf or |t| >= 2^31
            except FloatingPointError:
                x, invalid = self._checked_slots(x, t, idx)
            else:
                np.clip(idx, 0, self.fine - 1, out=idx)  # truncation then clip = floor then clip, for every t
        else:
            x, invalid = self._checked_slots(x, t, idx)
        if self.mapping:
            assert self.table is not None
            idx += self.fine_offsets
            np.take(self.table.flat, idx, out=idx)
        if self.tail_sums:
            self._add_tail_sums(x, idx, invalid)
        if invalid is None and self.pairing and n >= self.slots * self.slots:
            self._count_pairs(idx)
        else:
            self._count_single(idx, invalid)

    def _affine(self, x: np.ndarray, out: np.ndarray) -> None:
        if self.offset_first:
            np.subtract(x, self.lo64, out=out, casting="unsafe")
            out *= self.scale
            out += np.float32(1.0)
        else:
            np.multiply(x, self.scale, out=out, casting="unsafe")
            out += self.shift

    def _checked_slots(self, x: np.ndarray, t: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The careful way: NaN and ±inf are marked invalid (and binned as lo), everything else is clipped in float
        first. Returns the chunk as binned and the invalid mask (None when every value is finite)."""
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf in the sum is what this pass looks for
            clean = bool(np.isfinite(x.sum()))
        invalid = None if clean else ~np.isfinite(x)
        if invalid is not None:
            x = np.where(invalid, self.lo64, x)
        self._affine(x, t)
        np.clip(t, 0.0, float(self.bins + 1), out=t)
        idx[...] = t  # truncation is floor here: every value is >= 0 after the clip
        return x, invalid

    def _count_pairs(self, idx: np.ndarray) -> None:
        half = idx.shape[0] // 2
        pairs = self.pairs[:half]
        np.multiply(idx[:half], self.slots, out=pairs)
        pairs += idx[half : 2 * half]
        pairs += self.pair_offsets[:half]
        self.paired += np.bincount(pairs.ravel(), minlength=self.paired.size)
        if idx.shape[0] % 2:
            self._count_single(idx[2 * half :])

    def _count_single(self, idx: np.ndarray, invalid: np.ndarray | None = None) -> None:
        """One increment per value: feature f's slots start at f * width; invalid values go to its last slot."""
        idx += self.offsets
        if invalid is not None:
            np.copyto(idx, self.invalid_slots, where=invalid)
        self.single += np.bincount(idx.ravel(), minlength=self.single.size)

    def _add_tail_sums(self, x: np.ndarray, idx: np.ndarray, invalid: np.ndarray | None) -> None:
        """Add, per feature, the sums of the values counted in the first and in the last output bin."""
        for column, chosen in ((0, idx < self.tail_low), (1, idx >= self.tail_high)):
            if invalid is not None:
                chosen &= ~invalid
            self.tails[:, column] += np.where(chosen, x, 0.0).sum(axis=0, dtype=np.float64)

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        single = self.single.reshape(self.features, self.width)
        counts = single[:, : self.slots].copy()
        if self.paired.size:
            joint = self.paired.reshape(self.features, self.slots, self.slots)
            counts += joint.sum(axis=2) + joint.sum(axis=1)
        if self.table is not None and not self.mapping:  # fold the slots into their bins (non-decreasing: exact)
            index = self.table.fold_index
            folded = np.bincount(index, weights=counts.ravel(), minlength=self.features * self.out_bins)
            counts = folded.reshape(self.features, self.out_bins).round().astype(np.int64)
        return counts, single[:, self.slots].copy()
