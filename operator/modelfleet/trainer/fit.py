"""Fitting: an allow-listed scikit-learn estimator in a preprocessing pipeline, or the built-in PyTorch MLP."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelfleet.artifact.tabular import Columns
from modelfleet.artifact.torch_model import TabularEncoder, build_mlp
from modelfleet.trainer.errors import TrainerError

MLP_DEFAULTS: dict[str, Any] = {
    "layers": "64,32",
    "dropout": 0.1,
    "epochs": 20,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
}


def make_estimator(import_path: str, hyperparameters: Mapping[str, Any], allowed: Sequence[str], seed: int) -> Any:
    if import_path not in allowed:
        raise TrainerError(f"estimator {import_path} is not in the allow-list")
    module, _, name = import_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise TrainerError(f"estimator {import_path} cannot be imported: {e}") from e
    valid = set(inspect.signature(cls).parameters)
    unknown = sorted(set(hyperparameters) - valid)
    if unknown:
        raise TrainerError(
            f"unknown hyperparameter(s) for {name}: {', '.join(unknown)} (valid: {', '.join(sorted(valid))})"
        )
    params = dict(hyperparameters)
    if "random_state" in valid and "random_state" not in params:
        params["random_state"] = seed  # reproducible unless the spec says otherwise
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise TrainerError(f"{name}({params}): {e}") from e


def fit_sklearn(pipeline: Any, X: np.ndarray, y: np.ndarray) -> Any:
    try:
        return pipeline.fit(X, y)
    except ValueError as e:  # scikit-learn reports bad hyperparameter values and unusable data as ValueError
        raise TrainerError(f"fit failed: {str(e).splitlines()[0]}") from e


def _layers(value: Any) -> list[int]:
    try:
        items = [int(x) for x in str(value).replace(" ", "").split(",") if x]
    except ValueError as e:
        raise TrainerError(f"hyperparameter layers={value!r} must be comma-separated layer widths") from e
    if not items or any(w <= 0 for w in items):
        raise TrainerError(f"hyperparameter layers={value!r} must list positive widths")
    return items


def fit_mlp(
    columns: Columns,
    y: np.ndarray,
    features: Sequence[tuple[str, str]],
    task: str,
    hyperparameters: Mapping[str, Any],
    seed: int,
) -> tuple[Any, TabularEncoder, dict[str, Any]]:
    import torch

    unknown = sorted(set(hyperparameters) - set(MLP_DEFAULTS) - {"seed"})
    if unknown:
        raise TrainerError(
            f"unknown hyperparameter(s) for mlp: {', '.join(unknown)} (valid: {', '.join(sorted(MLP_DEFAULTS))})"
        )
    hp = {**MLP_DEFAULTS, **hyperparameters}
    try:
        hidden, dropout, epochs = _layers(hp["layers"]), float(hp["dropout"]), int(hp["epochs"])
        batch, lr, wd = int(hp["batch_size"]), float(hp["learning_rate"]), float(hp["weight_decay"])
    except (TypeError, ValueError) as e:
        raise TrainerError(f"mlp hyperparameters: {e}") from e
    if not (0 <= dropout < 1 and epochs > 0 and batch > 0 and lr > 0):
        raise TrainerError(
            "mlp hyperparameters out of range: need 0 <= dropout < 1, epochs > 0, batch_size > 0, learning_rate > 0"
        )

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = TabularEncoder.fit(columns, features)
    X = torch.from_numpy(encoder.transform(columns)).to(device)
    arch: dict[str, Any] = {"kind": "mlp", "hidden": hidden, "dropout": dropout, "task": task, "device": str(device)}
    if task == "classification":
        classes = sorted({v.item() if hasattr(v, "item") else v for v in y}, key=str)
        index = {c: i for i, c in enumerate(classes)}
        target = torch.tensor([index[v.item() if hasattr(v, "item") else v] for v in y], device=device)
        loss_fn: Any = torch.nn.CrossEntropyLoss()
        arch.update(outputs=len(classes), classes=classes)
    else:
        yf = np.asarray(y, dtype=np.float64)
        mean, std = float(yf.mean()), float(yf.std()) or 1.0
        target = torch.from_numpy(((yf - mean) / std).astype(np.float32)).to(device).unsqueeze(1)
        loss_fn = torch.nn.MSELoss()
        arch.update(outputs=1, target_mean=mean, target_std=std)
    model = build_mlp(encoder.width, hidden, dropout, arch["outputs"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    generator = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), target[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch}/{epochs} loss={total / n:.5f} device={device}", file=sys.stderr, flush=True)
    model = model.to("cpu").eval()
    return model, encoder, arch
