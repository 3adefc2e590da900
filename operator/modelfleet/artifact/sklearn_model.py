"""scikit-learn models stored with skops (never pickle): a preprocessing + estimator Pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.artifact.tabular import Columns, as_matrix

MODEL_FILE = "model.skops"
# Types the loader may trust: scikit-learn's own, numpy's and scipy's. Anything else in a file is refused.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


class UnsafeArtifact(Exception):
    """The artifact would need types outside the trusted list to load (or is not in a safe format)."""


def build_pipeline(estimator: Any, features: Sequence[tuple[str, str]]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [j for j, (_, kind) in enumerate(features) if kind == "numeric"]
    categorical = [j for j, (_, kind) in enumerate(features) if kind == "categorical"]
    parts = []
    if numeric:
        parts.append(
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), numeric)
        )
    if categorical:
        parts.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", max_categories=256, sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return Pipeline([("features", ColumnTransformer(parts)), ("model", estimator)])


def save(pipeline: Any, directory: Path) -> list[str]:
    """Writes model.skops; returns the types a loader must trust (all within TRUSTED_PREFIXES)."""
    import skops.io

    path = directory / MODEL_FILE
    skops.io.dump(pipeline, path)
    needed = list(skops.io.get_untrusted_types(file=path))
    foreign = [t for t in needed if not t.startswith(TRUSTED_PREFIXES)]
    if foreign:
        raise UnsafeArtifact(f"the model needs types outside the trusted list: {foreign}")
    return needed


class SklearnPredictor:
    def __init__(self, pipeline: Any, features: Sequence[tuple[str, str]]) -> None:
        self.pipeline = pipeline
        self.features = list(features)
        self.classes: list[Any] | None = list(pipeline.classes_) if hasattr(pipeline, "classes_") else None

    @classmethod
    def load(cls, directory: Path, features: Sequence[tuple[str, str]]) -> SklearnPredictor:
        import skops.io

        path = directory / MODEL_FILE
        needed = list(skops.io.get_untrusted_types(file=path))
        foreign = [t for t in needed if not t.startswith(TRUSTED_PREFIXES)]
        if foreign:
            raise UnsafeArtifact(f"{path} asks to load untrusted types {foreign}; refusing")
        return cls(skops.io.load(path, trusted=needed), features)

    def predict(self, columns: Columns) -> tuple[np.ndarray, np.ndarray | None]:
        X = as_matrix(columns, self.features)
        pred = self.pipeline.predict(X)
        proba = (
            self.pipeline.predict_proba(X)
            if self.classes is not None and hasattr(self.pipeline, "predict_proba")
            else None
        )
        return pred, proba
