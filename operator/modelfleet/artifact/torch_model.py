"""The built-in PyTorch tabular MLP: numpy preprocessing recorded in architecture.json, weights in safetensors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.artifact.tabular import Columns

WEIGHTS_FILE = "model.safetensors"
ARCH_FILE = "architecture.json"
MAX_CATEGORIES = 256


@dataclass
class TabularEncoder:
    """Standardised numeric columns (NaN -> mean) and one-hot categorical columns, fitted on the training rows."""

    numeric: list[str]
    means: list[float]
    stds: list[float]
    categorical: list[str]
    categories: list[list[str]]

    @classmethod
    def fit(cls, columns: Columns, features: Sequence[tuple[str, str]]) -> TabularEncoder:
        numeric = [n for n, k in features if k == "numeric"]
        categorical = [n for n, k in features if k == "categorical"]
        means, stds = [], []
        for name in numeric:
            col = np.asarray(columns[name], dtype=np.float64)
            finite = col[np.isfinite(col)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 0.0
            means.append(mean)
            stds.append(std if std > 0 else 1.0)  # a constant column stays constant (zero) instead of dividing by 0
        cats = []
        for name in categorical:
            values, counts = np.unique(np.asarray(columns[name]).astype(str), return_counts=True)
            cats.append([str(v) for v in values[np.argsort(-counts, kind="stable")][:MAX_CATEGORIES]])
        return cls(numeric, means, stds, categorical, cats)

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    def transform(self, columns: Columns) -> np.ndarray:
        n = len(next(iter(columns.values())))
        out = np.zeros((n, self.width), dtype=np.float32)
        for j, (name, mean, std) in enumerate(zip(self.numeric, self.means, self.stds, strict=True)):
            col = np.asarray(columns[name], dtype=np.float64)
            z = (col - mean) / std
            out[:, j] = np.where(np.isfinite(z), z, 0.0)
        offset = len(self.numeric)
        for name, cats in zip(self.categorical, self.categories, strict=True):
            index = {c: i for i, c in enumerate(cats)}
            col = np.asarray(columns[name]).astype(str)
            hits = np.fromiter((index.get(v, -1) for v in col), dtype=np.int64, count=n)
            rows = np.nonzero(hits >= 0)[0]
            out[rows, offset + hits[rows]] = 1.0  # unseen categories stay all-zero
            offset += len(cats)
        return out


def build_mlp(n_in: int, hidden: Sequence[int], dropout: float, n_out: int) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def save(model: Any, encoder: TabularEncoder, arch: dict[str, Any], directory: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, directory / WEIGHTS_FILE)
    (directory / ARCH_FILE).write_text(json.dumps({**arch, "encoder": asdict(encoder)}, indent=1))


class TorchPredictor:
    def __init__(self, model: Any, encoder: TabularEncoder, arch: dict[str, Any]) -> None:
        self.model, self.encoder, self.arch = model, encoder, arch
        self.classes: list[Any] | None = arch.get("classes")

    @classmethod
    def load(cls, directory: Path) -> TorchPredictor:
        from safetensors.torch import load_file

        arch = json.loads((directory / ARCH_FILE).read_text())
        if arch.get("kind") != "mlp":
            raise ValueError(f"unknown architecture {arch.get('kind')!r}")
        encoder = TabularEncoder(**arch["encoder"])
        model = build_mlp(encoder.width, arch["hidden"], arch["dropout"], arch["outputs"])
        model.load_state_dict(load_file(directory / WEIGHTS_FILE))
        model.eval()
        return cls(model, encoder, arch)

    def predict(self, columns: Columns) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        with torch.no_grad():
            out = self.model(torch.from_numpy(self.encoder.transform(columns))).numpy()
        if self.classes is not None:
            proba = np.exp(out - out.max(axis=1, keepdims=True))
            proba /= proba.sum(axis=1, keepdims=True)
            return np.asarray(self.classes)[proba.argmax(axis=1)], proba
        return out[:, 0] * self.arch["target_std"] + self.arch["target_mean"], None
