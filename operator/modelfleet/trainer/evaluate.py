"""Hold-out metrics: classification accuracy, F1 and ROC AUC; regression RMSE, MAE and R²."""

from __future__ import annotations

import numpy as np

from modelfleet.api.v1alpha1.shared import LOWER_IS_BETTER

__all__ = ["LOWER_IS_BETTER", "classification_metrics", "regression_metrics"]


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, classes: list[object]
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    binary = len(classes) == 2
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(
            f1_score(y_true, y_pred, average="binary" if binary else "macro", pos_label=classes[-1])
            if binary
            else f1_score(y_true, y_pred, average="macro")
        ),
    }
    if proba is not None and len(np.unique(y_true)) == len(classes):
        out["roc_auc"] = float(
            roc_auc_score(y_true, proba[:, 1])
            if binary
            else roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
        )
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }
