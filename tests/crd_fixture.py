"""The ModelFleet CRDs installed once per session (for integration and end-to-end tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
        "--timeout=60s",
    )
    return CRDS
