"""A stand-in for NVIDIA's DCGM exporter, for machines without GPUs: the same metric names and labels, values from a
JSON file re-read at every scrape (so a test or the demo can change "utilisation" while Prometheus scrapes).

    python -m modelfleet.devcluster.dcgm --port 9400 --values values.json

values.json: [{"namespace": "ml", "pod": "churn-7d9f-abcde", "gpu": "0", "util": 42.0}, ...]. `util` is in percent;
both DCGM_FI_DEV_GPU_UTIL (percent) and DCGM_FI_PROF_GR_ENGINE_ACTIVE (ratio) are exported unless `profiling` is
false for an entry (as on exporters without the profiling metric group)."""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def render(entries: list[dict[str, Any]]) -> str:
    util, active = ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"], ["# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge"]
    for i, e in enumerate(entries):
        gpu = str(e.get("gpu", i))
        labels = (
            f'gpu="{gpu}",UUID="GPU-stand-in-{gpu}",modelName="NVIDIA H100 (stand-in)",Hostname="kwok-gpu",'
            f'namespace="{e["namespace"]}",pod="{e["pod"]}",container="{e.get("container", "main")}"'
        )
        util.append(f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {float(e['util']):g}")
        if e.get("profiling", True):
            active.append(f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{labels}}} {float(e['util']) / 100:g}")
    return "\n".join(util + active) + "\n"


def serve(port: int, values: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                body = render(json.loads(values.read_text()) if values.exists() else []).encode()
                self.send_response(200)
            except (ValueError, KeyError, TypeError) as e:
                body = f"bad values file: {e}\n".encode()
                self.send_response(500)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--values", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, args.values, args.host).serve_forever()


if __name__ == "__main__":
    main()
