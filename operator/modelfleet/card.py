"""Model cards (EU AI Act art. 11 and 13 technical documentation, in the spirit of Hugging Face and Google model
cards): one per version, as JSON and as Markdown. Pure.

The trainer writes one into the artifact (`model_card.json`, `MODEL_CARD.md`) with what is known when training ends;
`modelfleet card` builds the same card from the version's ModelVersion record, which adds what happens later
(approval, serving history): the artifact is digest-pinned and never rewritten."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CARD_SCHEMA = "modelfleet.io/model-card/v1"
CARD_JSON, CARD_MARKDOWN = "model_card.json", "MODEL_CARD.md"


def build_card(
    *,
    model: Mapping[str, Any],
    documentation: Mapping[str, Any],
    data: Mapping[str, Any],
    training: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifact: Mapping[str, Any] | None = None,
    approval: Mapping[str, Any] | None = None,
    serving: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The card as a JSON-ready dict; absent facts are left out, never invented."""
    risk = documentation.get("riskClass")
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "model": {k: v for k, v in model.items() if v is not None},
        "owner": {k: documentation[k] for k in ("team", "contact") if documentation.get(k)},
        "riskClass": risk,
        "description": documentation.get("description"),
        "intendedUse": documentation.get("intendedUse"),
        "data": {k: v for k, v in data.items() if v not in (None, [], "")},
        "training": {k: v for k, v in training.items() if v not in (None, {}, "")},
        "evaluation": {"metrics": dict(metrics), "on": "the hold-out split (validation.split) of the data"},
    }
    if artifact:
        card["artifact"] = dict(artifact)
    if approval is not None:
        card["approval"] = {"required": risk == "high", **{k: v for k, v in approval.items() if v}}
    if serving is not None:
        card["serving"] = [dict(s) for s in serving]
    return {k: v for k, v in card.items() if v not in (None, {})}


def card_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The card of a version, from its ModelVersion record as the API server returns it."""
    meta, spec, status = record.get("metadata") or {}, record.get("spec") or {}, record.get("status") or {}
    training = spec.get("training") or {}
    validation = training.get("validation") or {}
    return build_card(
        model={
            "name": (spec.get("modelRef") or {}).get("name"),
            "namespace": meta.get("namespace"),
            "version": spec.get("version"),
            "framework": spec.get("framework"),
            "task": spec.get("task"),
        },
        documentation=spec.get("documentation") or {},
        data=dict(spec.get("dataset") or {}),
        training={
            "trainingJob": spec.get("trainingJob"),
            "reason": spec.get("reason"),
            "cachedFrom": spec.get("cachedFrom"),
            "estimator": training.get("estimator"),
            "hyperparameters": training.get("hyperparameters"),
            "validationSplit": validation.get("split"),
            "minScore": validation.get("minScore"),
            "trainedAt": spec.get("trainedAt"),
            "libraries": spec.get("libraries"),
        },
        metrics=spec.get("metrics") or {},
        artifact=spec.get("artifact"),
        approval={"approvedBy": status.get("approvedBy"), "approvedAt": status.get("approvedAt")},
        serving=list(status.get("serving") or []),
    )


def _section(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    present = [(k, v) for k, v in rows if v not in (None, "", [], {})]
    if not present:
        return []
    return [f"## {title}", "", *(f"- **{k}**: {v}" for k, v in present), ""]


def render_markdown(card: Mapping[str, Any]) -> str:
    model, data, training = card.get("model") or {}, card.get("data") or {}, card.get("training") or {}
    owner = card.get("owner") or {}
    title = model.get("name") or "model"
    if model.get("version"):
        title += f" v{model['version']}"
    lines = [f"# Model card: {title}", ""]
    lines += _section(
        "Model",
        [
            ("Namespace", model.get("namespace")),
            ("Framework", model.get("framework")),
            ("Task", model.get("task")),
            ("Risk class", card.get("riskClass")),
            ("Owner", owner.get("team")),
            ("Contact", owner.get("contact")),
        ],
    )
    lines += _section("Intended use", [("Description", card.get("description")), ("Use", card.get("intendedUse"))])
    features = ", ".join(f"{f['name']} ({f.get('type', 'numeric')})" for f in data.get("features") or [])
    lines += _section(
        "Data",
        [
            ("URI", data.get("uri")),
            ("Version", data.get("version")),
            ("Digest", data.get("digest") or data.get("sha256")),
            ("Rows", data.get("rows")),
            ("Target", data.get("target")),
            ("Features", features),
        ],
    )
    libraries = ", ".join(f"{k} {v}" for k, v in sorted((training.get("libraries") or {}).items()))
    lines += _section(
        "Training",
        [
            ("TrainingJob", training.get("trainingJob")),
            ("Reason", training.get("reason")),
            ("Estimator", training.get("estimator")),
            ("Hyperparameters", training.get("hyperparameters")),
            ("Validation split", training.get("validationSplit")),
            ("Trained at", training.get("trainedAt")),
            ("Libraries", libraries),
        ],
    )
    metrics = (card.get("evaluation") or {}).get("metrics") or {}
    lines += _section("Evaluation (hold-out)", [(k, f"{v:.6g}") for k, v in sorted(metrics.items())])
    artifact = card.get("artifact") or {}
    lines += _section("Artifact", [("URI", artifact.get("uri")), ("Digest", artifact.get("digest"))])
    approval = card.get("approval")
    if approval is not None:
        who = approval.get("approvedBy")
        state = f"{who} at {approval.get('approvedAt')}" if who else "not approved"
        lines += _section("Approval", [("Required", approval.get("required")), ("Approved", state)])
    serving = card.get("serving")
    if serving is not None:
        spans = [f"{s.get('start')} - {s.get('end') or 'now'}" for s in serving] or ["never served"]
        lines += _section("Serving", [("Intervals", "; ".join(spans))])
    return "\n".join(lines).rstrip() + "\n"
