"""The Helm chart and the kustomize install: lint, schema errors, one RBAC for both, and both applied to the dev
cluster with a server-side dry run and then for real."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.api.access import APPROVER, EDITOR
from modelfleet.api.rbac import CLUSTER_RULES, RULES
from modelfleet.devcluster.binaries import find_binaries
from tests.support import Kube, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelfleet"
ALL_FEATURES = [
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.podMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
]
# The pod must not start on the dev cluster's executor (it would be a second operator): nothing matches this.
NOWHERE = ["--set", "nodeSelector.modelfleet\\.io/test=nowhere"]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(find_binaries() / "helm"), *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {res.stderr}")
    return res


def template(*args: str, namespace: str = "modelfleet-system", release: str = "modelfleet") -> list[dict[str, Any]]:
    text = helm("template", release, str(CHART), "--namespace", namespace, *args).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("values", [[], ALL_FEATURES, ["--set", "watchNamespaces={team-a,team-b}", *ALL_FEATURES]])
def test_chart_lints_strictly_and_renders(values: list[str]) -> None:
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), *values).stdout
    docs = template(*values)
    deployment = by_kind(docs, "Deployment")[0]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"} and deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "watchNamespaces={Bad_Namespace}"], "/watchNamespaces/0': 'Bad_Namespace' does not match"),
        (["--set", "reconcile.workers=0"], "/reconcile/workers': minimum: got 0, want 1"),
        (["--set", "reconcile.stopSeconds=60"], "/reconcile/stopSeconds': maximum: got 60, want 25"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy': value must be one of"),
        (["--set", "replicas=2"], "additional properties 'replicas' not allowed"),
        (["--set", "prometheusUrl=prometheus:9090"], "/prometheusUrl'"),
        (["--set", "metrics.serviceMonitor.interval=soon"], "/metrics/serviceMonitor/interval'"),
        (["--set", "objectStore.bucket=Models_2026"], "/objectStore/bucket': 'Models_2026' does not match"),
        (["--set", "objectStore.endpoint=minio:9000"], "/objectStore/endpoint'"),
    ],
)
def test_bad_values_are_rejected_by_the_schema_naming_the_field(values: list[str], message: str) -> None:
    res = helm("template", "x", str(CHART), *values, check=False)
    assert res.returncode != 0
    assert "values don't meet the specifications of the schema" in res.stderr and message in res.stderr, res.stderr


def test_an_object_store_default_replaces_the_claim_and_gives_the_operator_its_secret() -> None:
    values = ["--set", "objectStore.bucket=ml-models", "--set", "objectStore.endpoint=http://minio.storage:9000"]
    values += ["--set", "objectStore.secretName=modelfleet-s3"]
    container = by_kind(template(*values), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELFLEET_ARTIFACTS_URI"] == "s3://ml-models/modelfleet"
    assert (
        env["MODELFLEET_S3_ENDPOINT"] == "http://minio.storage:9000" and env["MODELFLEET_S3_SECRET"] == "modelfleet-s3"
    )
    assert container["envFrom"] == [{"secretRef": {"name": "modelfleet-s3", "optional": True}}]
    plain = by_kind(template(), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in plain
    assert {e["name"]: e.get("value") for e in plain["env"]}["MODELFLEET_ARTIFACTS_URI"] == "pvc://modelfleet-artifacts"


def _rules(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["rules"])


def operator_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's ClusterRole (the others are the roles people are bound to: modelfleet-editor, -approver)."""
    (role,) = [d for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"] not in (EDITOR, APPROVER)]
    return role


def test_one_rbac_for_chart_and_kustomize_least_privilege() -> None:
    role = yaml.safe_load((ROOT / "manifests" / "rbac" / "role.yaml").read_text())
    chart_role = operator_role(template())
    assert _rules(chart_role) == _rules(role) == RULES + CLUSTER_RULES
    for rule in _rules(role):
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"] and "configmaps" not in rule["resources"]
    # Watching namespaces: the operator gets Roles in exactly those, and nothing cluster-scoped (the approval policies
    # and the roles for people stay cluster-wide; approvals.enabled=false leaves them out).
    docs = template("--set", "watchNamespaces={team-a,team-b}")
    assert [d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")] == [EDITOR, APPROVER]
    assert not by_kind(docs, "ClusterRoleBinding")
    assert not by_kind(template("--set", "approvals.enabled=false", "--set", "watchNamespaces={team-a}"), "ClusterRole")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(_rules(r) == RULES for r in roles)
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_kustomize_install_is_the_chart(kube: Kube) -> None:
    text = kube.run("kustomize", str(ROOT / "manifests" / "default")).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        {
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
        }
    )
    chart = template()
    assert by_kind(docs, "Deployment")[0]["spec"] == by_kind(chart, "Deployment")[0]["spec"]
    assert _rules(operator_role(docs)) == _rules(operator_role(chart))
    assert len(by_kind(docs, "CustomResourceDefinition")) == 4
    for kind in ("ValidatingAdmissionPolicy", "MutatingAdmissionPolicy"):  # one source for both installs
        assert [d["spec"] for d in by_kind(docs, kind)] == [d["spec"] for d in by_kind(chart, kind)]
    assert subprocess.run(["python", str(ROOT / "hack" / "render_default.py"), "--check"], check=False).returncode == 0


@pytest.fixture
def release_namespace(kube: Kube) -> Iterator[str]:
    name = f"modelfleet-pkg-{secrets.token_hex(3)}"
    kube.run("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


def _apply(kube: Kube, docs: list[dict[str, Any]], *flags: str) -> None:
    payload = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    kube.run("apply", "--server-side", "--field-manager=packaging-test", *flags, "-f", "-", input=payload)


def test_rendered_chart_applies_to_the_cluster(kube: Kube, crds: Path, release_namespace: str) -> None:
    release = release_namespace  # unique: cluster-scoped names carry it
    docs = [
        d
        for d in template(*NOWHERE, "--set", "networkPolicy.enabled=true", namespace=release_namespace, release=release)
        if d["kind"] not in ("ServiceMonitor", "PodMonitor", "PrometheusRule")  # no Prometheus Operator CRDs here
    ]
    try:
        _apply(kube, docs, "--dry-run=server")
        assert kube.get("deployment", f"{release}-operator", release_namespace) is None  # a dry run creates nothing
        _apply(kube, docs)
        assert kube.get("deployment", f"{release}-operator", release_namespace)
        assert kube.get("clusterrole", f"{release}-operator")
        assert kube.get("networkpolicy", f"{release}-operator", release_namespace)
    finally:
        kube.run("delete", "clusterrole,clusterrolebinding", f"{release}-operator", "--ignore-not-found", check=False)


def test_the_gateway_is_one_per_listed_namespace_and_may_do_only_what_it_needs(
    kube: Kube, release_namespace: str
) -> None:
    """gateway.namespaces: a ServiceAccount, Role, RoleBinding, Deployment and Service in each listed namespace and
    nowhere else; applied for real (the Deployment by server-side dry run: its pod would run on the executor), its
    account may list and watch pods and MLModels and patch MLModels (the scale-up annotation), and nothing more."""
    assert not [d for d in template() if "gateway" in d["metadata"]["name"]]  # off by default
    docs = [
        d
        for d in template("--set", f"gateway.namespaces={{{release_namespace}}}")
        if "gateway" in d["metadata"]["name"]
    ]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
    assert {d["metadata"]["namespace"] for d in docs} == {release_namespace}
    (deployment,) = by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "modelfleet.gateway"]
    assert f"--namespace={release_namespace}" in container["args"]
    _apply(kube, [d for d in docs if d["kind"] != "Deployment"])
    _apply(kube, by_kind(docs, "Deployment"), "--dry-run=server")
    account = f"system:serviceaccount:{release_namespace}:modelfleet-gateway"

    def can(verb: str, resource: str) -> bool:
        res = kube.run("auth", "can-i", verb, resource, "-n", release_namespace, f"--as={account}", check=False)
        return res.stdout.strip() == "yes"

    # The API server's authorizer learns new Roles from a watch: allowed within a few seconds, not at once.
    allowed = [(v, "pods") for v in ("list", "watch", "get")] + [
        (v, "mlmodels.modelfleet.io") for v in ("list", "watch", "patch")
    ]
    wait_for(lambda: all(can(v, r) for v, r in allowed), 30, "the gateway's Role to take effect")
    assert not any(can(v, r) for v, r in [("delete", "pods"), ("get", "secrets"), ("update", "deployments.apps")])
    assert not can("delete", "mlmodels.modelfleet.io")


def test_kustomize_install_applies_to_the_cluster(kube: Kube, crds: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(ROOT / "manifests" / "default", overlay)],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "modelfleet-operator"},
                        "patch": json.dumps(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/template/spec/nodeSelector",
                                    "value": {"modelfleet.io/test": "nowhere"},
                                }
                            ]
                        ),
                    }
                ],
            }
        )
    )
    text = kube.run("kustomize", "--load-restrictor=LoadRestrictionsNone", str(overlay)).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    try:
        # A server-side dry run of namespaced objects needs their namespace to exist: the Namespace goes first.
        _apply(kube, by_kind(docs, "Namespace"))
        _apply(kube, docs, "--dry-run=server")
        assert kube.get("deployment", "modelfleet-operator", "modelfleet-system") is None
        _apply(kube, docs)
        assert kube.get("deployment", "modelfleet-operator", "modelfleet-system")
        assert kube.get("serviceaccount", "modelfleet-operator", "modelfleet-system")
    finally:
        kube.run("delete", "namespace", "modelfleet-system", "--wait=false", check=False)
        kube.run("delete", "clusterrole,clusterrolebinding", "modelfleet-operator", "--ignore-not-found", check=False)


def test_the_api_priority_objects_are_accepted_by_the_api_server_and_match_the_operator(kube: Kube) -> None:
    docs = template("--set", "apiPriority.enabled=true", "--set", "apiPriority.queues=4")
    level, schema = by_kind(docs, "PriorityLevelConfiguration")[0], by_kind(docs, "FlowSchema")[0]
    assert not by_kind(template(), "FlowSchema")  # off by default: creating them needs cluster-admin
    assert schema["spec"]["priorityLevelConfiguration"]["name"] == level["metadata"]["name"]
    queuing = level["spec"]["limited"]["limitResponse"]["queuing"]
    assert queuing["handSize"] <= queuing["queues"] == 4
    account = by_kind(docs, "ServiceAccount")[0]["metadata"]
    subject = schema["spec"]["rules"][0]["subjects"][0]["serviceAccount"]
    assert (subject["name"], subject["namespace"]) == (account["name"], "modelfleet-system")
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [level, schema]})
    res = kube.run("apply", "--dry-run=server", "-f", "-", input=text, check=False)
    assert res.returncode == 0, res.stderr
