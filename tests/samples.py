"""Loading the shipped samples (manifests/samples) for tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "manifests" / "samples"


def all_samples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            out.append((path.name, doc))
    return out


def sample(kind: str, name: str | None = None) -> dict[str, Any]:
    for _, doc in all_samples():
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return copy.deepcopy(doc)
    raise KeyError(kind)
