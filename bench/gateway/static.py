"""The gateway with a fixed routing table (one model, one endpoint) and no Kubernetes: what the benchmark puts
between the load generator and the model server.

    python -m bench.gateway.static --port P --model iris --endpoint 127.0.0.1:8080
"""

from __future__ import annotations

import argparse

from modelfleet.gateway.front import HttpFront, run, serve_until_stopped
from modelfleet.gateway.proxy import Gateway
from modelfleet.gateway.routing import Endpoint, ModelEntry, RoutingTable


async def never(_model: str) -> None:
    raise RuntimeError("the benchmark's model is never at zero")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args()
    table = RoutingTable()
    table.set_model(ModelEntry(args.model))
    table.set_pod("bench-0", Endpoint("bench-0", args.model, "1", args.endpoint))
    gateway = Gateway(table, "bench", never)
    run(serve_until_stopped(HttpFront(gateway.handle), "127.0.0.1", args.port))  # as the gateway itself serves


if __name__ == "__main__":
    main()
