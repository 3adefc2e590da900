"""Linear models evaluated as one matrix product, without scikit-learn's per-call checks.

For a one-row request, scikit-learn's LogisticRegression.predict_proba spends nearly all of its ~60 µs validating the
input (is it a dataframe? which namespace? feature names? finite?) and ~2 µs on the arithmetic; on the model server
that was 40 % of a logistic regression's request. The server has already parsed and checked the input into a finite
float matrix, so the arithmetic alone is enough: the decision function X @ coef_.T + intercept_, then the logistic
function (binary, as [1 - p, p]) or the softmax (multinomial), as scikit-learn computes them; for linear regressors
the decision function is the prediction.

How scikit-learn turns decisions into probabilities has changed between versions (one-vs-rest was the default before
1.5), so a model is compiled only after its answers on probe rows equal scikit-learn's own; otherwise, and for
anything else (sparse coefficients, several targets, other estimators), the server keeps scikit-learn's path."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

PROBE_ROWS = 32
TOLERANCE = 1e-9  # the same arithmetic in another order differs by rounding only


class CompiledLinear:
    def __init__(self, coef: np.ndarray, intercept: np.ndarray, kind: str) -> None:
        self.coef_t = np.ascontiguousarray(coef.T)  # (features, outputs)
        self.intercept = intercept
        self.kind = kind  # "binary" | "multinomial" | "regression"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Classifiers: the class probabilities; regressors: the prediction as (rows, 1), like CompiledForest."""
        decision = X @ self.coef_t + self.intercept
        if self.kind == "binary":
            p = 1.0 / (1.0 + np.exp(-decision))
            return np.hstack([1.0 - p, p])
        if self.kind == "multinomial":
            shifted = np.exp(decision - decision.max(axis=1, keepdims=True))
            return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
        return np.asarray(decision)

    @classmethod
    def compile(cls, estimator: Any) -> CompiledLinear | None:
        from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge

        coef = getattr(estimator, "coef_", None)
        if not isinstance(coef, np.ndarray) or coef.dtype != np.float64:
            return None  # unfitted, sparsified or another precision
        intercept = np.atleast_1d(np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64))
        if type(estimator) is LogisticRegression:
            classes = len(getattr(estimator, "classes_", ()))
            if classes < 2 or coef.shape[0] != (1 if classes == 2 else classes):
                return None
            compiled = cls(coef, intercept, "binary" if classes == 2 else "multinomial")
            expected = estimator.predict_proba
        elif type(estimator) in (LinearRegression, Ridge, Lasso, ElasticNet):
            if coef.ndim != 1:
                return None  # several targets
            compiled = cls(coef[None, :], intercept, "regression")

            def expected(X: np.ndarray) -> np.ndarray:
                return np.asarray(estimator.predict(X)).reshape(-1, 1)

        else:
            return None
        # The proof, per model: the same answers as scikit-learn's own on rows around and far from the data.
        probes = np.random.default_rng(0).normal(0.0, 3.0, (PROBE_ROWS, coef.shape[-1]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. a bare estimator fitted on named columns
                same = np.allclose(compiled.predict_proba(probes), expected(probes), rtol=TOLERANCE, atol=TOLERANCE)
        except (ValueError, TypeError):
            return None
        return compiled if same else None
