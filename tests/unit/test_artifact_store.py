"""The default artifact store: which claim is created, when, with what, and what a refusal becomes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from modelfleet.config import ConfigError, OperatorConfig
from modelfleet.reconcilers.artifact_store import ROLE, ROLE_LABEL, default_claim_of, ensure_default_claim
from modelfleet.reconcilers.mlmodel import plan_mlmodel
from modelfleet.reconcilers.trainingjob import TrainingObservation
from tests.unit.test_training_logic import CFG, T0, cond, mlmodel, plan, tj


class Claims:
    """The two calls the store makes, against a dict of claims; `refuse` answers create with an API error."""

    def __init__(self, existing: tuple[str, ...] = (), refuse: ApiException | None = None) -> None:
        self.claims = {name: {"metadata": {"name": name}} for name in existing}
        self.refuse = refuse
        self.created: list[dict[str, Any]] = []

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.claims.get(name)

    def create_claim(self, body: dict[str, Any]) -> bool:
        if self.refuse is not None:
            raise self.refuse
        self.created.append(body)
        self.claims[body["metadata"]["name"]] = body
        return True


def refusal(status: int, message: str) -> ApiException:
    e = ApiException(status=status, reason="Forbidden")
    e.body = json.dumps({"kind": "Status", "message": message})
    return e


def test_only_the_default_locations_claim_is_ever_created() -> None:
    assert default_claim_of("pvc://modelfleet-artifacts/ml/fraud/v1", CFG) == "modelfleet-artifacts"
    assert default_claim_of("pvc://model-store/fraud/v1", CFG) is None  # named by the user: theirs
    assert default_claim_of("s3://bucket/fraud/v1", CFG) is None
    assert default_claim_of("pvc://modelfleet-artifacts/x", OperatorConfig(artifacts_claim_create=False)) is None
    assert default_claim_of("pvc://x/y", OperatorConfig(default_artifacts_uri="s3://bucket")) is None


def test_a_missing_default_claim_is_created_once_labelled_and_unowned() -> None:
    kube = Claims()
    config = OperatorConfig(artifacts_claim_size="50Gi", artifacts_claim_storage_class="fast")
    first = ensure_default_claim(kube, "ml", "pvc://modelfleet-artifacts/ml/fraud/v1", config)
    assert first.problem is None and [e.reason for e in first.events] == ["ArtifactStoreCreated"]
    assert "50Gi" in first.events[0].message and "never deletes" in first.events[0].message
    (body,) = kube.created
    assert body["metadata"]["namespace"] == "ml" and body["metadata"]["labels"][ROLE_LABEL] == ROLE
    assert "ownerReferences" not in body["metadata"]
    assert body["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "50Gi"}},
        "storageClassName": "fast",
    }
    again = ensure_default_claim(kube, "ml", "pvc://modelfleet-artifacts/ml/fraud/v2", config)
    assert again.events == [] and again.problem is None and len(kube.created) == 1
    plain = Claims()
    ensure_default_claim(plain, "ml", "pvc://modelfleet-artifacts/ml/fraud/v1", CFG)
    assert "storageClassName" not in plain.created[0]["spec"]  # empty: the cluster's default StorageClass


def test_a_refused_claim_is_a_problem_naming_the_reason_and_the_ways_out() -> None:
    kube = Claims(refuse=refusal(403, 'persistentvolumeclaims "modelfleet-artifacts" is forbidden: exceeded quota'))
    check = ensure_default_claim(kube, "ml", "pvc://modelfleet-artifacts/ml/fraud/v1", CFG)
    assert check.events == [] and check.problem
    assert "exceeded quota" in check.problem and "spec.artifacts.uri" in check.problem
    busy = Claims(refuse=refusal(503, "etcd is slow"))
    with pytest.raises(ApiException):  # transient: retried at the Kopf boundary, not reported as the user's problem
        ensure_default_claim(busy, "ml", "pvc://modelfleet-artifacts/ml/fraud/v1", CFG)


def test_a_run_waiting_for_its_store_creates_no_job_and_says_so_once() -> None:
    problem = "the default artifact claim modelfleet-artifacts is missing and cannot be created (403: quota)"
    first = plan(TrainingObservation(job=None, artifact_store_problem=problem))
    assert not first.create_job and first.status.job_name is None and first.status.phase == "Pending"
    assert cond(first.status, "Queued") == ("True", "ArtifactStoreUnavailable")
    assert [e.reason for e in first.events] == ["ArtifactStoreUnavailable"]
    waiting = tj()
    waiting.status = first.status
    assert plan(TrainingObservation(job=None, artifact_store_problem=problem), waiting).events == []
    fixed = plan(TrainingObservation(job=None), waiting)
    assert fixed.create_job and [e.reason for e in fixed.events] == ["TrainingStarted"]


def test_the_model_says_its_first_run_waits_for_the_store() -> None:
    m = mlmodel()
    m.status = plan_mlmodel(m, [], fingerprint="f" * 64, generation=1, config=CFG, now=T0).status
    run = {
        "metadata": {"name": "fraud-detector-v1", "labels": {"modelfleet.io/version": "1"}},
        "spec": {"reason": "initial"},
        "status": {
            "conditions": [
                {"type": "Queued", "status": "True", "reason": "ArtifactStoreUnavailable", "message": "quota"}
            ]
        },
    }
    status = plan_mlmodel(m, [run], fingerprint="f" * 64, generation=1, config=CFG, now=T0).status
    assert cond(status, "Trained") == ("False", "ArtifactStoreUnavailable")
    assert cond(status, "Ready")[0] == "False"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MODELFLEET_ARTIFACTS_CLAIM_SIZE", "ten gigs", "is not a storage size"),
        ("MODELFLEET_ARTIFACTS_CLAIM_ACCESS_MODE", "ReadOnlyMany", "must be one of"),
        ("MODELFLEET_ARTIFACTS_CLAIM_CREATE", "yes", "must be true or false"),
    ],
)
def test_bad_store_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}=.*{named}"):
        OperatorConfig.from_env()
