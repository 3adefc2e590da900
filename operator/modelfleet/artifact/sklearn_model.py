"""scikit-learn models stored with skops (never pickle): a preprocessing + estimator Pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.artifact.forest import CompiledForest
from modelfleet.artifact.linear import CompiledLinear
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


def numeric_fast_path(pipeline: Any, features: Sequence[tuple[str, str]]) -> tuple[Any, Any, Any, Any] | None:
    """(fill, mean, scale, estimator) when the pipeline is exactly ours for all-numeric features (mean imputation,
    standard scaling): the same arithmetic in numpy, without the ColumnTransformer's per-call overhead."""
    try:
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import StandardScaler

        columns = pipeline.named_steps["features"]
        estimator = pipeline.named_steps["model"]
        (name, numeric, indices), *rest = [t for t in columns.transformers_ if t[0] != "remainder" or t[1] != "drop"]
    except (AttributeError, KeyError, ValueError, TypeError):
        return None
    if (
        rest
        or name != "numeric"
        or list(indices) != list(range(len(features)))
        or any(kind != "numeric" for _, kind in features)
    ):
        return None
    imputer, scaler = numeric.named_steps.get("impute"), numeric.named_steps.get("scale")
    if not isinstance(imputer, SimpleImputer) or imputer.strategy != "mean" or not isinstance(scaler, StandardScaler):
        return None
    if not (scaler.with_mean and scaler.with_std) or len(imputer.statistics_) != len(features):
        return None
    return imputer.statistics_, scaler.mean_, scaler.scale_, estimator


class SklearnPredictor:
    def __init__(self, pipeline: Any, features: Sequence[tuple[str, str]]) -> None:
        self.pipeline = pipeline
        self.features = list(features)
        self.classes: list[Any] | None = list(pipeline.classes_) if hasattr(pipeline, "classes_") else None
        self.fast = numeric_fast_path(pipeline, self.features)
        self.has_proba = self.classes is not None and hasattr(pipeline, "predict_proba")
        self.bare = not hasattr(pipeline, "steps")  # an estimator without our preprocessing (a pinned pickle)
        # The estimator as a few numpy operations when it can be (tree ensembles, linear models): same answers,
        # without scikit-learn's per-call checks, which dominate one-row requests.
        estimator = pipeline if self.bare else pipeline[-1]
        self.compiled = CompiledForest.compile(estimator) or CompiledLinear.compile(estimator)

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
        if self.bare:
            estimator = self.pipeline
        elif self.fast is not None:
            fill, mean, scale, estimator = self.fast
            X = (np.where(np.isnan(X), fill, X) - mean) / scale
        else:
            X, estimator = self.pipeline[:-1].transform(X), self.pipeline[-1]
        # Non-finite input takes scikit-learn's path, which decides what it means (or refuses it).
        compiled = self.compiled if self.compiled is not None and np.isfinite(X).all() else None
        if self.has_proba:
            # One pass: a classifier's predict is the class of highest probability (as scikit-learn computes it).
            proba = compiled.predict_proba(X) if compiled is not None else estimator.predict_proba(X)
            return np.asarray(estimator.classes_)[proba.argmax(axis=1)], proba
        if compiled is not None:
            return compiled.predict_proba(X)[:, 0], None
        return estimator.predict(X), None
