"""Linear models compiled to one matrix product give scikit-learn's answers, and are compiled only when they do."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
)
from sklearn.preprocessing import StandardScaler

from modelfleet.artifact.linear import CompiledLinear


def scaled(load):  # type: ignore[no-untyped-def]
    X, y = load(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize(
    ("load", "estimator"),
    [
        (load_iris, LogisticRegression(max_iter=1000)),  # multinomial: softmax
        (load_breast_cancer, LogisticRegression(max_iter=1000)),  # binary: the logistic function
        (load_breast_cancer, LogisticRegression(C=0.1, class_weight="balanced", max_iter=1000)),
        (load_iris, LogisticRegression(fit_intercept=False, max_iter=1000)),
        (load_diabetes, LinearRegression()),
        (load_diabetes, Ridge(alpha=0.5)),
        (load_diabetes, Lasso(alpha=0.1)),
        (load_diabetes, ElasticNet(alpha=0.1)),
    ],
)
def test_compiled_linear_models_equal_scikit_learn(load, estimator) -> None:  # type: ignore[no-untyped-def]
    X, y = scaled(load)
    estimator.fit(X, y)
    compiled = CompiledLinear.compile(estimator)
    assert compiled is not None
    rng = np.random.default_rng(1)
    probes = np.vstack([X, rng.normal(0, 10, X.shape), X[:1]])  # the data, far from it, and a single row
    if hasattr(estimator, "predict_proba"):
        proba = compiled.predict_proba(probes)
        np.testing.assert_allclose(proba, estimator.predict_proba(probes), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(estimator.classes_[proba.argmax(axis=1)], estimator.predict(probes))
    else:
        np.testing.assert_allclose(compiled.predict_proba(probes)[:, 0], estimator.predict(probes), rtol=1e-12)


def test_other_linear_shapes_and_estimators_are_not_compiled() -> None:
    X, y = scaled(load_iris)
    assert CompiledLinear.compile(LinearRegression().fit(X, np.c_[y, y])) is None  # several targets
    assert CompiledLinear.compile(SGDClassifier(random_state=0).fit(X, y)) is None  # not in the list
    assert CompiledLinear.compile(LogisticRegression()) is None  # not fitted
    sparsified = LogisticRegression(max_iter=1000).fit(X, y).sparsify()
    assert sparse.issparse(sparsified.coef_) and CompiledLinear.compile(sparsified) is None


def test_a_model_whose_answers_differ_from_the_arithmetic_is_not_compiled() -> None:
    """The proof per model: if scikit-learn maps decisions to probabilities another way (one-vs-rest before 1.5),
    the compiled form would answer differently, so it is not used."""
    X, y = scaled(load_iris)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    assert CompiledLinear.compile(model) is not None

    def one_vs_rest(rows: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-model.decision_function(rows)))
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    model.predict_proba = one_vs_rest  # type: ignore[method-assign]
    assert CompiledLinear.compile(model) is None
