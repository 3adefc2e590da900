"""A real Prometheus server (Prometheus 3, built from its Go module by hack/prometheus.sh) for the tests and the demo.

`PrometheusServer` writes a configuration, optionally backfills history with `promtool tsdb create-blocks-from
openmetrics` (so time-dependent behaviour is tested without waiting), starts `prometheus` on a free loopback port and
stops it. `pod_scrape_job` is how it finds the dev cluster's pods: `kubernetes_sd_configs` (pod role) through the API
server, with the relabelling of the plain scrape configuration shipped in manifests/prometheus/scrape-config.yaml."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelfleet.devcluster.binaries import REPO_ROOT, SetupError
from modelfleet.devcluster.processes import free_port

BUILD_SCRIPT = REPO_ROOT / "hack" / "prometheus.sh"


@functools.cache
def _tool_dir() -> Path:
    # The script prints progress on stderr and the directory on its last stdout line; a built cache answers at once.
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SetupError(
            "building Prometheus failed (hack/prometheus.sh); the step and its log file are named above, or set "
            "MODELFLEET_PROMETHEUS_DIR to a directory with prometheus and promtool 3.x"
        )
    return Path(res.stdout.strip().splitlines()[-1])


def find_tool(name: str) -> str:
    """`prometheus` or `promtool` of the pinned Prometheus 3, built on first use."""
    return str(_tool_dir() / name)


def static_job(name: str, targets: Sequence[str], labels: Mapping[str, str], interval: str = "1s") -> dict[str, Any]:
    return {
        "job_name": name,
        "scrape_interval": interval,
        "static_configs": [{"targets": list(targets), "labels": dict(labels)}],
    }


POD_RELABELLING: list[dict[str, Any]] = [
    # Pods that ask to be scraped (the prometheus.io/* annotations ModelFleet's serving pods carry), while running.
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
    {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "keep", "regex": "Running"},
    # The annotated port, not each declared container port: a pod is one target however many ports it names.
    {
        "source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
        "action": "replace",
        "regex": "(.+);([0-9]+)",
        "replacement": "$1:$2",
        "target_label": "__address__",
    },
    {
        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
        "action": "replace",
        "regex": "(.+)",
        "target_label": "__metrics_path__",
    },
    # `namespace` and `pod`, as the usual recipes and PodMonitors label them (ModelFleet's queries select on both).
    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
]
"""The relabelling of pod discovery: manifests/prometheus/scrape-config.yaml carries the same rules for clusters
without the Prometheus operator (a unit test keeps the two equal)."""


def pod_scrape_job(kubeconfig: Path | None, interval: str = "2s", namespaces: Sequence[str] = ()) -> dict[str, Any]:
    """A scrape job that finds pods through the Kubernetes API (`kubernetes_sd_configs`, role pod), as Prometheus does
    in a cluster; `kubeconfig` reaches the dev cluster's API server from outside it (None: in-cluster)."""
    sd: dict[str, Any] = {"role": "pod"}
    if kubeconfig is not None:
        sd["kubeconfig_file"] = str(kubeconfig)
    if namespaces:
        sd["namespaces"] = {"names": list(namespaces)}
    return {
        "job_name": "kubernetes-pods",
        "scrape_interval": interval,
        "kubernetes_sd_configs": [sd],
        "relabel_configs": POD_RELABELLING,
    }


class PrometheusServer:
    def __init__(self, state_dir: Path, scrape_jobs: Sequence[dict[str, Any]] = (), *, port: int | None = None) -> None:
        self.dir = state_dir
        self.data = state_dir / "data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_jobs = list(scrape_jobs)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir / "prometheus.log"

    def backfill(self, openmetrics: str) -> None:
        """Write history into the TSDB before start (the text must end with '# EOF')."""
        self.data.mkdir(parents=True, exist_ok=True)
        source = self.dir / f"backfill-{time.monotonic_ns()}.om"
        source.write_text(openmetrics)
        out = subprocess.run(
            [find_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.data)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"promtool backfill failed: {out.stderr or out.stdout}")

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        # YAML is a superset of JSON: the configuration is written as JSON.
        config.write_text(
            json.dumps(
                {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": self.scrape_jobs}
            )
        )
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    find_tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    # Backfilled blocks may overlap the head's time range; history older than the default
                    # retention is kept for the budget tests.
                    "--storage.tsdb.retention.time=30d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus did not become ready in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def query(self, expr: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=5
        ) as r:
            return list(json.loads(r.read())["data"]["result"])

    def wait_for_series(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.25)
        raise TimeoutError(f"no series for {expr} after {timeout:.0f}s (log: {self.log})")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics(series: Sequence[tuple[str, Mapping[str, str], Sequence[tuple[float, float]]]]) -> str:
    """OpenMetrics text for backfilling: [(metric, labels, [(unix time, value), ...]), ...], grouped by metric."""
    by_metric: dict[str, list[str]] = {}
    for metric, labels, points in series:
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines = by_metric.setdefault(metric, [f"# TYPE {metric} gauge"])
        lines += [f"{metric}{{{label_text}}} {_number(value)} {t:.3f}" for t, value in sorted(points)]
    return "\n".join(line for lines in by_metric.values() for line in lines) + "\n# EOF\n"
