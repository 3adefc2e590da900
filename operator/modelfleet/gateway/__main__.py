"""`python -m modelfleet.gateway --namespace NS`: the gateway for the models of one namespace (docs/traffic.md).

Lists the namespace's MLModels and serving pods before it accepts a request, then follows them by watch; serves
`/v2/models/{name}/...` (REST), `/healthz` and `/metrics` on --host:--port until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web
from aiohttp.log import access_logger

from modelfleet.gateway.proxy import Gateway
from modelfleet.gateway.routing import RoutingTable

SYNC_TIMEOUT = 60.0


def build(namespace: str, args: argparse.Namespace) -> web.Application:
    from modelfleet.gateway.watch import NamespaceWatch, api_client

    table = RoutingTable()
    holder: dict[str, NamespaceWatch] = {}

    async def scale_up(model: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, holder["watch"].request_scale_up, model)

    gateway = Gateway(
        table,
        namespace,
        scale_up,
        max_queue=args.max_queue,
        upstream_timeout=args.upstream_timeout,
        retry_after=args.retry_after,
    )
    app = gateway.app()

    async def start_watch(_app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        watcher = NamespaceWatch(api_client(), namespace, table, loop)
        watcher.listeners.append(gateway.table_changed)
        holder["watch"] = watcher
        watcher.start()
        for kind, synced in watcher.synced.items():
            if not await loop.run_in_executor(None, synced.wait, SYNC_TIMEOUT):
                raise SystemExit(f"modelfleet-gateway: could not list {kind} in {namespace} within {SYNC_TIMEOUT:g}s")
        await asyncio.sleep(0)  # the lists' hand-overs run before the first request

    async def stop_watch(_app: web.Application) -> None:
        if "watch" in holder:
            holder["watch"].stop()

    app.on_startup.insert(0, start_watch)
    app.on_cleanup.append(stop_watch)
    return app


def serve(app: web.Application, host: str, port: int, *, access_log: bool = False) -> None:
    """Serves `app` until SIGTERM, on uvloop where it is installed. No access log by default: a log line per request
    costs as much as the forwarding itself, and the gateway's /metrics count every request."""
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    web.run_app(app, host=host, port=port, print=None, access_log=access_logger if access_log else None, loop=loop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfleet.gateway", description=__doc__)
    parser.add_argument("--namespace", required=True, help="the namespace whose models it routes to")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-queue", type=int, default=100, help="requests held per model while it has no pod")
    parser.add_argument("--upstream-timeout", type=float, default=30.0, help="seconds a pod has to answer")
    parser.add_argument("--retry-after", type=int, default=5, help="the Retry-After of a 503, in seconds")
    parser.add_argument("--access-log", action="store_true", help="log every request (aiohttp's access log)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(build(args.namespace, args), args.host, args.port, access_log=args.access_log)
    except OSError as e:
        print(f"modelfleet-gateway: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
