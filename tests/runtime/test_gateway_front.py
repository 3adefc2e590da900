"""The gateway's HTTP/1.1 server (gateway/front.py) over real sockets, as clients that are not aiohttp use it:
pipelined requests, `Expect: 100-continue` (curl's default for larger bodies), chunked bodies, HTTP/1.0, bad requests
(a JSON 4xx, then the connection closes), a failing handler (500, the server goes on), a client that leaves while its
request is held, and a stop that lets the request in flight finish. On uvloop and on asyncio's own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
import pytest
import uvloop

from modelfleet.devcluster.processes import free_port
from modelfleet.gateway.front import HttpFront, Reply, Request

Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(head[0].split(" ")[1]), headers, orjson.loads(body) if body else None


class Echo:
    """A handler that answers with what it got; `hold` makes it wait (a model at zero) until released."""

    def __init__(self) -> None:
        self.hold = False
        self.released = asyncio.Event()
        self.cancelled = 0

    async def __call__(self, request: Request) -> Reply:
        if request.path == "/fail":
            raise RuntimeError("a bug in the handler")
        if self.hold:
            try:
                await self.released.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        payload = {"method": request.method, "path": request.path, "body": request.body.decode()}
        return Reply(200, orjson.dumps(payload), {"Content-Type": "application/json"})


async def with_front(test: Callable[[int, Echo, HttpFront], Awaitable[None]]) -> None:
    echo = Echo()
    front = HttpFront(echo, max_body=1000)
    port = free_port()
    await front.start("127.0.0.1", port)
    try:
        await test(port, echo, front)
    finally:
        await front.stop(grace=1.0)


def test_pipelined_requests_are_answered_in_order_and_100_continue_and_chunked_bodies_work(run: Runner) -> None:
    async def test(port: int, _echo: Echo, _front: HttpFront) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
            b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /c%20d HTTP/1.1\r\n\r\n"
        )
        got = [await read_answer(reader) for _ in range(3)]
        assert [(status, body["path"], body["body"]) for status, _h, body in got] == [
            (200, "/a", "{}"),
            (200, "/b", "abcde"),
            (200, "/c d", ""),
        ]
        writer.write(b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        status, headers, body = await read_answer(reader)
        assert (status, body["body"], headers.get("connection")) == (200, "hello", None)  # still kept
        writer.close()

    run(with_front(test))


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"HELLO\r\n\r\n", 400, "not an HTTP/1.x request line"),
        (b"POST /a HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413, "over 1000 bytes"),
        (b"GET / HTTP/1.1\r\nX-Id: a\nEvil: 1\r\n\r\n", 400, "malformed header line"),
    ],
    ids=["garbage", "body-over-bound", "bare-line-feed"],
)
def test_a_bad_request_gets_a_json_error_and_the_connection_closes(
    run: Runner, raw: bytes, status: int, words: str
) -> None:
    async def test(port: int, _echo: Echo, _front: HttpFront) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        got, headers, body = await read_answer(reader)
        assert (got, headers["connection"], headers["content-type"]) == (status, "close", "application/json")
        assert words in body["error"]
        assert await reader.read() == b""  # closed by the server
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)  # the server goes on
        writer2.write(b"GET /ok HTTP/1.0\r\n\r\n")
        ok, headers2, _body = await read_answer(reader2)
        assert (ok, headers2["connection"]) == (200, "close")  # HTTP/1.0: closed after the answer
        assert await reader2.read() == b""

    run(with_front(test))


def test_a_failing_handler_is_a_500_and_a_client_that_leaves_stops_its_held_request(run: Runner) -> None:
    async def test(port: int, echo: Echo, _front: HttpFront) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /fail HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n")
        status, _h, body = await read_answer(reader)
        assert status == 500 and "see its log" in body["error"]
        status, _h, body = await read_answer(reader)
        assert (status, body["path"]) == (200, "/after")  # the same connection goes on
        echo.hold = True
        writer.write(b"GET /held HTTP/1.1\r\n\r\n")
        await asyncio.sleep(0.2)
        writer.close()
        for _ in range(50):
            if echo.cancelled:
                break
            await asyncio.sleep(0.02)
        assert echo.cancelled == 1

    run(with_front(test))


def test_a_stop_lets_the_request_in_flight_finish_closes_idle_connections_and_refuses_new_ones(run: Runner) -> None:
    async def test(port: int, echo: Echo, front: HttpFront) -> None:
        idle_reader, _idle_writer = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        echo.hold = True
        writer.write(b"GET /in-flight HTTP/1.1\r\n\r\n")
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(front.stop(grace=5.0))
        await asyncio.sleep(0.2)
        assert await idle_reader.read() == b""  # the idle connection is closed at once
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        echo.released.set()
        status, headers, body = await read_answer(reader)
        assert (status, body["path"], headers["connection"]) == (200, "/in-flight", "close")
        await asyncio.wait_for(stopping, 5.0)

    run(with_front(test))
