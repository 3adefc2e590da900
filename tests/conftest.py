"""Test tiers and the shared local control plane.

Integration tests run against one dev cluster per session (real etcd, kube-apiserver, controllers, scheduler, KWOK and
the local executor), started here, or an already running cluster when MODELFLEET_REUSE_CLUSTER=1 and KUBECONFIG point
at it. Each test gets its own namespace, deleted afterwards. When an integration test fails, the ends of the
components' logs are attached to its report.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfleet.devcluster import ClusterConfig, DevCluster
from modelfleet.devcluster.cluster import COMPONENTS
from modelfleet.devcluster.processes import marked_pids, tail
from modelfleet.devcluster.s3 import S3Server
from tests.support import OPERATOR_LOGS, OPERATORS, Kube, wait_for

_cluster: DevCluster | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "runtime", "integration", "e2e", "chaos"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster | None]:
    """The session's control plane, or None when reusing an external cluster through KUBECONFIG."""
    global _cluster
    if os.environ.get("MODELFLEET_REUSE_CLUSTER") == "1":
        if not os.environ.get("KUBECONFIG"):
            pytest.exit("MODELFLEET_REUSE_CLUSTER=1 needs KUBECONFIG", returncode=2)
        yield None
        return
    cluster = DevCluster(ClusterConfig(state_dir=tmp_path_factory.mktemp("dev-cluster")))
    cluster.up()
    _cluster = cluster
    try:
        yield cluster
    finally:
        for op in OPERATORS:  # a failed test may have left one running; it must not outlive the session
            op.stop()
        _cluster = None
        cluster_id = cluster.sup.cluster_id
        cluster.down(purge=False)
        orphans = list(marked_pids(cluster_id))
        assert not orphans, f"processes left after the dev cluster stopped: {orphans}"


@pytest.fixture(scope="session")
def kubeconfig(dev_cluster: DevCluster | None) -> Path:
    return dev_cluster.kubeconfig if dev_cluster else Path(os.environ["KUBECONFIG"])


@pytest.fixture(scope="session")
def kube(dev_cluster: DevCluster | None, kubeconfig: Path) -> Kube:
    from modelfleet.devcluster.binaries import find_binaries

    return Kube(kubeconfig, find_binaries() / "kubectl")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's S3 store (versitygw on a free loopback port, credentials generated at start)."""
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh bucket for one test (S3 names: 3-63 lowercase letters, digits and hyphens)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    s3_server.make_bucket(name)
    return name


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    kube.run("create", "namespace", name)
    # Pods cannot be created before the service-account controller made the namespace's default account.
    wait_for(lambda: kube.get("serviceaccount", "default", name), 60, "the default ServiceAccount")
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and _cluster is not None and ("integration" in item.keywords or "e2e" in item.keywords):
        for component in COMPONENTS:
            text = tail(_cluster.log_path(component), 25)
            if text:
                report.sections.append((f"{component} log (end)", text))
        for log in OPERATOR_LOGS[-1:]:
            report.sections.append(("operator log (end)", tail(log, 40)))


TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(autouse=True)
def no_unexpected_tracebacks(request: pytest.FixtureRequest) -> Iterator[None]:
    """An e2e or chaos test fails when an operator it ran logged a Python traceback: the operator classifies every
    error at its boundary, so a traceback is a bug (a test that provokes one on purpose says so with the marker
    `tracebacks_expected`)."""
    watched = "e2e" in request.keywords or "chaos" in request.keywords
    if not watched or "tracebacks_expected" in request.keywords:
        yield
        return
    already = {log: log.stat().st_size if log.exists() else 0 for log in OPERATOR_LOGS}
    yield
    for log in OPERATOR_LOGS:
        if not log.exists():
            continue
        with log.open("rb") as f:
            f.seek(already.get(log, 0))
            text = f.read().decode(errors="replace")
        if TRACEBACK in text:
            start = text.index(TRACEBACK)
            pytest.fail(f"the operator logged a traceback ({log}):\n{text[max(0, start - 300) : start + 3000]}")


from tests.crd_fixture import approval_policies, crds  # noqa: E402,F401  (session fixture shared by integration and e2e tests)
