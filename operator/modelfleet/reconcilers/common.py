"""Parsing bodies into typed models and the semantic checks only the operator can make."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelfleet.api.v1alpha1.shared import Dataset, Training
from modelfleet.config import OperatorConfig
from modelfleet.errors import InvalidSpec

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: Mapping[str, Any]) -> M:
    """The typed object; a body the schema let through but the model rejects is an InvalidSpec naming the field."""
    try:
        return model.model_validate({k: body.get(k) for k in ("metadata", "spec", "status") if body.get(k) is not None})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidSpec(f"{where}: {first['msg']}") from e


def check_training(framework: str, training: Training, dataset: Dataset, config: OperatorConfig) -> None:
    """Rules that depend on the operator's configuration or are awkward in CEL."""
    if framework == "sklearn" and training.estimator not in config.allowed_estimators:
        raise InvalidSpec(
            f"training.estimator {training.estimator!r} is not in the operator's allow-list "
            f"(allowed: {', '.join(sorted(config.allowed_estimators))}); ask the platform team to allow it"
        )
    if dataset.target in {f.name for f in dataset.features or ()}:
        raise InvalidSpec(f"dataset.target {dataset.target!r} is also listed in dataset.features")
