"""Tabular inputs as plain numpy columns ({feature: array}), with no pandas anywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Columns = Mapping[str, np.ndarray]


def as_matrix(columns: Columns, features: Sequence[tuple[str, str]]) -> np.ndarray:
    """Feature columns side by side in declared order: float64 when all are numeric, object otherwise."""
    n = len(next(iter(columns.values()))) if columns else 0
    if all(kind == "numeric" for _, kind in features):
        return (
            np.column_stack([np.asarray(columns[name], dtype=np.float64) for name, _ in features])
            if features
            else np.empty((n, 0))
        )
    out = np.empty((n, len(features)), dtype=object)
    for j, (name, kind) in enumerate(features):
        col = columns[name]
        out[:, j] = np.asarray(col, dtype=np.float64) if kind == "numeric" else np.asarray(col).astype(str)
    return out
