"""CustomResourceDefinitions generated from the pydantic models: `python -m modelfleet.api.crdgen` writes `crds/` and
the chart's copy; `--check` fails (exit 1, with a diff) when the files on disk differ from what the models produce.

The models' JSON Schema is turned into a Kubernetes structural schema: references inlined, `null` branches dropped,
int-or-string and preserve-unknown-fields markers kept, OpenAPI 3.0 exclusive bounds, and `default: {}` on optional
spec blocks whose fields all have defaults, so the API server fills in nested defaults and GitOps tools see no drift.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from modelfleet.api.generated import write_or_check
from modelfleet.api.v1alpha1 import GROUP, VERSION
from modelfleet.api.v1alpha1.driftpolicy import DriftPolicySpec, DriftPolicyStatus
from modelfleet.api.v1alpha1.mlmodel import MLModelSpec, MLModelStatus
from modelfleet.api.v1alpha1.modelversion import ModelVersionSpec, ModelVersionStatus
from modelfleet.api.v1alpha1.trainingjob import TrainingJobSpec, TrainingJobStatus

CATEGORY = "modelfleet"
KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "format",
    "nullable",
}


def _cond(ctype: str) -> str:
    return f'.status.conditions[?(@.type=="{ctype}")].status'


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: list[dict[str, Any]] = field(default_factory=list)
    # Paths `kubectl get --field-selector` (and the operator's lists) can filter on at the API server (Kubernetes
    # >= 1.31; older servers ignore the declaration and the operator filters itself).
    selectable: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
KINDS = [
    Kind(
        "MLModel",
        "mlmodels",
        ["mlm"],
        MLModelSpec,
        MLModelStatus,
        "A model, its owner and risk class, its dataset, how to train it and how to serve it.",
        [
            {"name": "Ready", "type": "string", "jsonPath": _cond("Ready")},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Serving",
                "type": "integer",
                "jsonPath": ".status.servingVersion.number",
                "description": "The version being served",
            },
            {
                "name": "Latest",
                "type": "integer",
                "jsonPath": ".status.latestVersion.number",
                "description": "The newest trained version",
            },
            {"name": "Drift", "type": "number", "jsonPath": ".status.drift.score"},
            {"name": "Owner", "type": "string", "jsonPath": ".spec.owner.team", "priority": 1},
            {"name": "Risk", "type": "string", "jsonPath": ".spec.riskClass", "priority": 1},
            AGE,
        ],
    ),
    Kind(
        "TrainingJob",
        "trainingjobs",
        ["tj"],
        TrainingJobSpec,
        TrainingJobStatus,
        "One training run, reconciled into a batch/v1 Job.",
        [
            {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef.name"},
            {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Duration",
                "type": "number",
                "jsonPath": ".status.result.durationSeconds",
                "description": "Training wall time in seconds",
            },
            {"name": "Cache hit", "type": "string", "jsonPath": _cond("CacheHit")},
            {"name": "Reason", "type": "string", "jsonPath": ".spec.reason", "priority": 1},
            AGE,
        ],
        [".spec.modelRef.name"],
    ),
    Kind(
        "DriftPolicy",
        "driftpolicies",
        ["dpol"],
        DriftPolicySpec,
        DriftPolicyStatus,
        "Watches a model's drift and GPU use in Prometheus and acts: retrain, alert or scale idle serving down.",
        [
            {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef.name"},
            {"name": "Drift detected", "type": "string", "jsonPath": _cond("DriftDetected")},
            {"name": "Last evaluated", "type": "date", "jsonPath": ".status.lastEvaluationTime"},
            {"name": "Retrains this week", "type": "integer", "jsonPath": ".status.retrainsThisWeek"},
            AGE,
        ],
        [".spec.modelRef.name"],
    ),
    Kind(
        "ModelVersion",
        "modelversions",
        ["mv"],
        ModelVersionSpec,
        ModelVersionStatus,
        "The durable record of one trained version of an MLModel: lineage, artifact, metrics, approval, serving.",
        [
            {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef.name"},
            {"name": "Version", "type": "integer", "jsonPath": ".spec.version"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Approved by", "type": "string", "jsonPath": ".status.approvedBy"},
            {"name": "Dataset", "type": "string", "jsonPath": ".spec.dataset.digest", "priority": 1},
            {"name": "Trained", "type": "date", "jsonPath": ".spec.trainedAt"},
        ],
        [".spec.modelRef.name", ".spec.dataset.digest", ".spec.dataset.uri", ".spec.version"],
    ),
]


class _Converter:
    def __init__(self, defs: dict[str, Any], defaults: bool) -> None:
        self.defs = defs
        self.defaults = defaults  # spec: fill `default: {}`; status: never default anything

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            target = copy.deepcopy(self.defs[node.pop("$ref").split("/")[-1]])
            target.update(node)
            node = target
        if "allOf" in node and len(node["allOf"]) == 1:
            inner = self.resolve(node.pop("allOf")[0])
            inner.update(node)
            node = inner
        if "anyOf" in node:
            branches = [self.resolve(b) for b in node.pop("anyOf") if b.get("type") != "null"]
            if len(branches) == 1:
                merged = branches[0]
                merged.update(node)
                node = merged
            elif sorted(b.get("type", "") for b in branches) == ["integer", "string"]:
                node = {"x-kubernetes-int-or-string": True, **node}
            else:
                raise ValueError(f"cannot express union {branches} in a structural schema")
        if "const" in node:
            node["enum"] = [node.pop("const")]
        return node

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        node = self.resolve(raw)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key.startswith("x-kubernetes-") or key in KEEP:
                out[key] = value
        if out.get("default", 0) is None:
            del out["default"]
        if "exclusiveMinimum" in out and not isinstance(out["exclusiveMinimum"], bool):
            out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
        if "exclusiveMaximum" in out and not isinstance(out["exclusiveMaximum"], bool):
            out["maximum"], out["exclusiveMaximum"] = out["exclusiveMaximum"], True
        if out.get("x-kubernetes-int-or-string") or (
            out.get("x-kubernetes-preserve-unknown-fields") and out.get("type") != "object"
        ):
            out.pop("type", None)  # any JSON value (an object keeps its type: a free-form block such as affinity)
        if "properties" in out:
            required = set(out.get("required", []))
            props = {}
            for name, sub in out["properties"].items():
                converted = self.convert(sub)
                if (
                    self.defaults
                    and name not in required
                    and "default" not in converted
                    and converted.get("type") == "object"
                    and "properties" in converted
                    and not converted.get("required")
                ):
                    converted["default"] = {}
                props[name] = converted
            out["properties"] = props
            out.pop("additionalProperties", None)  # CRD schemas forbid it beside properties; the server prunes
        elif isinstance(out.get("additionalProperties"), dict):
            out["additionalProperties"] = self.convert(out["additionalProperties"])
        if isinstance(out.get("items"), dict):
            out["items"] = self.convert(out["items"])
        return out


def openapi_schema(model: type[BaseModel], defaults: bool) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _Converter(schema.get("$defs", {}), defaults).convert(schema)


def crd(kind: Kind) -> dict[str, Any]:
    spec_schema = openapi_schema(kind.spec, defaults=True)
    status_schema = openapi_schema(kind.status, defaults=False)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.name, "labels": {"app.kubernetes.io/part-of": "modelfleet"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": kind.short_names,
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    **({"selectableFields": [{"jsonPath": p} for p in kind.selectable]} if kind.selectable else {}),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = (
    "# Generated by `make manifests` (python -m modelfleet.api.crdgen) from operator/modelfleet/api. Do not edit.\n"
)


def render() -> dict[str, str]:
    """File name -> YAML text, one CRD per file."""
    return {f"{GROUP}_{k.plural}.yaml": HEADER + yaml.safe_dump(crd(k), sort_keys=False, width=120) for k in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, action="append", required=True, help="directory to write (repeatable)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = parser.parse_args(argv)
    files = render()
    drift = False
    for out in args.out:
        expected_names = set(files)
        # kustomization.yaml is written by hand (it lists the CRDs for kubectl apply -k); everything else is ours.
        present = {p.name for p in out.glob("*.yaml") if p.name != "kustomization.yaml"} if out.exists() else set()
        for name, text in files.items():
            if write_or_check(out / name, text, args.check) and args.check:
                drift = True
        for stale in present - expected_names:
            if args.check:
                drift = True
                print(f"{out / stale}: not generated from the models (remove it)")
            else:
                (out / stale).unlink()
    if drift:
        print("CRDs differ from the models: run `make manifests` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
