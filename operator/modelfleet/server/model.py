"""Loading one artifact safely: the digest is verified before any file is deserialised; pickle and joblib files are
refused unless the caller opted in *and* pinned the digest (then the pinned bytes are exactly what someone chose to
trust); scikit-learn models load through skops with trusted types only."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.artifact import DigestMismatch, verify_directory
from modelfleet.artifact.objectstore import ObjectStore, StoreError, is_object_uri
from modelfleet.artifact.sklearn_model import MODEL_FILE as SKOPS_FILE
from modelfleet.artifact.sklearn_model import SklearnPredictor, UnsafeArtifact
from modelfleet.artifact.torch_model import WEIGHTS_FILE, TorchPredictor

UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth")
PICKLED_SKLEARN = ("model.joblib", "model.pkl")  # what --allow-pickle may load (scikit-learn objects, via joblib)


class LoadError(Exception):
    """The artifact cannot be served (missing, tampered, unsafe, unreadable)."""


@dataclass
class ServedModel:
    name: str
    version: str
    digest: str
    framework: str
    task: str
    features: list[tuple[str, str]]
    classes: list[Any] | None
    predictor: Any
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [n for n, _ in self.features]

    def predict(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        pred, proba = self.predictor.predict(columns)
        return pred, proba


def local_artifact(location: str, *, expected_digest: str | None, max_bytes: int) -> Path:
    """The directory to load: `location` itself, or, for s3:// and gs://, a verified copy fetched into the scratch space
    (every object checked against the manifest as it streams, the whole against the pinned digest)."""
    if not is_object_uri(location):
        return Path(location)
    dest = Path(tempfile.mkdtemp(prefix="modelfleet-artifact-")) / "artifact"
    try:
        store = ObjectStore.for_uri(location)
        store.download_artifact(location, dest, max_bytes=max_bytes, expected_digest=expected_digest)
    except StoreError as e:
        raise LoadError(f"artifact unavailable, nothing loaded: {e}") from e
    return dest


def load_model(
    directory: Path,
    *,
    name: str,
    version: str = "",
    expected_digest: str | None = None,
    allow_pickle: bool = False,
) -> ServedModel:
    if not directory.is_dir():
        raise LoadError(f"artifact directory {directory} does not exist")
    unsafe = sorted(p.name for p in directory.iterdir() if p.suffix in UNSAFE_SUFFIXES)
    if unsafe and not allow_pickle:
        raise LoadError(
            f"refusing unsafe model file(s) {', '.join(unsafe)}: pickle-based formats can run arbitrary "
            "code when loaded; ModelFleet serves skops and safetensors artifacts only (an MLModel may opt in with "
            "serving.allowPickle, which also pins the artifact's digest)"
        )
    if unsafe and expected_digest is None:
        raise LoadError("--allow-pickle needs --expected-digest: only pinned pickle artifacts are loaded")
    if unsafe and not any(n in PICKLED_SKLEARN for n in unsafe):
        raise LoadError(f"with --allow-pickle only {' or '.join(PICKLED_SKLEARN)} is loaded, found {', '.join(unsafe)}")
    try:
        digest = verify_directory(directory, expected_digest)
    except DigestMismatch as e:
        raise LoadError(f"artifact rejected before loading: {e}") from e
    try:
        metadata = json.loads((directory / "metadata.json").read_text())
        features = [(f["name"], f["type"]) for f in metadata["features"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LoadError(f"artifact {directory} has no readable metadata.json: {e}") from e
    try:
        pickled = [directory / n for n in PICKLED_SKLEARN if (directory / n).exists()] if allow_pickle else []
        if pickled:
            import joblib  # only after the digest check above: these bytes are the pinned ones

            predictor: Any = SklearnPredictor(joblib.load(pickled[0]), features)
        elif (directory / SKOPS_FILE).exists():
            predictor = SklearnPredictor.load(directory, features)
        elif (directory / WEIGHTS_FILE).exists():
            predictor = TorchPredictor.load(directory)
        else:
            raise LoadError(f"artifact {directory} holds no model file ({SKOPS_FILE} or {WEIGHTS_FILE})")
    except UnsafeArtifact as e:
        raise LoadError(str(e)) from e
    except LoadError:
        raise
    except Exception as e:  # a corrupt model file surfaces as whatever its reader raises
        raise LoadError(f"cannot load the model in {directory}: {type(e).__name__}: {e}") from e
    return ServedModel(
        name=name,
        version=version or digest[7:19],
        digest=digest,
        framework=metadata["framework"],
        task=metadata["task"],
        features=features,
        classes=metadata.get("classes"),
        predictor=predictor,
        metadata=metadata,
    )
