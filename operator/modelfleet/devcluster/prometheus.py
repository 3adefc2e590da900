"""A real Prometheus server (Debian's `prometheus` package) for the tests and the demo.

`PrometheusServer` writes a configuration, optionally backfills history with `promtool tsdb create-blocks-from
openmetrics` (so time-dependent behaviour is tested without waiting), starts `prometheus` on a free loopback port and
stops it. `PodDiscovery` is how it finds the dev cluster's pods: through the Kubernetes API, served to Prometheus as
HTTP service discovery (Debian's build has no kubernetes_sd_configs)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
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


def pods_to_scrape(pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """HTTP service-discovery targets for running pods that ask to be scraped (prometheus.io/scrape, /port, /path
    annotations), labelled with `namespace` and `pod` as the usual Prometheus recipes and PodMonitors do."""
    targets = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        annotations = meta.get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true" or status.get("phase") != "Running":
            continue
        if not status.get("podIP") or not annotations.get("prometheus.io/port"):
            continue
        targets.append(
            {
                "targets": [f"{status['podIP']}:{annotations['prometheus.io/port']}"],
                "labels": {
                    "namespace": meta.get("namespace", ""),
                    "pod": meta.get("name", ""),
                    "__metrics_path__": annotations.get("prometheus.io/path", "/metrics"),
                },
            }
        )
    return targets


class PodDiscovery:
    """Prometheus' Kubernetes pod discovery for the dev cluster, as an HTTP service-discovery endpoint.

    Debian's Prometheus is built without kubernetes_sd_configs, so this small bridge lists pods from the API server on
    every refresh and answers in the http_sd format; the scrape job is `http_sd_configs` pointing at it."""

    def __init__(self, kubeconfig: Path) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from modelfleet.clients.kube import api_client

        core = _core_api(api_client(str(kubeconfig)))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API
                try:
                    resp = core.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=5)
                    body = json.dumps(pods_to_scrape(json.loads(resp.data)["items"])).encode()
                    self.send_response(200)
                except Exception as e:  # the API server restarting: Prometheus keeps its last targets
                    body = f"listing pods failed: {e}".encode()
                    self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/targets"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PodDiscovery:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def job(self, interval: str = "2s") -> dict[str, Any]:
        return {
            "job_name": "kubernetes-pods",
            "scrape_interval": interval,
            "http_sd_configs": [{"url": self.url, "refresh_interval": interval}],
        }


def _core_api(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)


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
