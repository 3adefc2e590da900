"""`python -m modelfleet.gateway --namespace NS`: the gateway for the models of one namespace (docs/traffic.md).

Lists the namespace's MLModels and serving pods before it accepts a request, then follows them by watch; serves
`/v2/models/{name}/...` (REST), `/healthz` and `/metrics` on --host:--port until SIGTERM, then lets the requests in
flight finish (up to --grace seconds)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from modelfleet.gateway.front import HttpFront, Reply, Request, run, serve_until_stopped
from modelfleet.gateway.proxy import Gateway
from modelfleet.gateway.routing import RoutingTable

SYNC_TIMEOUT = 60.0
log = logging.getLogger("modelfleet.gateway")


async def serve(args: argparse.Namespace) -> None:
    from modelfleet.gateway.watch import NamespaceWatch, api_client

    loop = asyncio.get_running_loop()
    table = RoutingTable()
    holder: dict[str, NamespaceWatch] = {}

    async def scale_up(model: str) -> None:
        await loop.run_in_executor(None, holder["watch"].request_scale_up, model)

    gateway = Gateway(
        table,
        args.namespace,
        scale_up,
        max_queue=args.max_queue,
        upstream_timeout=args.upstream_timeout,
        retry_after=args.retry_after,
    )
    watcher = NamespaceWatch(api_client(), args.namespace, table, loop)
    watcher.listeners.append(gateway.table_changed)
    holder["watch"] = watcher
    watcher.start()
    try:
        for kind, synced in watcher.synced.items():
            if not await loop.run_in_executor(None, synced.wait, SYNC_TIMEOUT):
                raise SystemExit(
                    f"modelfleet-gateway: could not list {kind} in {args.namespace} within {SYNC_TIMEOUT:g}s"
                )
        await asyncio.sleep(0)  # the lists' hand-overs run before the first request
        handler = gateway.handle
        if args.access_log:

            async def handler(request: Request) -> Reply:
                reply = await gateway.handle(request)
                log.info("%s %s %d", request.method, request.target, reply.status)
                return reply

        await serve_until_stopped(HttpFront(handler), args.host, args.port, args.grace)
    finally:
        watcher.stop()
        gateway.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfleet.gateway", description=__doc__)
    parser.add_argument("--namespace", required=True, help="the namespace whose models it routes to")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-queue", type=int, default=100, help="requests held per model while it has no pod")
    parser.add_argument("--upstream-timeout", type=float, default=30.0, help="seconds a pod has to answer")
    parser.add_argument("--retry-after", type=int, default=5, help="the Retry-After of a 503, in seconds")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds requests in flight get after SIGTERM")
    parser.add_argument("--access-log", action="store_true", help="log every request (method, target, status)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(serve(args))
    except OSError as e:
        print(f"modelfleet-gateway: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
