"""The gateway's HTTP/1.1 server side: requests parsed as their bytes arrive (`parse_head`, `body_of`: pure), one at
a time per connection (keep-alive and pipelining in order), handed to one handler, its reply written in one call.

Why not aiohttp's server, which the model server uses: in front of a one-row model it costs about 0.09 ms a request on
the project's machine (an aiohttp echo against a bare asyncio one, same run), a third of the gateway's whole budget
(issue #17: at most 0.3 ms added at p50); the gateway needs none of what that buys (routing tables, middlewares,
streaming). What a client does wrong is a JSON `{"error": ...}` with its 4xx, and the connection is closed after it
when what follows cannot be trusted (a malformed head, a body over the bound)."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import unquote

import orjson

from modelfleet.gateway.upstream import Broken, chunked_body

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 64 * 1024
REASONS = {s.value: s.phrase for s in http.HTTPStatus}


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Head:
    method: str
    target: str  # as sent: the path and the query
    version: str  # "HTTP/1.1"
    headers: dict[str, str]  # lower-case names
    end: int  # where the body starts in the buffer

    @property
    def path(self) -> str:
        return unquote(self.target.split("?", 1)[0])

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        return connection == "keep-alive" if self.version == "HTTP/1.0" else connection != "close"


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Reply]]


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps({"error": message}), {"Content-Type": "application/json", **(headers or {})})


def parse_head(buffer: bytearray | bytes) -> Head | None:
    """The request line and headers at the start of `buffer`; None while incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD_BYTES:
        if len(buffer) > MAX_HEAD_BYTES:
            raise BadRequest(431, f"request line and headers over {MAX_HEAD_BYTES} bytes")
        return None
    request_line, *lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, f"not an HTTP/1.x request line: {request_line[:80]!r}")
    method, target, version = parts
    if not target.startswith("/"):
        raise BadRequest(400, f"the request target must be a path: {target[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or "\n" in line or "\r" in line:
            raise BadRequest(400, f"malformed header line: {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return Head(method.upper(), target, version, headers, end + 4)


def body_of(buffer: bytearray | bytes, head: Head, max_body: int) -> tuple[bytes, int] | None:
    """The request's body and where it ends in `buffer`; None while incomplete."""
    encoding = head.headers.get("transfer-encoding", "").lower()
    if encoding:
        if encoding != "chunked":
            raise BadRequest(501, f"Transfer-Encoding {encoding!r} is not supported (only chunked)")
        try:
            whole = chunked_body(buffer, head.end)
        except Broken as e:
            raise BadRequest(400, str(e)) from e
        if whole is None and len(buffer) - head.end > max_body:
            raise BadRequest(413, f"the body is over {max_body} bytes")
        if whole is not None and len(whole[0]) > max_body:
            raise BadRequest(413, f"the body is over {max_body} bytes")
        return whole
    length_text = head.headers.get("content-length", "0")
    if not length_text.isdigit():
        raise BadRequest(400, f"bad Content-Length {length_text[:40]!r}")
    length = int(length_text)
    if length > max_body:
        raise BadRequest(413, f"the body ({length} bytes) is over {max_body} bytes")
    if len(buffer) < head.end + length:
        return None
    return bytes(buffer[head.end : head.end + length]), head.end + length


def encode(reply: Reply, keep_alive: bool, with_body: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, '')}", f"Content-Length: {len(reply.body)}"]
    lines += [f"{name}: {value}" for name, value in reply.headers.items()]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (reply.body if with_body else b"")


class _Connection(asyncio.Protocol):
    def __init__(self, front: HttpFront) -> None:
        self.front = front
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = bytearray()
        self.head: Head | None = None
        self.continued = False  # answered `Expect: 100-continue` for the current head
        self.task: asyncio.Task[None] | None = None  # the request being handled
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's transports subclass no asyncio class
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.front.connections.discard(self)
        if self.task is not None:
            self.task.cancel()  # a client that left: its held request stops waiting

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.task is None:
            self._next()

    def _fail(self, e: BadRequest) -> None:
        assert self.transport is not None
        self.transport.write(encode(json_error(e.status, str(e)), keep_alive=False))
        self.closing = True
        self.transport.close()

    def _next(self) -> None:
        """Starts handling the next whole request in the buffer, if there is one."""
        if self.closing or self.transport is None:
            return
        try:
            if self.head is None:
                self.head = parse_head(self.buffer)
                if self.head is None:
                    return
                self.continued = False
            head = self.head
            whole = body_of(self.buffer, head, self.front.max_body)
        except BadRequest as e:
            self._fail(e)
            return
        if whole is None:
            if head.headers.get("expect", "").lower() == "100-continue" and not self.continued:
                self.continued = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        body, end = whole
        del self.buffer[:end]
        self.head = None
        request = Request(head.method, head.target, head.path, head.headers, body)
        self.task = asyncio.get_running_loop().create_task(self._handle(request, head.keep_alive))

    async def _handle(self, request: Request, keep_alive: bool) -> None:
        try:
            reply = await self.front.handler(request)
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("the gateway failed on %s %s", request.method, request.path)
            reply = json_error(500, "the gateway failed on this request; see its log")
        if self.closing or self.transport is None:
            return
        keep_alive = keep_alive and not self.front.stopping
        self.transport.write(encode(reply, keep_alive, with_body=request.method != "HEAD"))
        self.task = None
        if not keep_alive:
            self.closing = True
            self.transport.close()
            return
        self._next()

    def close_if_idle(self) -> None:
        if self.task is None and self.transport is not None:
            self.closing = True
            self.transport.close()


class HttpFront:
    """Serves `handler` on host:port. `stop` stops accepting, closes idle connections and lets requests in flight
    finish (their connections close after the answer) for up to `grace` seconds."""

    def __init__(self, handler: Handler, *, max_body: int = 64 * 1024 * 1024) -> None:
        self.handler = handler
        self.max_body = max_body
        self.connections: set[_Connection] = set()
        self.server: asyncio.Server | None = None
        self.stopping = False

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)

    async def stop(self, grace: float = 15.0) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            for conn in list(self.connections):
                conn.close_if_idle()
            if not self.connections or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()


async def serve_until_stopped(front: HttpFront, host: str, port: int, grace: float = 15.0) -> None:
    """Serves until SIGTERM or SIGINT, then stops within `grace` seconds (Kubernetes' terminating pod)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await front.start(host, port)
    await stop.wait()
    await front.stop(grace)


def run(main: Awaitable[None]) -> None:
    """Runs `main` on uvloop where it is installed (a fifth less added latency per request than asyncio's own loop,
    bench/gateway), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]
