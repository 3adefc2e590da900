"""The ModelFleet CRDs installed once per session (for integration and end-to-end tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import Kube

CRDS = Path(__file__).resolve().parents[1] / "crds"


@pytest.fixture(scope="session")
def crds(kube: Kube) -> Path:
    kube.run("apply", "--server-side", "--field-manager=modelfleet-tests", "-f", str(CRDS))
    kube.run(
        "wait",
        "--for=condition=Established",
        "crd/mlmodels.modelfleet.io",
        "crd/trainingjobs.modelfleet.io",
        "crd/driftpolicies.modelfleet.io",
        "crd/modelversions.modelfleet.io",
        "--timeout=60s",
    )
    return CRDS


@pytest.fixture(scope="session")
def approval_policies(kube: Kube, crds: Path) -> list[dict[str, Any]]:
    """The chart's approval admission policies and user ClusterRoles, installed once per session (cluster-scoped;
    they change nothing for the cluster admin the other tests act as, who may approve)."""
    from modelfleet.api.access import APPROVER, EDITOR
    from tests.integration.test_packaging import template

    docs = [
        d
        for d in template()
        if d["kind"] in APPROVAL_KINDS and (d["kind"] != "ClusterRole" or d["metadata"]["name"] in (EDITOR, APPROVER))
    ]
    kube.run("apply", "--server-side", "--field-manager=modelfleet-tests", "-f", "-", input=yaml.safe_dump_all(docs))
    return docs


APPROVAL_KINDS = (
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ClusterRole",
)
