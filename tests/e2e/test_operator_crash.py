"""Fault injection: the operator killed between creating a training Job and writing status, then restarted. In a
module of its own so that no other operator is running meanwhile."""

from __future__ import annotations

from pathlib import Path

from tests.datasets import write
from tests.e2e.conftest import claim, dump, jobs_of
from tests.e2e.test_training import TRAIN_TIMEOUT, finished, gpu_trainingjob, tj_status
from tests.support import Kube, OperatorProcess, has_condition, wait_for


def test_operator_killed_after_creating_the_job_converges_without_a_duplicate(
    kube: Kube, kubeconfig: Path, crds: Path, namespace: str, tmp_path: Path
) -> None:
    data = claim(kube, namespace, "datasets")
    claim(kube, namespace, "model-store")
    write("diabetes", data / "diabetes.csv")
    crashing = OperatorProcess(
        kubeconfig, tmp_path / "crash.log", "--namespace", namespace, env={"MODELFLEET_CRASH_AT": "after-job-create"}
    ).start()
    body = gpu_trainingjob("crash-test", 0)
    body["spec"]["framework"] = "sklearn"
    body["spec"]["training"] = {"estimator": "sklearn.linear_model.Ridge", "hyperparameters": {"alpha": 1.0}}
    kube.apply(body, namespace)
    try:
        assert crashing.wait_exit(60) == 86  # it stopped right after creating the Job
    finally:
        crashing.stop()
    assert len(jobs_of(kube, namespace, "crash-test")) == 1
    assert not tj_status(kube, namespace, "crash-test").get("jobName")  # status never written

    restarted = OperatorProcess(kubeconfig, tmp_path / "restart.log", "--namespace", namespace).start()
    try:
        done = wait_for(lambda: finished(kube, namespace, "crash-test"), TRAIN_TIMEOUT, "the run to finish")
    finally:
        restarted.stop()
    assert has_condition(done, "Succeeded"), dump(done["status"])
    assert len(jobs_of(kube, namespace, "crash-test")) == 1
    assert done["status"]["result"]["metrics"]["r2"] > 0.2
