"""Real data bundled with scikit-learn, written to CSV or Parquet with pyarrow (no pandas, no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _table(kind: str, n_rows: int | None = None, seed: int = 0, shift: dict[str, float] | None = None) -> Any:
    import pyarrow as pa
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine

    loaders = {"breast_cancer": load_breast_cancer, "diabetes": load_diabetes, "iris": load_iris, "wine": load_wine}
    bunch = loaders[kind]()
    names = [n.replace(" ", "_").replace("(", "").replace(")", "").replace("/", "_") for n in bunch.feature_names]
    X, y = bunch.data, bunch.target
    if n_rows is not None:  # a larger table: resampled rows with a little noise (for benchmarks)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(y), n_rows)
        X = X[idx] * (1 + rng.normal(0, 0.01, (n_rows, X.shape[1])))
        y = y[idx]
    for name, sigmas in (shift or {}).items():  # the world changing: a feature moved by this many std deviations
        j = names.index(name)
        X[:, j] = X[:, j] + sigmas * X[:, j].std()
    cols = {n: pa.array(X[:, j]) for j, n in enumerate(names)}
    if kind == "breast_cancer":  # a categorical column derived from the data, so pipelines see both kinds
        cols["size_band"] = pa.array(np.where(X[:, 0] > 15, "large", np.where(X[:, 0] > 12, "medium", "small")))
        cols["target"] = pa.array(y.astype(np.int64))
    elif kind in ("iris", "wine"):
        cols["target"] = pa.array(y.astype(np.int64))
    else:
        cols["target"] = pa.array(y.astype(np.float64))
    return pa.table(cols)


def feature_spec(kind: str) -> list[dict[str, str]]:
    table = _table(kind)
    return [
        {"name": n, "type": "categorical" if n == "size_band" else "numeric"}
        for n in table.column_names
        if n != "target"
    ]


def write(
    kind: str, path: Path, fmt: str = "csv", n_rows: int | None = None, shift: dict[str, float] | None = None
) -> Path:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = _table(kind, n_rows, shift=shift)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path
