"""429 storms: the operator runs as its ServiceAccount with the chart's RBAC and the chart's API Priority and Fairness
objects sized to almost nothing (one share, one queue of one), so the API server rejects much of its traffic with
429. It must not crash or duplicate anything, must converge, and its back-off must show in its metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.chaos.test_graceful_stop import fleet
from tests.integration.test_packaging import template
from tests.support import Kube, OperatorProcess, service_account_kubeconfig, wait_for

MODELS = 120
TINY = ("apiPriority.enabled=true", "apiPriority.nominalConcurrencyShares=1", "apiPriority.queues=1")
KINDS = ("ServiceAccount", "Role", "RoleBinding", "FlowSchema", "PriorityLevelConfiguration")


def test_a_429_storm_is_ridden_out_with_back_off_and_no_duplicates(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    values = [
        a for v in (*TINY, "apiPriority.queueLengthLimit=1", f"watchNamespaces={{{namespace}}}") for a in ("--set", v)
    ]
    docs = [d for d in template(*values, namespace=namespace, release=namespace) if d["kind"] in KINDS]
    assert {d["kind"] for d in docs} == set(KINDS)
    kube.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    account = service_account_kubeconfig(kube, namespace, f"{namespace}-operator", tmp_path / "sa.kubeconfig")
    operator = OperatorProcess(account, tmp_path / "operator.log", "--namespace", namespace, "--workers", "16").start()
    try:
        kube.run("apply", "-f", "-", input=fleet(namespace))
        runs = wait_for(
            lambda: len(r := kube.items("trainingjobs", namespace)) >= MODELS and r, 300, "a run for every model"
        )
        throttled = operator.counter("modelfleet_api_requests_total", code="429")
        backed_off = operator.counter("modelfleet_workqueue_retries_total", cause="throttled")
        print(f"{MODELS} models converged through {throttled:.0f} 429s ({backed_off:.0f} passes backed off)")
        assert throttled > 0 and backed_off > 0, "the priority level never throttled the operator"
        owners = sorted(r["spec"]["modelRef"]["name"] for r in runs)
        assert owners == sorted(f"busy-{i:03d}" for i in range(MODELS))
        assert operator.proc is not None and operator.proc.poll() is None
        assert not re.search(r"Traceback", operator.log.read_text())
    finally:
        operator.stop()
        kube.run("delete", "flowschema,prioritylevelconfiguration", namespace + "-operator", check=False)
