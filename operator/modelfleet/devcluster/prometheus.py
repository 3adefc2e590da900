"""A real Prometheus server (Debian's `prometheus` package) for the tests and the demo.

`PrometheusServer` writes a configuration, optionally backfills history with `promtool tsdb create-blocks-from
openmetrics` (so time-dependent behaviour is tested without waiting), starts `prometheus` on a free loopback port and
stops it. `kubernetes_pods_job` is the scrape job the dev cluster uses: pods are discovered through the Kubernetes
API (kubernetes_sd_configs with the cluster's kubeconfig), kept when they carry `prometheus.io/scrape: "true"`, and
labelled with `namespace` and `pod`, as the usual Prometheus recipes and PodMonitors do."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelfleet.devcluster.processes import free_port

INSTALL_HINT = "install Debian's prometheus package (apt-get install prometheus), or run `make setup`"


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found on PATH: {INSTALL_HINT}")
    return path


def static_job(name: str, targets: Sequence[str], labels: Mapping[str, str], interval: str = "1s") -> dict[str, Any]:
    return {
        "job_name": name,
        "scrape_interval": interval,
        "static_configs": [{"targets": list(targets), "labels": dict(labels)}],
    }


def kubernetes_pods_job(kubeconfig: Path, interval: str = "2s") -> dict[str, Any]:
    """Pods that ask to be scraped (prometheus.io/scrape, /port, /path annotations), labelled namespace and pod."""
    meta = "__meta_kubernetes_pod_"
    return {
        "job_name": "kubernetes-pods",
        "scrape_interval": interval,
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
        "relabel_configs": [
            {"source_labels": [f"{meta}annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
            {"source_labels": [f"{meta}phase"], "action": "keep", "regex": "Running"},
            {
                "source_labels": [f"{meta}ip", f"{meta}annotation_prometheus_io_port"],
                "regex": "(.+);(.+)",
                "target_label": "__address__",
                "replacement": "$1:$2",
            },
            {
                "source_labels": [f"{meta}annotation_prometheus_io_path"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": [f"{meta}name"], "target_label": "pod"},
        ],
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
