"""Accountability, the pure parts: who approved from the admission policy's annotations, ModelVersion records and
their status over a version's life, lineage and audit answers, model cards, and which record passes a model's
change queues."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelfleet.api.access import APPROVED_BY, APPROVED_VERSION
from modelfleet.api.v1alpha1 import MLModel
from modelfleet.api.v1alpha1.modelversion import ModelVersion
from modelfleet.audit import audit_trail, dataset_selector, lineage, pick_record
from modelfleet.card import card_from_record, render_markdown
from modelfleet.config import OperatorConfig
from modelfleet.controller.routing import changed_versions, queued_by
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.mlmodel import plan_mlmodel
from modelfleet.reconcilers.records import CachedRecord, desired_record, plan_record_status, record_name
from modelfleet.status.conditions import get_condition
from modelfleet.vocabulary import Key
from tests.samples import sample

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
DIGEST = "sha256:" + "ab" * 32
pytestmark = pytest.mark.unit


def model(risk: str = "high", approved: int | None = None, annotations: dict[str, str] | None = None) -> MLModel:
    doc = sample("MLModel", "fraud-detector")
    doc["metadata"].update(generation=1, namespace="ml", uid="0f1e2d3c-aaaa-bbbb", annotations=annotations or {})
    doc["spec"]["riskClass"] = risk
    doc["spec"]["owner"]["contact"] = "risk@example.com"
    doc["spec"]["description"] = "Scores card payments for fraud."
    doc["spec"]["training"]["validation"] = {"metric": "accuracy", "minScore": 0.8}
    if approved is not None:
        doc["spec"].setdefault("serving", {})["approvedVersion"] = approved
    return parse(MLModel, doc)


def succeeded(m: MLModel, number: int, accuracy: float) -> dict[str, Any]:
    name = f"{m.metadata['name']}-v{number}"
    return {
        "metadata": {"name": name, "labels": {"modelfleet.io/version": str(number)}},
        "spec": {
            "framework": m.spec.framework,
            "task": m.spec.task,
            "dataset": m.spec.dataset.wire(),
            "training": m.spec.training.wire(),
            "reason": "initial" if number == 1 else "drift",
        },
        "status": {
            "conditions": [{"type": "Succeeded", "status": "True"}],
            "completionTime": "2026-11-01T11:00:00Z",
            "fingerprint": f"fp{number}",
            "result": {
                "metrics": {"accuracy": accuracy},
                "artifactUri": f"pvc://store/fraud/v{number}",
                "artifactDigest": f"sha256:{number:064d}",
                "datasetDigest": DIGEST,
                "rows": 1000,
                "libraries": {"scikit-learn": "1.8.0"},
            },
        },
    }


def plan(m: MLModel, tjs: list[dict[str, Any]]) -> Any:
    return plan_mlmodel(m, tjs, fingerprint="fp2", generation=1, config=OperatorConfig(), now=T0)


def test_the_approver_comes_from_the_policys_annotations_once() -> None:
    m = model()
    m.status = plan(m, [succeeded(m, 1, 0.9), succeeded(m, 2, 0.95)]).status
    approving = model(approved=2, annotations={APPROVED_BY: "system:serviceaccount:ml:alice", APPROVED_VERSION: "2"})
    approving.status = m.status
    first = plan(approving, [])
    v2 = next(v for v in first.status.versions if v.number == 2)
    assert (v2.approved_by, v2.approved_at) == ("system:serviceaccount:ml:alice", "2026-11-01T12:00:00Z")
    assert [e.reason for e in first.events].count("Approved") == 1
    approved = get_condition(first.status.conditions, "Approved")
    assert approved and approved.status == "True" and "alice" in approved.message
    approving.status = first.status
    again = plan(approving, [])
    assert "Approved" not in [e.reason for e in again.events]  # posted once, not once per pass


def test_annotations_for_another_version_record_nobody() -> None:
    m = model()
    m.status = plan(m, [succeeded(m, 1, 0.9), succeeded(m, 2, 0.95)]).status
    stale = model(approved=2, annotations={APPROVED_BY: "bob", APPROVED_VERSION: "1"})
    stale.status = m.status
    out = plan(stale, [])
    assert all(v.approved_by is None for v in out.status.versions)


@pytest.mark.parametrize(
    ("approved", "reason", "words"),
    [(7, "UnknownVersion", "serving.approvedVersion 7 does not exist (versions: 1, 2)"), (1, "NotPromotable", "0.5")],
)
def test_approving_a_version_that_cannot_serve_is_refused_with_a_reason(approved: int, reason: str, words: str) -> None:
    m = model()
    m.status = plan(m, [succeeded(m, 1, 0.5), succeeded(m, 2, 0.95)]).status
    asking = model(approved=approved)
    asking.status = m.status
    cond = get_condition(plan(asking, []).status.conditions, "Approved")
    assert cond and (cond.status, cond.reason) == ("False", reason) and words in cond.message


def record_of(m: MLModel, number: int, accuracy: float, retain: bool = False) -> dict[str, Any]:
    m.status = plan(m, [succeeded(m, n, accuracy) for n in range(1, number + 1)]).status
    version = next(v for v in m.status.versions if v.number == number)
    return desired_record(m, version, succeeded(m, number, accuracy), retain=retain)


def test_a_record_holds_the_lineage_and_is_owned_unless_retained() -> None:
    m = model(risk="minimal")
    body = record_of(m, 2, 0.93)
    assert (
        body["metadata"]["name"]
        == record_name("fraud-detector", 2, "0f1e2d3c-aaaa-bbbb")
        == "fraud-detector-v2-0f1e2d3c"
    )
    rec = parse(ModelVersion, body)  # the body satisfies the CRD's model
    assert rec.spec.dataset.digest == DIGEST and rec.spec.dataset.rows == 1000
    assert rec.spec.dataset.uri == m.spec.dataset.uri and rec.spec.metrics == {"accuracy": 0.93}
    assert rec.spec.libraries == {"scikit-learn": "1.8.0"} and rec.spec.reason == "drift"
    assert rec.spec.documentation.description == "Scores card payments for fraud."
    owner = body["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "0f1e2d3c-aaaa-bbbb" and owner["controller"] is False
    assert "ownerReferences" not in record_of(model(risk="minimal"), 1, 0.9, retain=True)["metadata"]


def cached(body: dict[str, Any], status: dict[str, Any] | None = None) -> CachedRecord:
    return parse(
        CachedRecord,
        {
            "metadata": body["metadata"],
            "spec": {k: body["spec"][k] for k in ("modelRef", "version")},
            "status": status or {},
        },
    )


def model_body(m: MLModel, serving: int | None, **meta: Any) -> dict[str, Any]:
    status = m.status.wire()
    status["servingVersion"] = {"number": serving} if serving else None
    return {"metadata": {**m.metadata, **meta}, "spec": m.spec.wire(), "status": status}


def test_a_records_status_follows_its_version_through_serving_and_retirement() -> None:
    m = model(risk="minimal")
    body = record_of(m, 1, 0.9)
    t = [T0 + datetime.timedelta(minutes=i) for i in range(4)]
    status, events = plan_record_status(cached(body), model_body(m, None), t[0], 1)
    assert status.state == "Trained" and status.serving == [] and not events
    status, _ = plan_record_status(cached(body, status.wire()), model_body(m, 1), t[1], 1)
    assert status.state == "Serving" and [s.start for s in status.serving] == ["2026-11-01T12:01:00Z"]
    again, _ = plan_record_status(cached(body, status.wire()), model_body(m, 1), t[2], 1)
    assert again == status  # nothing new: no write
    status, events = plan_record_status(cached(body, status.wire()), model_body(m, 2), t[3], 1)
    assert status.serving[-1].end == "2026-11-01T12:03:00Z" and status.serving[-1].replaced_by == 2
    assert status.state == "Retired" and status.retired_at == "2026-11-01T12:03:00Z"
    assert [e.reason for e in events] == ["Retired"]


def test_a_record_notes_its_models_deletion_and_a_new_model_of_that_name_is_not_its_own() -> None:
    m = model(risk="minimal")
    body = record_of(m, 1, 0.9, retain=True)
    serving, _ = plan_record_status(cached(body), model_body(m, 1), T0, 1)
    gone, events = plan_record_status(cached(body, serving.wire()), None, T0 + datetime.timedelta(hours=1), 1)
    assert gone.model_deleted_at == "2026-11-01T13:00:00Z" and gone.state == "Retired"
    assert gone.serving[-1].end == "2026-11-01T13:00:00Z" and "deleted" in events[0].message
    reborn = model_body(m, 1, uid="another-uid")
    other, _ = plan_record_status(cached(body, serving.wire()), reborn, T0 + datetime.timedelta(hours=1), 1)
    assert other.model_deleted_at is not None  # the new model's v1 is not this record's v1


def test_rejections_and_approvals_are_copied_from_the_models_status() -> None:
    m = model()
    body = record_of(m, 2, 0.9)
    status = model_body(m, None)
    for v in status["status"]["versions"]:
        if v["number"] == 2:
            v.update(approvedBy="alice", approvedAt="2026-11-01T11:30:00Z", promotable=False)
            v["rejectedReason"] = "rollout failed: pod x: the server exited with code 1"
    out, _ = plan_record_status(cached(body), status, T0, 1)
    assert (out.approved_by, out.approved_at) == ("alice", "2026-11-01T11:30:00Z")
    assert out.rejected_reason.startswith("rollout failed") and out.state == "Rejected"


def full_record(m: MLModel, number: int, status: dict[str, Any]) -> dict[str, Any]:
    body = record_of(m, number, 0.9 + number / 100)
    body["metadata"]["creationTimestamp"] = f"2026-11-01T1{number}:00:00Z"
    return {**body, "status": status}


def test_lineage_says_which_version_serves_and_until_when_the_others_did() -> None:
    m = model(risk="minimal")
    v1 = full_record(m, 1, {"state": "Retired", "serving": [{"start": "t1", "end": "t2", "replacedBy": 2}]})
    v2 = full_record(m, 2, {"state": "Serving", "serving": [{"start": "t2"}]})
    entries = lineage([v2, v1])
    assert [(e["version"], e["servingNow"], e["servedUntil"]) for e in entries] == [(1, False, "t2"), (2, True, None)]
    assert entries[0]["dataset"]["digest"] == DIGEST
    assert lineage([]) == []
    assert dataset_selector("AB" * 32) == ("spec.dataset.digest", DIGEST)
    assert dataset_selector(DIGEST) == ("spec.dataset.digest", DIGEST)
    assert dataset_selector("s3://data/fraud.csv") == ("spec.dataset.uri", "s3://data/fraud.csv")


def test_the_audit_trail_is_in_time_order_with_who_approved() -> None:
    m = model()
    v1 = full_record(
        m,
        1,
        {
            "approvedBy": "alice",
            "approvedAt": "2026-11-01T12:10:00Z",
            "serving": [{"start": "2026-11-01T12:11:00Z", "end": "2026-11-01T12:30:00Z", "replacedBy": 2}],
            "retiredAt": "2026-11-01T12:30:00Z",
        },
    )
    v2 = full_record(
        m,
        2,
        {
            "approvedBy": "bob",
            "approvedAt": "2026-11-01T12:29:00Z",
            "serving": [{"start": "2026-11-01T12:30:00Z"}],
        },
    )
    v1["spec"]["trainedAt"], v2["spec"]["trainedAt"] = "2026-11-01T12:00:00Z", "2026-11-01T12:20:00Z"
    trail = audit_trail([v2, v1])
    assert [(e["version"], e["action"]) for e in trail] == [
        (1, "trained"),
        (1, "approved"),
        (1, "served"),
        (2, "drift-retrained"),
        (2, "approved"),
        (1, "stopped"),
        (1, "retired"),
        (2, "served"),
    ]
    assert trail[4]["detail"] == "by bob" and "replaced by v2" in trail[5]["detail"]
    assert pick_record([v1, v2], None) is v2 and pick_record([v1, v2], 1) is v1 and pick_record([v1], 3) is None


def test_a_rollout_that_failed_is_a_rollback_in_the_trail_and_a_version_given_back_is_too() -> None:
    m = model()
    v2 = full_record(
        m,
        2,
        {
            "rejectedReason": "rollout failed: pod credit-x: the server exited with code 3",
            "rejectedAt": "2026-11-01T12:40:00Z",
        },
    )
    v3 = full_record(
        m, 3, {"serving": [{"start": "2026-11-01T12:50:00Z", "end": "2026-11-01T13:00:00Z", "replacedBy": 1}]}
    )
    trail = audit_trail([v2, v3])
    assert ("rolled-back", "rollout failed: pod credit-x: the server exited with code 3") in [
        (e["action"], e["detail"]) for e in trail
    ]
    assert next(e for e in trail if e["action"] == "stopped")["detail"] == "rolled back to v1"


def test_a_card_holds_the_versions_real_metrics_digest_and_approval() -> None:
    m = model()
    body = full_record(m, 2, {"approvedBy": "alice", "approvedAt": "2026-11-01T12:29:00Z", "serving": []})
    card = card_from_record(body)
    assert card["evaluation"]["metrics"] == {"accuracy": 0.92} and card["data"]["digest"] == DIGEST
    assert card["approval"] == {"required": True, "approvedBy": "alice", "approvedAt": "2026-11-01T12:29:00Z"}
    assert card["owner"]["contact"] == "risk@example.com" and card["riskClass"] == "high"
    text = render_markdown(card)
    assert "# Model card: fraud-detector v2" in text and DIGEST in text and "accuracy**: 0.92" in text
    assert "alice at 2026-11-01T12:29:00Z" in text and "never served" in text


def test_a_models_records_are_queued_only_when_what_they_follow_changes() -> None:
    m = model(risk="minimal")
    record_of(m, 2, 0.9)  # the model has trained two versions
    before = model_body(m, 1)
    records = [Key("ModelVersion", "ml", "fraud-detector-v1-0f1e2d3c")]

    def keys(old: dict[str, Any], new: dict[str, Any]) -> list[Key]:
        return queued_by(
            "MLModel",
            new,
            added_or_deleted=False,
            policies_of=lambda ns, name: [],
            job_owner=lambda ns, job: None,
            records_of=lambda ns, name, versions: [k for k in records if versions is None or 1 in versions],
            old=old,
        )

    touched = {**before, "status": {**before["status"], "phase": "Serving", "conditions": []}}
    assert records[0] not in keys(before, touched)
    assert records[0] in keys(before, model_body(m, 2))  # v1 stops serving
    assert changed_versions(before, model_body(m, 2)) == {1, 2}
    approved = model_body(m, 1)
    approved["status"]["versions"][0]["approvedBy"] = "alice"
    assert changed_versions(before, approved) == {1}
