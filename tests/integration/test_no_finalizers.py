"""No finalizers: with the operator stopped, deleting a model or its namespace completes at once (the garbage
collector removes the children), and the finalizer older versions left on objects is removed at the next start."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_operator_skeleton import reconciled
from tests.samples import sample
from tests.support import Kube, OperatorProcess, wait_for

LEGACY = "modelfleet.io/finalizer"


def _reconciled_model(kube: Kube, namespace: str, name: str) -> None:
    model = sample("MLModel", "fraud-detector")
    model["metadata"]["name"] = name
    kube.apply(model, namespace)
    wait_for(lambda: reconciled(kube, "mlm", name, namespace), 30, f"{name} to be reconciled")
    wait_for(lambda: kube.get("tj", f"{name}-v1", namespace), 30, f"{name}'s first TrainingJob")


def test_deleting_a_model_and_a_namespace_with_the_operator_down_completes(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    doomed = f"{namespace}-doomed"
    kube.run("create", "namespace", doomed)
    op = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", namespace, "--namespace", doomed)
    op.start()
    try:
        _reconciled_model(kube, namespace, "gone")
        _reconciled_model(kube, doomed, "with-its-namespace")
    finally:
        op.stop()
    for ns, name in ((namespace, "gone"), (doomed, "with-its-namespace")):
        for kind, obj in (("mlm", name), ("tj", f"{name}-v1")):
            assert not (kube.get(kind, obj, ns) or {}).get("metadata", {}).get("finalizers"), (kind, obj)
    res = kube.run("delete", "mlm", "gone", "-n", namespace, "--timeout=30s", check=False)
    assert res.returncode == 0, res.stderr
    assert kube.get("mlm", "gone", namespace) is None
    # The TrainingJob it owned goes with it (the garbage collector, by owner reference).
    wait_for(lambda: kube.get("tj", "gone-v1", namespace) is None, 30, "the owned TrainingJob to be collected")
    kube.run("delete", "namespace", doomed, "--wait=false")
    # Our objects never hold a namespace: they are gone as soon as the namespace controller reaches them (pods of
    # other controllers may take it longer on a busy machine; the namespace itself is waited for more patiently).
    wait_for(lambda: not kube.items("mlm,tj", doomed), 30, "the namespace's models and runs to be deleted")
    wait_for(lambda: kube.get("namespace", doomed) is None, 180, "the namespace to be deleted")


def test_the_finalizer_of_older_versions_is_removed_at_start(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    old = sample("MLModel", "fraud-detector")
    old["metadata"]["name"] = "from-an-older-version"
    old["metadata"]["finalizers"] = [LEGACY, "example.com/someone-elses"]
    kube.apply(old, namespace)
    assert kube.get("mlm", "from-an-older-version", namespace)["metadata"]["finalizers"] == [  # type: ignore[index]
        LEGACY,
        "example.com/someone-elses",
    ]
    log = tmp_path / "operator.log"
    op = OperatorProcess(kubeconfig, log, "--namespace", namespace).start()
    try:
        wait_for(
            lambda: (
                kube.get("mlm", "from-an-older-version", namespace)["metadata"].get("finalizers")  # type: ignore[index]
                == ["example.com/someone-elses"]
            ),
            30,
            "the legacy finalizer to be removed (and only it)",
        )
        wait_for(lambda: "removed the finalizer modelfleet.io/finalizer" in log.read_text(), 10, "the log line")
    finally:
        op.stop()
    assert log.read_text().count("removed the finalizer") == 1
    # Someone else's finalizer stays theirs: clear it so the namespace can go.
    clear = '{"metadata":{"finalizers":null}}'
    kube.run("patch", "mlm", "from-an-older-version", "-n", namespace, "--type=merge", "-p", clear)
