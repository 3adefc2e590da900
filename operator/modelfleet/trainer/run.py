"""One training run from spec to artifact and result."""

from __future__ import annotations

import datetime
import importlib
import json
import platform
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet import __version__
from modelfleet.api.v1alpha1.trainingjob import TrainingJobSpec
from modelfleet.artifact import sklearn_model, torch_model
from modelfleet.artifact.objectstore import is_object_uri
from modelfleet.card import CARD_JSON, CARD_MARKDOWN, build_card, render_markdown
from modelfleet.drift.profile import build_profile, reference_summary
from modelfleet.trainer import data as data_mod
from modelfleet.trainer.errors import TrainerError
from modelfleet.trainer.evaluate import classification_metrics, regression_metrics
from modelfleet.trainer.fit import fit_mlp, fit_sklearn, make_estimator
from modelfleet.trainer.output import check_output, upload_artifact, write_artifact


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split(y: np.ndarray, task: str, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    stratify = None
    if task == "classification":
        _, counts = np.unique(y.astype(str), return_counts=True)
        if len(counts) < 2:
            raise TrainerError("classification needs at least two classes in the target column")
        stratify = y.astype(str) if counts.min() >= 2 else None
    try:
        train, test = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as e:
        raise TrainerError(f"cannot split {len(y)} rows with validation.split={fraction}: {e}") from e
    return np.sort(train), np.sort(test)


def _versions(framework: str) -> dict[str, str]:
    import pyarrow
    import sklearn

    out = {
        "python": platform.python_version(),
        "modelfleet": __version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "pyarrow": pyarrow.__version__,
    }
    if framework == "pytorch":
        import torch

        out["torch"] = torch.__version__
    return out


def train(
    spec: TrainingJobSpec, output_dir: Path, output_uri: str, *, seed: int, allowed_estimators: Sequence[str]
) -> dict[str, Any]:
    started = time.time()
    if is_object_uri(output_uri):  # refused credentials or a missing bucket fail the run before it trains
        check_output(output_uri)
    loaded = data_mod.load(spec.dataset)
    features = loaded.features
    train_idx, test_idx = split(loaded.target, spec.task, spec.training.validation.split, seed)
    train_cols = {k: v[train_idx] for k, v in loaded.columns.items()}
    test_cols = {k: v[test_idx] for k, v in loaded.columns.items()}
    y_train, y_test = loaded.target[train_idx], loaded.target[test_idx]

    extra: dict[str, Any] = {}
    predictor: sklearn_model.SklearnPredictor | torch_model.TorchPredictor
    if spec.framework == "sklearn":
        estimator = make_estimator(
            str(spec.training.estimator), spec.training.hyperparameters, allowed_estimators, seed
        )
        pipeline = sklearn_model.build_pipeline(estimator, features)
        from modelfleet.artifact.tabular import as_matrix

        # skops' type registry imports all of scikit-learn (and torch through its array-API shim): over a second.
        # Loading it on a second thread while the fit runs (scikit-learn's tree building releases the GIL) keeps
        # it off the critical path when the pod has more than one CPU.
        threading.Thread(target=importlib.import_module, args=("skops.io",), daemon=True, name="prefetch-skops").start()
        fit_sklearn(pipeline, as_matrix(train_cols, features), y_train)
        predictor = sklearn_model.SklearnPredictor(pipeline, features)

        def save_model(d: Path) -> None:
            extra["trustedTypes"] = sklearn_model.save(pipeline, d)
    else:
        model, encoder, arch = fit_mlp(train_cols, y_train, features, spec.task, spec.training.hyperparameters, seed)
        predictor = torch_model.TorchPredictor(model, encoder, arch)
        extra["device"] = arch["device"]

        def save_model(d: Path) -> None:
            torch_model.save(model, encoder, arch, d)

    pred, proba = predictor.predict(test_cols)
    if spec.task == "classification":
        classes = [c.item() if hasattr(c, "item") else c for c in (predictor.classes or [])]
        metrics = classification_metrics(y_test, pred, proba, classes)
    else:
        classes = None
        metrics = regression_metrics(np.asarray(y_test, dtype=np.float64), np.asarray(pred, dtype=np.float64))
    profile = build_profile({name: (kind, train_cols[name]) for name, kind in features})
    finished = time.time()
    metadata = {
        "framework": spec.framework,
        "task": spec.task,
        "features": [{"name": n, "type": k} for n, k in features],
        "featuresInferred": loaded.inferred,
        "target": spec.dataset.target,
        "classes": classes,
        "dataset": {
            "uri": spec.dataset.uri,
            "version": spec.dataset.version,
            "format": spec.dataset.format,
            "sha256": loaded.sha256,
            "rows": loaded.rows,
        },
        "training": {
            "estimator": spec.training.estimator,
            "hyperparameters": spec.training.hyperparameters,
            "seed": seed,
            "validationSplit": spec.training.validation.split,
            "trainRows": len(train_idx),
            "testRows": len(test_idx),
        },
        "metrics": metrics,
        "driftReference": reference_summary(profile),
        "libraries": _versions(spec.framework),
        "startedAt": _iso(started),
        "finishedAt": _iso(finished),
        **extra,
    }

    card = artifact_card(spec, metadata, output_uri)

    def fill(d: Path) -> None:
        save_model(d)
        (d / "profile.json").write_text(json.dumps(profile, separators=(",", ":")))
        (d / "metadata.json").write_text(json.dumps(metadata, indent=1, default=str))
        (d / CARD_JSON).write_text(json.dumps(card, indent=1, default=str))
        (d / CARD_MARKDOWN).write_text(render_markdown(card))

    digest = write_artifact(output_dir, fill)
    if is_object_uri(output_uri):  # written locally first (digest and all), then uploaded, manifest last
        upload_artifact(output_dir, output_uri)
    return {
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
        "artifactUri": output_uri,
        "artifactDigest": digest,
        "datasetDigest": loaded.sha256,
        "rows": loaded.rows,
        "durationSeconds": round(time.time() - started, 3),
        "driftReference": reference_summary(profile),
        "libraries": metadata["libraries"],
        **({"features": metadata["features"]} if loaded.inferred else {}),
    }


def artifact_card(spec: TrainingJobSpec, metadata: dict[str, Any], output_uri: str) -> dict[str, Any]:
    """The model card written into the artifact: what is known when training ends (approval and serving come
    later and are on the version's ModelVersion record; `modelfleet card` shows both)."""
    training = metadata["training"]
    return build_card(
        model={
            "name": spec.model_ref.name if spec.model_ref else None,
            "framework": spec.framework,
            "task": spec.task,
        },
        documentation=spec.documentation.wire() if spec.documentation else {},
        data={
            **{k: metadata["dataset"][k] for k in ("uri", "version", "format", "rows")},
            "digest": metadata["dataset"]["sha256"],
            "target": metadata["target"],
            "features": metadata["features"],
        },
        training={
            "estimator": training["estimator"],
            "hyperparameters": training["hyperparameters"],
            "validationSplit": training["validationSplit"],
            "seed": training["seed"],
            "trainRows": training["trainRows"],
            "testRows": training["testRows"],
            "trainedAt": metadata["finishedAt"],
            "libraries": metadata["libraries"],
        },
        metrics={k: round(v, 6) for k, v in metadata["metrics"].items()},
        artifact={"uri": output_uri},
    )
