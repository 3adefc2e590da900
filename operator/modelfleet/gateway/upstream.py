"""The gateway's HTTP/1.1 client to the model servers: keep-alive connections per pod address, and nothing else.
aiohttp's client costs about as much per request as a model server's whole answer for a one-row request (tracing
hooks, cookie jar, timers, its own payload layer). Here a request is one write, and the answer is parsed as its bytes
arrive (`parse_answer`, pure) on an asyncio Protocol that wakes the request once, when the answer is whole.

Errors: `Unreachable` when no connection could be made (nothing was sent: another pod may be tried), `Broken` when the
connection failed after the request was sent, TimeoutError past the deadline."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import cast

MAX_IDLE_PER_ADDRESS = 64
MAX_HEADER_BYTES = 64 * 1024


class Unreachable(Exception):
    pass


class Broken(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def chunked_body(buffer: bytearray | bytes, start: int) -> tuple[bytes, int] | None:
    """A whole chunked body from `start` (and the end of its trailers), or None while incomplete."""
    parts: list[bytes] = []
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";")[0].strip(), 16)
        except ValueError as e:
            raise Broken(f"bad chunk size {bytes(buffer[at:line_end])[:40]!r}") from e
        at = line_end + 2
        if size == 0:
            while True:  # trailers, up to an empty line
                line_end = buffer.find(b"\r\n", at)
                if line_end < 0:
                    return None
                empty = line_end == at
                at = line_end + 2
                if empty:
                    return b"".join(parts), at
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


def parse_answer(buffer: bytearray | bytes, eof: bool) -> tuple[Answer, bool, int] | None:
    """The answer at the start of `buffer`, whether the connection may be kept, and the bytes it took; None while
    incomplete. `eof`: the server has closed the connection (an answer without a length ends there)."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > MAX_HEADER_BYTES:
            raise Broken("answer headers too large")
        return None
    if head_end > MAX_HEADER_BYTES:
        raise Broken("answer headers too large")
    status_line, *header_lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError) as e:
        raise Broken(f"not an HTTP answer: {status_line[:80]!r}") from e
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    start = head_end + 4
    if status in (204, 304) or 100 <= status < 200:  # never a body (RFC 9112, 6.3)
        return Answer(status, headers, b""), headers.get("connection", "").lower() != "close", start
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError as e:
            raise Broken(f"bad Content-Length {headers['content-length'][:40]!r}") from e
        if len(buffer) < start + length:
            return None
        body, end = bytes(buffer[start : start + length]), start + length
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        whole = chunked_body(buffer, start)
        if whole is None:
            return None
        body, end = whole
    elif eof:
        return Answer(status, headers, bytes(buffer[start:])), False, len(buffer)
    else:
        return None  # ends with the connection
    return Answer(status, headers, body), headers.get("connection", "").lower() != "close", end


class _Connection(asyncio.Protocol):
    """One connection to a pod: one request at a time, its answer handed over once whole."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[Answer, bool]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's transports subclass no asyncio class

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._hand_over(eof=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._hand_over(eof=True)

    def _hand_over(self, eof: bool) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = parse_answer(self.buffer, eof)
        except Broken as e:
            waiter.set_exception(e)
            return
        if parsed is not None:
            answer, keep, used = parsed
            keep = keep and used == len(self.buffer) and not self.lost  # nothing stray may follow an answer
            waiter.set_result((answer, keep))
        elif eof:
            waiter.set_exception(ConnectionResetError("the connection closed before the answer was whole"))

    def exchange(self, message: bytes) -> asyncio.Future[tuple[Answer, bool]]:
        if self.lost or self.transport is None or self.buffer:
            raise ConnectionResetError("the kept connection was closed (or sent bytes) while idle")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(message)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(self, connect_timeout: float = 2.0) -> None:
        self.connect_timeout = connect_timeout
        self.idle: dict[str, list[_Connection]] = defaultdict(list)

    async def _connect(self, address: str) -> _Connection:
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            _transport, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, host.strip("[]"), int(port)), self.connect_timeout
            )
        except (OSError, TimeoutError) as e:
            raise Unreachable(f"{address}: {e or type(e).__name__}") from e
        return conn

    def _kept(self, address: str) -> _Connection | None:
        idle = self.idle[address]
        while idle:
            conn = idle.pop()
            if not conn.lost:
                return conn
        return None

    async def request(
        self, address: str, method: str, target: str, headers: dict[str, str], body: bytes, seconds: float
    ) -> Answer:
        """The answer within `seconds` (TimeoutError past them; the connection is then closed, never reused)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {address}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(seconds):
            conn = self._kept(address)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(address)
            try:
                answer, keep = await conn.exchange(message)
            except ConnectionError as e:
                conn.close()
                if not reused:
                    raise Broken(f"{address}: {e or type(e).__name__}") from e
                # A kept connection the server had closed while idle: once more on a new one.
                conn = await self._connect(address)
                try:
                    answer, keep = await conn.exchange(message)
                except ConnectionError as e2:
                    conn.close()
                    raise Broken(f"{address}: {e2 or type(e2).__name__}") from e2
            except BaseException:
                conn.close()  # a timeout, a cancellation or a garbled answer: the connection's state is unknown
                raise
        if keep and len(self.idle[address]) < MAX_IDLE_PER_ADDRESS:
            conn.buffer.clear()
            conn.waiter = None
            self.idle[address].append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()
