"""The gateway's HTTP/1.1 client to the model servers: keep-alive connections per pod address over asyncio streams,
and nothing else. aiohttp's client costs about as much per request as a model server's whole answer for a one-row
request (tracing hooks, cookie jar, timers, its own payload layer); this writes the request in one call and reads a
Content-Length or chunked answer.

Errors: `Unreachable` when no connection could be made (nothing was sent: another pod may be tried), `Broken` when the
connection failed after the request was sent, TimeoutError past the deadline."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

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


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UpstreamPool:
    def __init__(self, connect_timeout: float = 2.0) -> None:
        self.connect_timeout = connect_timeout
        self.idle: dict[str, list[Connection]] = defaultdict(list)

    async def _connect(self, address: str) -> Connection:
        host, _, port = address.rpartition(":")
        try:
            return await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), self.connect_timeout)
        except (OSError, TimeoutError) as e:
            raise Unreachable(f"{address}: {e or type(e).__name__}") from e

    async def request(
        self, address: str, method: str, target: str, headers: dict[str, str], body: bytes, seconds: float
    ) -> Answer:
        """The answer within `seconds` (TimeoutError past them; the connection is then closed, never reused)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {address}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(seconds):
            reused = bool(self.idle[address])
            conn = self.idle[address].pop() if reused else await self._connect(address)
            try:
                answer, keep = await self._exchange(conn, message)
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                conn[1].close()
                if not reused:
                    raise Broken(f"{address}: {e or type(e).__name__}") from e
                # A kept connection the server had closed while idle: once more on a new one.
                conn = await self._connect(address)
                try:
                    answer, keep = await self._exchange(conn, message)
                except (ConnectionError, asyncio.IncompleteReadError) as e2:
                    conn[1].close()
                    raise Broken(f"{address}: {e2 or type(e2).__name__}") from e2
            except BaseException:
                conn[1].close()  # a timeout or cancellation mid-answer: the connection's state is unknown
                raise
        if keep and len(self.idle[address]) < MAX_IDLE_PER_ADDRESS:
            self.idle[address].append(conn)
        else:
            conn[1].close()
        return answer

    async def _exchange(self, conn: Connection, message: bytes) -> tuple[Answer, bool]:
        reader, writer = conn
        writer.write(message)
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER_BYTES:
            raise Broken("answer headers too large")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError) as e:
            raise Broken(f"not an HTTP answer: {status_line[:80]!r}") from e
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(reader)
        else:
            body = await reader.read()  # ends with the connection
            return Answer(status, headers, body), False
        return Answer(status, headers, body), headers.get("connection", "").lower() != "close"

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    def close(self) -> None:
        for conns in self.idle.values():
            for _reader, writer in conns:
                writer.close()
        self.idle.clear()
