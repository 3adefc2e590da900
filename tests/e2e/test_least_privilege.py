"""Least privilege, proven: the operator runs as its ServiceAccount with exactly the chart's RBAC (a token for that
account, not the admin certificate) through a full train -> serve cycle on the default artifact store (which it
creates), and what the account may do is compared with a committed golden file (`kubectl auth can-i --list`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.datasets import write
from tests.e2e.conftest import claim
from tests.e2e.test_serving import infer, serving_pod_ip
from tests.e2e.test_training import TRAIN_TIMEOUT, model_manifest
from tests.integration.test_packaging import template
from tests.runtime.test_server import rows, v2_inputs
from tests.support import Kube, OperatorProcess, has_condition, service_account_kubeconfig, wait_for

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "operator-can-i.txt"


def can_i_list(kube: Kube, kubeconfig: Path, namespace: str) -> str:
    out = subprocess.run(
        [str(kube.kubectl_bin), f"--kubeconfig={kubeconfig}", "auth", "can-i", "--list", "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(" ".join(line.split()) for line in out.strip().splitlines()) + "\n"


def test_operator_trains_and_serves_with_only_the_charts_rbac(
    kube: Kube, crds: Path, namespace: str, tmp_path: Path
) -> None:
    account = f"{namespace}-operator"  # the chart's <release>-operator, the release named after the namespace
    docs = [
        d
        for d in template("--set", f"watchNamespaces={{{namespace}}}", namespace=namespace, release=namespace)
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding"}
    kube.apply(docs)
    kubeconfig = service_account_kubeconfig(kube, namespace, account, tmp_path / "operator.kubeconfig")

    rights = can_i_list(kube, kubeconfig, namespace)
    if os.environ.get("MODELFLEET_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(rights)
    assert rights == GOLDEN.read_text(), f"RBAC changed; if on purpose, MODELFLEET_UPDATE_GOLDEN=1:\n{rights}"
    for forbidden in (("get", "secrets"), ("list", "configmaps"), ("create", "pods"), ("delete", "mlmodels")):
        res = kube.run("--kubeconfig", str(kubeconfig), "auth", "can-i", *forbidden, "-n", namespace, check=False)
        assert res.stdout.strip() == "no", forbidden
    elsewhere = kube.run("--kubeconfig", str(kubeconfig), "auth", "can-i", "list", "pods", "-n", "default", check=False)
    assert elsewhere.stdout.strip() == "no"

    data = claim(kube, namespace, "datasets")
    write("breast_cancer", data / "breast_cancer.csv")
    log = tmp_path / "operator.log"
    op = OperatorProcess(kubeconfig, log, "--namespace", namespace).start()
    try:
        manifest = model_manifest("tumour")
        del manifest["spec"]["artifacts"]  # the default store: the chart's Role must let the operator create it
        kube.apply(manifest, namespace)
        model = wait_for(
            lambda: (m := kube.get("mlm", "tumour", namespace)) and has_condition(m, "Ready") and m,
            TRAIN_TIMEOUT,
            "the model to be trained and served by the least-privileged operator",
        )
        assert model["status"]["servingVersion"]["number"] == 1
        assert model["status"]["servingVersion"]["artifactUri"].startswith("pvc://modelfleet-artifacts/")
        assert kube.get("pvc", "modelfleet-artifacts", namespace)
        out = infer(
            serving_pod_ip(kube, namespace, "tumour", 1),
            "tumour",
            v2_inputs(rows("breast_cancer", data / "breast_cancer.csv", 3)),
        )
        assert len(out["outputs"][0]["data"]) == 3
    finally:
        op.stop()
    # No refusal at all: Kopf's scanning of namespaces and CustomResourceDefinitions is off (the operator watches
    # the namespaces it is given and checks its CRDs at start), so nothing asks beyond the Roles.
    text = log.read_text()
    refused = [line for line in text.splitlines() if "Forbidden" in line or " 403" in line]
    assert not refused, refused
