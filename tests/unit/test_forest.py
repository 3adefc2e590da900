"""Tree ensembles compiled to flat numpy arrays give exactly scikit-learn's answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from modelfleet.artifact.forest import CompiledForest


@pytest.mark.parametrize(
    ("load", "estimator"),
    [
        (load_iris, RandomForestClassifier(n_estimators=60, random_state=0)),
        (load_breast_cancer, ExtraTreesClassifier(n_estimators=40, random_state=1)),
        (load_breast_cancer, DecisionTreeClassifier(random_state=0)),
        (load_breast_cancer, RandomForestClassifier(n_estimators=30, class_weight="balanced", random_state=2)),
        (load_diabetes, RandomForestRegressor(n_estimators=30, random_state=0)),
        (load_diabetes, ExtraTreesRegressor(n_estimators=20, random_state=0)),
        (load_diabetes, DecisionTreeRegressor(max_depth=6, random_state=0)),
    ],
)
def test_compiled_ensembles_equal_scikit_learn(load, estimator) -> None:  # type: ignore[no-untyped-def]
    X, y = load(return_X_y=True)
    estimator.fit(X, y)
    forest = CompiledForest.compile(estimator)
    assert forest is not None
    rng = np.random.default_rng(0)
    probes = np.vstack([X, X + rng.normal(0, 0.05, X.shape) * X.std(axis=0)])
    # Inputs exactly at split thresholds: the float32 comparison must go the way scikit-learn's does.
    tree = getattr(estimator, "estimators_", [estimator])[0].tree_
    split = tree.children_left != -1
    at_threshold = np.tile(X[:1], (int(split.sum()), 1))
    at_threshold[np.arange(int(split.sum())), tree.feature[split]] = tree.threshold[split]
    probes = np.vstack([probes, at_threshold])
    if hasattr(estimator, "predict_proba"):
        np.testing.assert_allclose(forest.predict_proba(probes), estimator.predict_proba(probes), rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(forest.predict_proba(probes)[:, 0], estimator.predict(probes), rtol=1e-12)


def test_other_estimators_are_not_compiled() -> None:
    X, y = load_iris(return_X_y=True)
    assert CompiledForest.compile(GradientBoostingClassifier(n_estimators=5).fit(X, y)) is None
    multi = RandomForestRegressor(n_estimators=3).fit(X, np.c_[y, y])
    assert CompiledForest.compile(multi) is None
