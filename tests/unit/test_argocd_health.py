"""The Argo CD health checks replayed on the test cases captured from the real operator (Argo CD's own layout:
resource_customizations/<group>/<Kind>/{health.lua, health_test.yaml, testdata/}), and the argocd-cm patch in sync."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.argocd import CUSTOMIZATIONS, health, script

KINDS = ("MLModel", "TrainingJob", "DriftPolicy")
# Every health an object of the kind can have, each seen at least once in the captured cases.
EXPECTED_STATUSES = {
    "MLModel": {"Healthy", "Progressing", "Degraded", "Suspended"},
    "TrainingJob": {"Healthy", "Progressing", "Degraded"},
    "DriftPolicy": {"Healthy", "Progressing", "Degraded"},
}


def cases(kind: str) -> list[tuple[Path, dict[str, str]]]:
    directory = CUSTOMIZATIONS / "modelfleet.io" / kind
    tests = yaml.safe_load((directory / "health_test.yaml").read_text())["tests"]
    return [(directory / t["inputPath"], t["healthStatus"]) for t in tests]


@pytest.mark.parametrize(
    ("path", "expected"), [c for k in KINDS for c in cases(k)], ids=lambda v: v.stem if isinstance(v, Path) else ""
)
def test_health_of_captured_objects(path: Path, expected: dict[str, str]) -> None:
    assert health(yaml.safe_load(path.read_text())) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_health_status_is_covered(kind: str) -> None:
    assert {e["status"] for _, e in cases(kind)} >= EXPECTED_STATUSES[kind]


def test_a_stale_observed_generation_is_progressing() -> None:
    for kind in ("MLModel", "DriftPolicy"):
        path = next(p for p, e in cases(kind) if e["status"] in ("Healthy", "Degraded"))
        obj = yaml.safe_load(path.read_text())
        obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
        assert health(obj)["status"] == "Progressing"


def test_argocd_cm_patch_embeds_exactly_the_scripts() -> None:
    cm = yaml.safe_load((CUSTOMIZATIONS.parent / "argocd-cm.yaml").read_text())
    for kind in KINDS:
        assert cm["data"][f"resource.customizations.health.modelfleet.io_{kind}"] == script(kind)
