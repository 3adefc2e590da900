"""A dev cluster of a benchmark's own, in a temporary directory, with the CRDs installed."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import Kube

from modelfleet.devcluster import ClusterConfig, DevCluster, SetupError
from modelfleet.devcluster.binaries import find_binaries

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def bench_cluster(prefix: str, gpu_nodes: int = 2) -> Iterator[tuple[Kube, Path]]:
    """Yields a kubectl wrapper and a temporary directory (the cluster's state is under it); the cluster is stopped
    afterwards. A cluster that cannot start exits with code 1 and its reason."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_dir:
        tmp = Path(tmp_dir)
        cluster = DevCluster(ClusterConfig(state_dir=tmp / "cluster", gpu_nodes=gpu_nodes))
        try:
            cluster.up(progress=lambda m: print(f"  {m}", file=sys.stderr))
        except SetupError as e:
            print(f"bench: {e}", file=sys.stderr)
            raise SystemExit(1) from e
        try:
            kube = Kube(cluster.kubeconfig, find_binaries() / "kubectl")
            kube.run("apply", "--server-side", "-f", str(ROOT / "crds"))
            kube.run("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=modelfleet")
            yield kube, tmp
        finally:
            cluster.down()
