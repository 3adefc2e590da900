"""Who may approve, and the record of who did: admission policies and the two ClusterRoles people are bound to.

Approving a version of a high-risk model (setting `spec.serving.approvedVersion`) is a permission of its own: `update`
on `mlmodels/approval` in modelfleet.io. That subresource is never served; it exists only as a name RBAC can grant
and the API server's authorizer can check, the way Kubernetes itself checks `approve` on `signers` for CSRs.

- `modelfleet-approval` (ValidatingAdmissionPolicy) refuses a create or update that sets or changes approvedVersion
  unless the requesting user has that permission, with a message naming it; and it refuses any hand edit of the two
  approval annotations below.
- `modelfleet-approval-record` (MutatingAdmissionPolicy, GA in Kubernetes 1.36) writes, in the same request, who set
  approvedVersion (`request.userInfo.username`, as the API server authenticated them) and which version, into the
  annotations `modelfleet.io/approved-by` and `modelfleet.io/approved-version`. The operator copies them into the
  version's status record and its ModelVersion. A field a user types could name anyone; the request's user cannot be
  forged, and the user has nothing extra to type. CEL admission has no clock, so the time is the operator's: when it
  first sees the annotations (within a second or two of the request; the audit log holds the exact instant).

`python -m modelfleet.api.access` (run by `make manifests`) writes `manifests/approval/` (kustomize) and
`charts/modelfleet/files/approval.yaml` (the chart renders it unless `approvals.enabled=false`); `--check` (run by
`make verify`) fails when either copy differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelfleet.api.generated import generator_main
from modelfleet.api.v1alpha1 import GROUP, VERSION

APPROVED_BY = f"{GROUP}/approved-by"
APPROVED_VERSION = f"{GROUP}/approved-version"
APPROVAL_PERMISSION = "update mlmodels/approval"
POLICY = "modelfleet-approval"
RECORD_POLICY = "modelfleet-approval-record"
EDITOR, APPROVER = "modelfleet-editor", "modelfleet-approver"
LABELS = {"app.kubernetes.io/name": "modelfleet", "app.kubernetes.io/part-of": "modelfleet"}

# Written with the API server's defaults spelled out: matchConstraints is an atomic struct, so an apply without them
# would differ from what the server stores (a server-side apply conflict between two managers, drift in Argo CD).
_MATCH = {
    "matchPolicy": "Equivalent",
    "namespaceSelector": {},
    "objectSelector": {},
    "resourceRules": [
        {
            "apiGroups": [GROUP],
            "apiVersions": [VERSION],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["mlmodels"],  # the object only: the operator's status writes (mlmodels/status) never match
            "scope": "*",
        }
    ],
}


def _approved(obj: str) -> str:
    """CEL: the object's approvedVersion, 0 when unset (`obj` is `object` or `oldObject`, null on CREATE)."""
    return (
        f"{obj} != null && has({obj}.spec.serving) && has({obj}.spec.serving.approvedVersion)"
        f" ? {obj}.spec.serving.approvedVersion : 0"
    )


def _annotation(obj: str, key: str) -> str:
    return (
        f"{obj} != null && has({obj}.metadata.annotations) && '{key}' in {obj}.metadata.annotations"
        f" ? {obj}.metadata.annotations['{key}'] : ''"
    )


MAY_APPROVE = (
    f"authorizer.group('{GROUP}').resource('mlmodels').subresource('approval')"
    ".namespace(request.namespace).name(request.name).check('update').allowed()"
)


def validating_policy() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY, "labels": LABELS},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": _MATCH,
            "variables": [
                {"name": "approved", "expression": _approved("object")},
                {"name": "wasApproved", "expression": _approved("oldObject")},
                {"name": "approvedBy", "expression": _annotation("object", APPROVED_BY)},
                {"name": "approvedVersion", "expression": _annotation("object", APPROVED_VERSION)},
                {"name": "wasApprovedBy", "expression": _annotation("oldObject", APPROVED_BY)},
                {"name": "wasApprovedVersion", "expression": _annotation("oldObject", APPROVED_VERSION)},
                {"name": "mayApprove", "expression": MAY_APPROVE},
            ],
            "validations": [
                {
                    "expression": "variables.approved == variables.wasApproved || variables.mayApprove",
                    "messageExpression": (
                        "'changing spec.serving.approvedVersion needs the permission "
                        f'"{APPROVAL_PERMISSION}" in {GROUP} (ClusterRole {APPROVER}); \' + '
                        "request.userInfo.username + ' does not have it'"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": (
                        "(variables.approvedBy == variables.wasApprovedBy"
                        " && variables.approvedVersion == variables.wasApprovedVersion)"
                        " || (variables.mayApprove && variables.approvedBy == request.userInfo.username"
                        " && variables.approvedVersion == string(variables.approved))"
                    ),
                    "message": (
                        f"the annotations {APPROVED_BY} and {APPROVED_VERSION} are written by the admission policy "
                        f"{RECORD_POLICY} when spec.serving.approvedVersion changes; they cannot be set by hand"
                    ),
                    "reason": "Forbidden",
                },
            ],
        },
    }


def mutating_policy() -> dict[str, Any]:
    changed = "object.spec.serving.approvedVersion"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": RECORD_POLICY, "labels": LABELS},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": _MATCH,
            "matchConditions": [
                {
                    "name": "approved-version-set-or-changed",
                    "expression": (
                        f"has(object.spec.serving) && has({changed}) && (oldObject == null"
                        " || !has(oldObject.spec.serving) || !has(oldObject.spec.serving.approvedVersion)"
                        f" || oldObject.spec.serving.approvedVersion != {changed})"
                    ),
                }
            ],
            "mutations": [
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {
                        "expression": (
                            "Object{metadata: Object.metadata{annotations: {"
                            f"'{APPROVED_BY}': request.userInfo.username, '{APPROVED_VERSION}': string({changed})"
                            "}}}"
                        )
                    },
                }
            ],
        },
    }


def bindings() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": POLICY, "labels": LABELS},
            "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": RECORD_POLICY, "labels": LABELS},
            "spec": {"policyName": RECORD_POLICY},
        },
    ]


EDIT = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ = ["get", "list", "watch"]


def user_roles() -> list[dict[str, Any]]:
    """`modelfleet-editor`: everything but approving (aggregated into the built-in admin and edit roles, as
    cert-manager and Kueue do, so namespace editors get it); records are read-only (only the garbage collector and
    cluster administrators delete them). `modelfleet-approver`: approving, granted on its own (never aggregated)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": EDITOR,
                "labels": {
                    **LABELS,
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                },
            },
            "rules": [
                {"apiGroups": [GROUP], "resources": ["mlmodels", "trainingjobs", "driftpolicies"], "verbs": EDIT},
                {"apiGroups": [GROUP], "resources": ["modelversions"], "verbs": READ},
                {
                    "apiGroups": [GROUP],
                    "resources": ["mlmodels/status", "trainingjobs/status", "driftpolicies/status"],
                    "verbs": ["get"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": APPROVER, "labels": LABELS},
            "rules": [
                # Approving is a patch of the MLModel, so the approver may patch it; the policy is what keeps
                # editors from approving, not approvers from editing.
                {"apiGroups": [GROUP], "resources": ["mlmodels"], "verbs": [*READ, "update", "patch"]},
                {"apiGroups": [GROUP], "resources": ["mlmodels/approval"], "verbs": ["update"]},
                {"apiGroups": [GROUP], "resources": ["modelversions"], "verbs": READ},
            ],
        },
    ]


def documents() -> list[dict[str, Any]]:
    return [validating_policy(), mutating_policy(), *bindings(), *user_roles()]


HEADER = "# Generated by `make manifests` (python -m modelfleet.api.access) from operator/modelfleet/api/access.py.\n"


def render() -> dict[Path, str]:
    def dump_all(docs: list[dict[str, Any]]) -> str:
        return HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=120)

    policies = [validating_policy(), mutating_policy(), *bindings()]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["policies.yaml", "roles.yaml"],
    }
    return {
        Path("manifests/approval/policies.yaml"): dump_all(policies),
        Path("manifests/approval/roles.yaml"): dump_all(user_roles()),
        Path("manifests/approval/kustomization.yaml"): HEADER + yaml.safe_dump(kustomization, sort_keys=False),
        Path("charts/modelfleet/files/approval.yaml"): dump_all(documents()),
    }


def main(argv: list[str] | None = None) -> int:
    return generator_main(
        argv,
        __doc__ or "",
        render,
        "approval policies differ from operator/modelfleet/api/access.py: run `make manifests`",
    )


if __name__ == "__main__":
    raise SystemExit(main())
