"""The API models, the generated CRDs and the samples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from modelfleet.api.crdgen import KINDS, crd, render
from modelfleet.api.v1alpha1 import DriftPolicy, MLModel, TrainingJob, parse_duration
from tests.samples import all_samples

MODELS = {"MLModel": MLModel, "TrainingJob": TrainingJob, "DriftPolicy": DriftPolicy}


@pytest.mark.parametrize(("file", "doc"), all_samples(), ids=[f"{f}:{d['metadata']['name']}" for f, d in all_samples()])
def test_every_sample_validates_against_the_models(file: str, doc: dict[str, Any]) -> None:
    obj = MODELS[doc["kind"]].model_validate(doc)
    assert obj.spec is not None


def test_models_are_camel_case_on_the_wire_and_snake_case_in_python() -> None:
    _, doc = next((f, d) for f, d in all_samples() if d["metadata"]["name"] == "fraud-detector")
    model = MLModel.model_validate(doc)
    assert model.spec.training.validation.min_score == 0.85
    wire = model.spec.wire()
    assert wire["training"]["validation"]["minScore"] == 0.85 and "min_score" not in str(wire)
    with pytest.raises(ValidationError, match="learningRate"):
        MLModel.model_validate(
            {**doc, "spec": {**doc["spec"], "training": {**doc["spec"]["training"], "learningRate": 1}}}
        )


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25)]
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "1d", "5 m", "-5m"])
def test_bad_durations_do_not_parse(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_every_string_list_and_map_is_bounded(kind: Any) -> None:
    root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, node in _walk(root["properties"][part], part):
            if node.get("type") == "string":
                assert "maxLength" in node or "enum" in node, f"{kind.kind} {path}: unbounded string"
            if node.get("type") == "array":
                assert "maxItems" in node, f"{kind.kind} {path}: unbounded list"
            if node.get("type") == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, f"{kind.kind} {path}: unbounded map"
            assert "$ref" not in node and "anyOf" not in node and "title" not in node


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_status_is_strict_and_documented(kind: Any) -> None:
    root = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root["properties"]["status"], "status"):
        assert not node.get("x-kubernetes-preserve-unknown-fields"), f"{path} preserves unknown fields"
    for path, node in _walk(root["properties"]["spec"], "spec"):
        if path != "spec" and not path.endswith("{}") and not path.endswith("[]"):
            assert node.get("description"), f"{kind.kind} {path} has no description"


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_selectable_fields_name_string_fields_of_the_schema(kind: Any) -> None:
    """The API server accepts a selectable field only on a string, integer or boolean leaf of the schema."""
    version = crd(kind)["spec"]["versions"][0]
    paths = [f["jsonPath"] for f in version.get("selectableFields", [])]
    expected = {
        "TrainingJob": [".spec.modelRef.name"],
        "DriftPolicy": [".spec.modelRef.name"],
        "ModelVersion": [".spec.modelRef.name", ".spec.dataset.digest", ".spec.dataset.uri", ".spec.version"],
    }
    assert paths == expected.get(kind.kind, [])
    for path in paths:
        node = version["schema"]["openAPIV3Schema"]
        for step in path.strip(".").split("."):
            node = node["properties"][step]
        assert node["type"] in ("string", "integer", "boolean"), path


def test_optional_spec_blocks_default_to_empty_objects_so_nested_defaults_apply() -> None:
    spec = crd(KINDS[0])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["serving"]["default"] == {}
    assert spec["properties"]["serving"]["properties"]["idleAfter"]["default"] == "30m"
    assert "default" not in spec["properties"]["artifacts"]  # it has a required field: no empty default
    assert spec["properties"]["training"]["properties"]["validation"]["properties"]["split"] == {
        "type": "number",
        "description": "Fraction of rows held out for evaluation, in (0, 0.5].",
        "default": 0.2,
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 0.5,
    }


def test_generated_files_are_stable() -> None:
    assert render() == render()
    assert set(render()) == {
        "modelfleet.io_mlmodels.yaml",
        "modelfleet.io_trainingjobs.yaml",
        "modelfleet.io_driftpolicies.yaml",
        "modelfleet.io_modelversions.yaml",
    }


def test_the_readmes_first_model_is_the_shortest_sample() -> None:
    import re
    from pathlib import Path

    import yaml

    from tests.samples import sample

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Your first model") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    assert yaml.safe_load(block.group(1)) == sample("MLModel", "first")
