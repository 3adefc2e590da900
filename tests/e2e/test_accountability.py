"""Accountability end to end: v1 and v2 of a high-risk model, each approved by an approver ServiceAccount through the
chart's admission policies; the ModelVersion records name the approver; `modelfleet lineage`, `audit` and `card`
answer from the records, and the records survive deleting the TrainingJobs and an operator restart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.datasets import write
from tests.e2e.conftest import claim, dump, events
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.integration.test_approval import approve, people  # noqa: F401  (people: the fixture)
from tests.support import Kube, OperatorProcess, condition, has_condition, wait_for


def cli(kubeconfig: Path, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "modelfleet", *args, "-o", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def records(kube: Kube, namespace: str) -> dict[int, dict[str, Any]]:
    found = kube.items("modelversions", namespace, selector="modelfleet.io/model=credit")
    return {r["spec"]["version"]: r for r in found}


def test_approvals_lineage_audit_and_cards_from_durable_records(
    kube: Kube,
    kubeconfig: Path,
    namespace: str,
    people: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    data = claim(kube, namespace, "datasets")
    store = claim(kube, namespace, "model-store")
    write("breast_cancer", data / "breast_cancer.csv")
    manifest = model_manifest("credit")
    manifest["spec"]["riskClass"] = "high"
    manifest["spec"]["description"] = "Flags tumour samples for a second reading."
    manifest["spec"]["intendedUse"] = "Decision support for pathologists; never a diagnosis on its own."
    # Records are kept after the model is deleted (the chart's retainVersionRecords).
    operator = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", env={"MODELFLEET_RETAIN_VERSION_RECORDS": "true"}
    ).start()
    try:
        kube.apply(manifest, namespace)
        for number in (1, 2):
            if number == 2:
                manifest["spec"]["dataset"]["version"] = "2"  # the same file: both versions share its digest
                kube.apply(manifest, namespace)
            wait_for(
                lambda n=number: (
                    (m := kube.get("mlm", "credit", namespace))
                    and ((m.get("status") or {}).get("latestVersion") or {}).get("number") == n
                    and (condition(m, "Approved") or {}).get("reason") == "AwaitingApproval"
                ),
                TRAIN_TIMEOUT,
                f"version {number} to await approval",
            )
            done = approve(kube, people["approver"], "credit", number)
            assert done.returncode == 0, done.stderr
            wait_for(
                lambda n=number: (
                    (m := kube.get("mlm", "credit", namespace))
                    and has_condition(m, "Ready")
                    and ((m.get("status") or {}).get("servingVersion") or {}).get("number") == n
                ),
                TRAIN_TIMEOUT,
                f"version {number} to serve",
            )
        approver = f"system:serviceaccount:{namespace}:approver"
        model = kube.get("mlm", "credit", namespace)
        assert [v.get("approvedBy") for v in model["status"]["versions"]] == [approver, approver], dump(model)
        assert any(e == f"Approved: version 2 approved by {approver}" for e in events(kube, namespace, "credit"))

        got = wait_for(
            lambda: (r := records(kube, namespace)) and r.get(1, {}).get("status", {}).get("state") == "Retired"
            and r.get(2, {}).get("status", {}).get("state") == "Serving" and r,
            30,
            "the records to show v1 retired and v2 serving",
        )  # fmt: skip
        v1, v2 = got[1], got[2]
        assert v2["status"]["approvedBy"] == approver and v2["spec"]["reason"] == "dataset"
        assert v1["status"]["serving"][0]["replacedBy"] == 2 and v1["status"]["serving"][0]["end"]
        tj2 = kube.get("tj", "credit-v2", namespace)
        result = tj2["status"]["result"]
        assert v2["spec"]["dataset"]["digest"] == result["datasetDigest"] == v1["spec"]["dataset"]["digest"]
        assert (
            v2["spec"]["metrics"] == result["metrics"] and v2["spec"]["artifact"]["digest"] == result["artifactDigest"]
        )

        # The card: the real metrics and dataset digest, from the record and in the artifact.
        card = cli(kubeconfig, "card", "credit", "-n", namespace, "--version", "2")
        assert card["evaluation"]["metrics"] == result["metrics"] and card["data"]["digest"] == result["datasetDigest"]
        assert card["approval"]["approvedBy"] == approver and card["intendedUse"].startswith("Decision support")
        in_artifact = json.loads((store / "models" / "credit" / "v2" / "model_card.json").read_text())
        assert in_artifact["evaluation"]["metrics"] == result["metrics"]
        assert in_artifact["data"]["digest"] == result["datasetDigest"]
        assert (store / "models" / "credit" / "v2" / "MODEL_CARD.md").read_text().startswith("# Model card: credit")

        def answers() -> tuple[Any, Any]:
            # As an editor of the namespace: reading records needs no more than the editor role.
            lineage = cli(people["editor"], "lineage", "--dataset", result["datasetDigest"], "-n", namespace)
            audit = cli(people["editor"], "audit", "credit", "-n", namespace)
            return lineage, audit

        lineage, audit = answers()
        everywhere = cli(kubeconfig, "lineage", "--dataset", result["datasetDigest"])  # the admin: all namespaces
        mine = [e for e in everywhere if e["namespace"] == namespace]
        assert mine == lineage
        assert [(e["version"], e["servingNow"]) for e in mine] == [(1, False), (2, True)], lineage
        assert mine[0]["servedUntil"] == v1["status"]["serving"][0]["end"]
        steps = [(e["version"], e["action"]) for e in audit]
        for expected in [(1, "trained"), (1, "approved"), (1, "served"), (2, "trained"), (2, "approved")]:
            assert expected in steps, audit
        assert steps.index((1, "stopped")) < steps.index((2, "served")), audit
        assert next(e for e in audit if e["action"] == "approved" and e["version"] == 2)["detail"] == f"by {approver}"
        assert cli(kubeconfig, "lineage", "--dataset", "sha256:" + "0" * 64) == []  # unknown dataset: empty

        # The records outlive the TrainingJobs and a restart of the operator.
        kube.run("delete", "trainingjobs", "--all", "-n", namespace)
        operator.stop()
        operator.start()
        wait_for(
            lambda: re.search(r'modelfleet_reconcile_total\{[^}]*"MLModel"', operator.metrics() or ""),
            60,
            "the restarted operator's first passes",
        )
        assert answers() == (lineage, audit)
        model = kube.get("mlm", "credit", namespace)
        assert has_condition(model, "Ready") and model["status"]["servingVersion"]["number"] == 2
        assert kube.items("trainingjobs", namespace) == []  # nothing retrained

        # Deleted, the model leaves its records behind (retained), marked with when it went.
        kube.run("delete", "mlm", "credit", "-n", namespace, "--wait=true", "--timeout=60s")
        kept = wait_for(
            lambda: (
                (r := records(kube, namespace)) and all(v["status"].get("modelDeletedAt") for v in r.values()) and r
            ),
            30,
            "the records to note the model's deletion",
        )
        assert kept[2]["status"]["serving"][-1]["end"] and kept[2]["status"]["state"] == "Retired"
        after = [(e["version"], e["action"]) for e in cli(people["editor"], "audit", "credit", "-n", namespace)]
        assert after.index((1, "deleted")) > after.index((2, "served")) < after.index((2, "deleted")), after
    finally:
        operator.stop()
