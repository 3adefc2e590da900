"""The health checks under Argo CD's own engine (util/lua, util/settings and gitops-engine v3.6.1, built from the
module by hack/argocd-health.sh), configured from our argocd-cm patch exactly as Argo CD reads it: every captured
case gets the health its health_test.yaml records, with Lua's standard libraries closed as in production."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.argocd import ARGOCD_CM, engine_health, health
from tests.unit.test_argocd_health import KINDS, cases


def test_every_captured_case_gets_its_recorded_health_from_argo_cds_engine() -> None:
    all_cases = [c for kind in KINDS for c in cases(kind)]
    objects = [yaml.safe_load(path.read_text()) for path, _ in all_cases]
    got = engine_health(objects)
    mismatches = [
        f"{path.relative_to(path.parents[3])}: engine {answer}, recorded {expected}"
        for (path, expected), answer in zip(all_cases, got, strict=True)
        if answer != {"status": expected["status"], "message": expected.get("message", "")}
    ]
    assert not mismatches, "\n".join(mismatches)
    assert len(got) >= 20  # every kind's cases, not an empty run
    # The fast replay in the unit tests (lupa) agrees with the engine on every case.
    assert [health(o) for o in objects] == [{"status": g["status"], "message": g["message"]} for g in got]


def test_the_engine_runs_our_scripts_with_the_standard_libraries_closed(tmp_path: Path) -> None:
    """A script that calls string.format works only with resource.customizations.useOpenLibs set: proof that the
    engine runs with production's closed libraries, which ours need no more than the base and table libraries."""
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    script = 'return {status = "Healthy", message = string.format("%d", 1)}'
    cm["data"] = {"resource.customizations.health.modelfleet.io_MLModel": script}
    closed = tmp_path / "closed.yaml"
    closed.write_text(yaml.safe_dump(cm))
    obj = {"apiVersion": "modelfleet.io/v1alpha1", "kind": "MLModel", "metadata": {"name": "m", "namespace": "ml"}}
    (answer,) = engine_health([obj], closed)
    assert "string" in answer.get("error", ""), answer
    cm["data"]["resource.customizations.useOpenLibs.modelfleet.io_MLModel"] = "true"
    opened = tmp_path / "opened.yaml"
    opened.write_text(yaml.safe_dump(cm))
    assert engine_health([obj], opened) == [{"status": "Healthy", "message": "1"}]
