"""Approving is a permission of its own, on the real API server with the chart's admission policies: an editor
(ClusterRole modelfleet-editor) is refused naming the policy and the permission, an approver
(modelfleet-approver) approves, and the API server records who did in the request itself. Records cannot be
edited."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelfleet.api.access import APPROVED_BY, APPROVED_VERSION, APPROVER, EDITOR, POLICY
from tests.samples import sample
from tests.support import Kube, service_account_kubeconfig, wait_for


def as_user(kube: Kube, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kube.kubectl_bin), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, check=False
    )


def approve(kube: Kube, kubeconfig: Path, name: str, version: int, *extra: str) -> subprocess.CompletedProcess[str]:
    patch = json.dumps({"spec": {"serving": {"approvedVersion": version}}})
    return as_user(kube, kubeconfig, "patch", "mlmodel", name, "--type=merge", "-p", patch, *extra)


def bind(kube: Kube, namespace: str, account: str, role: str) -> None:
    kube.run(
        "create", "rolebinding", f"{account}-{role}", f"--clusterrole={role}",
        f"--serviceaccount={namespace}:{account}", "-n", namespace,
    )  # fmt: skip


@pytest.fixture
def people(kube: Kube, namespace: str, approval_policies: list[dict[str, Any]], tmp_path: Path) -> dict[str, Path]:
    configs = {}
    for account in ("editor", "approver"):
        kube.run("create", "serviceaccount", account, "-n", namespace)
        bind(kube, namespace, account, EDITOR)
        configs[account] = service_account_kubeconfig(kube, namespace, account, tmp_path / f"{account}.kubeconfig")
    bind(kube, namespace, "approver", APPROVER)
    return configs


def high_risk_model(kube: Kube, namespace: str) -> str:
    doc = sample("MLModel", "credit-scoring")
    doc["spec"]["serving"].pop("approvedVersion", None)
    kube.apply(doc, namespace)
    return str(doc["metadata"]["name"])


def test_only_an_approver_may_approve_and_the_request_records_who(
    kube: Kube, namespace: str, people: dict[str, Path]
) -> None:
    name = high_risk_model(kube, namespace)
    # The policy takes effect once the API server's policy informer has it: probe with a dry run until it refuses.
    refused = wait_for(
        lambda: (r := approve(kube, people["editor"], name, 1, "--dry-run=server")).returncode != 0 and r,
        30,
        "the approval policy to refuse an editor",
    )
    for message in (refused.stderr, approve(kube, people["editor"], name, 1).stderr):
        assert POLICY in message and "forbidden" in message.lower(), message
        assert '"update mlmodels/approval"' in message and f"system:serviceaccount:{namespace}:editor" in message

    # An editor still edits everything else.
    edit = as_user(
        kube,
        people["editor"],
        "patch",
        "mlmodel",
        name,
        "--type=merge",
        "-p",
        '{"spec":{"serving":{"idleAfter":"1h"}}}',
    )
    assert edit.returncode == 0, edit.stderr
    # ... but cannot write the approval record by hand, nor create a model already approved.
    forged = as_user(kube, people["editor"], "annotate", "mlmodel", name, f"{APPROVED_BY}=someone-else")
    assert forged.returncode != 0 and "cannot be set by hand" in forged.stderr, forged.stderr
    doc = sample("MLModel", "credit-scoring")
    doc["metadata"]["name"] = "pre-approved"
    doc["spec"]["serving"]["approvedVersion"] = 1
    created = subprocess.run(
        [str(kube.kubectl_bin), f"--kubeconfig={people['editor']}", "create", "-n", namespace, "-f", "-"],
        input=json.dumps(doc), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode != 0 and POLICY in created.stderr, created.stderr

    done = approve(kube, people["approver"], name, 1)
    assert done.returncode == 0, done.stderr
    annotations = kube.get("mlmodel", name, namespace)["metadata"]["annotations"]
    assert annotations[APPROVED_BY] == f"system:serviceaccount:{namespace}:approver"
    assert annotations[APPROVED_VERSION] == "1"
    # The approver cannot put another name on the record either.
    lie = as_user(kube, people["approver"], "annotate", "--overwrite", "mlmodel", name, f"{APPROVED_BY}=alice")
    assert lie.returncode != 0 and "cannot be set by hand" in lie.stderr
    # Revoking is approving too.
    revoke = as_user(
        kube,
        people["editor"],
        "patch",
        "mlmodel",
        name,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/spec/serving/approvedVersion"}]',
    )
    assert revoke.returncode != 0 and POLICY in revoke.stderr


def test_a_version_record_cannot_be_edited(kube: Kube, namespace: str, crds: Path) -> None:
    record = {
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "fraud-v1-0f1e2d3c"},
        "spec": {
            "modelRef": {"name": "fraud", "uid": "0f1e2d3c"},
            "version": 1,
            "trainingJob": "fraud-v1",
            "framework": "sklearn",
            "task": "classification",
            "dataset": {"uri": "file:///data/fraud.csv", "digest": "sha256:" + "ab" * 32},
            "artifact": {"uri": "pvc://store/fraud/v1", "digest": "sha256:" + "cd" * 32},
            "metrics": {"accuracy": 0.9},
        },
    }
    kube.apply(record, namespace)
    edit = kube.run(
        "patch", "modelversion", "fraud-v1-0f1e2d3c", "-n", namespace, "--type=merge",
        "-p", '{"spec":{"metrics":{"accuracy":0.99}}}', check=False,
    )  # fmt: skip
    assert edit.returncode != 0 and "immutable" in edit.stderr, edit.stderr
    # Found by dataset digest on the server (selectableFields).
    found = kube.run(
        "get", "modelversions", "-n", namespace, "-o", "name",
        f"--field-selector=spec.dataset.digest=sha256:{'ab' * 32}",
    ).stdout.split()  # fmt: skip
    assert found == ["modelversion.modelfleet.io/fraud-v1-0f1e2d3c"]
    none = kube.run("get", "modelversions", "-n", namespace, "-o", "name", "--field-selector=spec.version=2")
    assert none.stdout.strip() == ""
