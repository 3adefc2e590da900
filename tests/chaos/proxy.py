"""Proxies between the operator and the API server that inject faults. `StallingProxy` (TCP) stalls: the connections
open when `stall()` is called stop forwarding in both directions without closing (a half-dead watch stream, a wedged
load balancer); connections opened afterwards work; TLS passes through untouched (the API server's certificate names
127.0.0.1, any port). `FaultyProxy` (HTTP) answers some requests with injected 5xx and 409 errors."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web


@dataclass
class Link:
    stalled: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)  # never set: a stalled link stays stalled
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class StallingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.links: list[Link] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stalling-proxy", daemon=True)

    def start(self) -> StallingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        link = Link(writers=[writer, up_writer])
        self.links.append(link)
        await asyncio.gather(self._pipe(reader, up_writer, link), self._pipe(up_reader, writer, link))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
        try:
            while data := await reader.read(65536):
                if link.stalled:  # hold the bytes for good: the other side sees silence, not a close
                    await link.release.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not link.stalled:
                writer.close()

    def stall(self) -> int:
        """Stalls every connection open now; returns how many."""
        current = [link for link in self.links if not link.stalled]
        for link in current:
            link.stalled = True
        return len(current)

    def stop(self) -> None:
        def close() -> None:
            for link in self.links:
                for w in link.writers:
                    w.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self._thread.join(timeout=10)


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _status_body(code: int, reason: str, message: str) -> bytes:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": code}
    return json.dumps({**status, "reason": reason, "message": f"injected by the test proxy: {message}"}).encode()


# What each fault does: answered before the request goes on (nothing happened upstream), or after it landed (the
# write happened; the client only hears an error, as when a response is lost).
FAULTS: dict[str, tuple[int, str, bool]] = {
    "unavailable": (503, "ServiceUnavailable", False),
    "timeout-after-write": (504, "Timeout", True),
    "conflict": (409, "Conflict", False),
    "exists-after-create": (409, "AlreadyExists", True),
}


class FaultyProxy:
    """A plain-HTTP reverse proxy in front of the API server that answers a seeded random share of requests with
    injected errors: `503` before a request goes on, `504` after a write landed (a lost response), `409 Conflict`
    before an update, `409 AlreadyExists` after a create landed. Watches pass through untouched (their failures are
    the stall and outage tests'). It speaks to the API server with the kubeconfig's client certificate; the
    operator's kubeconfig from `kubeconfig()` points at the proxy in plain HTTP."""

    def __init__(self, kubeconfig: Path, seed: int, rate: float) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        self.upstream = cluster["server"].rstrip("/")
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])
        self.rng, self.rate = random.Random(seed), rate
        self.enabled = True
        self.injected: collections.Counter[str] = collections.Counter()
        self._turns: dict[str, itertools.cycle[str]] = {}
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faulty-proxy", daemon=True)

    def start(self) -> FaultyProxy:
        self._thread.start()
        assert self._ready.wait(10), "the proxy did not start"
        return self

    def kubeconfig(self, path: Path) -> Path:
        cluster = {"server": f"http://127.0.0.1:{self.port}"}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "faulty", "cluster": cluster}],
            "users": [{"name": "faulty", "user": {}}],
            "contexts": [{"name": "faulty", "context": {"cluster": "faulty", "user": "faulty"}}],
            "current-context": "faulty",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        # Bytes pass through as they came (no decompression), so Content-Encoding stays true.
        self.session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _choose(self, method: str, watch: bool) -> str | None:
        """Which requests fail is random (seeded); the faults a method can get take turns, so that every kind
        happens in a short run."""
        if not self.enabled or watch or self.rng.random() >= self.rate:
            return None
        return next(self._turns.setdefault(method, itertools.cycle(self._options(method))))

    @staticmethod
    def _options(method: str) -> list[str]:
        if method == "POST":
            return ["unavailable", "timeout-after-write", "exists-after-create"]
        if method in ("PUT", "PATCH"):
            return ["conflict", "unavailable", "timeout-after-write"]
        if method == "DELETE":
            return ["unavailable", "timeout-after-write"]
        return ["unavailable"]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch", "") in ("1", "true")
        fault = self._choose(request.method, watch)
        code, reason, after = FAULTS.get(fault or "", (0, "", False))
        if fault and not after:
            return self._injected(fault, code, reason, request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with self.session.request(
            request.method,
            self.upstream + request.rel_url.path_qs,
            headers=headers,
            data=body or None,
            ssl=self.ssl,
            # The request goes on as it came: no Content-Type of aiohttp's (octet-stream, refused with 415) where the
            # client sent none (the Kubernetes client sends JSON without one; the API server reads it as JSON).
            skip_auto_headers=("Content-Type",),
        ) as upstream:
            if fault and upstream.status < 300:
                await upstream.read()
                return self._injected(fault, code, reason, request)
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # either side closed the connection (a watch the operator reconnects, a stopped process)
            return response

    def _injected(self, fault: str, code: int, reason: str, request: web.Request) -> web.Response:
        self.injected[fault] += 1
        body = _status_body(code, reason, f"{fault} on {request.method} {request.path}")
        return web.Response(status=code, body=body, content_type="application/json")

    def stop(self) -> None:
        async def close() -> None:
            await self.session.close()  # ends the watches held open upstream, so their handlers return
            await self.runner.shutdown()
            await self.runner.cleanup()

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
