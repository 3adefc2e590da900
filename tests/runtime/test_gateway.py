"""The gateway's proxy over real HTTP: stand-in pods (aiohttp servers on loopback) behind it, the routing table fed as
the watches would. Forwarding and pass-through, the 404 naming known models, holding requests for a model at zero
until a pod is ready (one scale-up request for many), the bound (503 + Retry-After), a full queue, a pod that refuses
connections, one that does not answer, and the metrics. Each on uvloop (what the gateway serves on) and on
asyncio's own loop (where uvloop is not installed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web

from modelfleet.devcluster.processes import free_port
from modelfleet.gateway.front import HttpFront
from modelfleet.gateway.proxy import Gateway
from modelfleet.gateway.routing import Endpoint, ModelEntry, RoutingTable


async def stand_in_pod(name: str, delay: float = 0.0) -> tuple[web.AppRunner, int]:
    """A pod's model server as far as the gateway can tell: answers infer with its own name, 422 for a bad body."""

    async def infer(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        body = await request.json()
        if body.get("bad"):
            return web.json_response({"error": "the model rejected the input"}, status=422)
        return web.json_response({"pod": name, "path": request.path, "id": request.headers.get("X-Request-Id")})

    app = web.Application()
    app.add_routes([web.post("/v2/models/{name}/infer", infer)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


def endpoint(pod: str, port: int, model: str = "iris", version: str = "1") -> Endpoint:
    return Endpoint(pod, model, version, f"127.0.0.1:{port}")


async def with_gateway(
    table: RoutingTable,
    test: Callable[[str, Gateway, aiohttp.ClientSession, list[str]], Awaitable[None]],
    **options: Any,
) -> None:
    scale_ups: list[str] = []

    async def scale_up(model: str) -> None:
        scale_ups.append(model)

    gateway = Gateway(table, "team-a", scale_up, **options)
    front = HttpFront(gateway.handle)
    port = free_port()
    await front.start("127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as client:
            await test(f"http://127.0.0.1:{port}", gateway, client, scale_ups)
    finally:
        await front.stop(grace=1.0)
        gateway.stop()


async def post(client: aiohttp.ClientSession, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any, Any]:
    async with client.post(url, json=body or {"inputs": []}, headers={"X-Request-Id": "r-1"}) as r:
        return r.status, await r.json(), r.headers


def test_requests_go_to_ready_pods_in_turn_and_answers_pass_through(run: Runner) -> None:
    async def go() -> None:
        (a, pa), (b, pb) = await stand_in_pod("a"), await stand_in_pod("b")
        table = RoutingTable()
        table.set_model(ModelEntry("iris"))
        table.set_pod("a", endpoint("a", pa))
        table.set_pod("b", endpoint("b", pb))

        async def test(url: str, gw: Gateway, client: aiohttp.ClientSession, _s: list[str]) -> None:
            answers = [await post(client, f"{url}/v2/models/iris/infer") for _ in range(4)]
            assert [(s, body["pod"]) for s, body, _h in answers] == [(200, "a"), (200, "b"), (200, "a"), (200, "b")]
            assert answers[0][1]["id"] == "r-1" and answers[0][1]["path"] == "/v2/models/iris/infer"
            status, body, _h = await post(client, f"{url}/v2/models/iris/infer", {"bad": True})
            assert (status, body) == (422, {"error": "the model rejected the input"})  # the server's own answer
            async with client.get(f"{url}/metrics") as r:
                text = await r.text()
            assert 'modelfleet_gateway_requests_total{code="200",model="iris",version="1"} 4.0' in text
            assert 'modelfleet_gateway_requests_total{code="422",model="iris",version="1"} 1.0' in text

        await with_gateway(table, test)
        await a.cleanup()
        await b.cleanup()

    run(go())


def test_an_unknown_model_is_a_404_naming_the_known_ones(run: Runner) -> None:
    async def test(url: str, _gw: Gateway, client: aiohttp.ClientSession, scale_ups: list[str]) -> None:
        status, body, _h = await post(client, f"{url}/v2/models/nope/infer")
        assert status == 404
        assert body["error"] == "model 'nope' is not served in namespace team-a; known models: ['iris', 'wine']"
        assert scale_ups == []

    table = RoutingTable()
    table.set_model(ModelEntry("iris"))
    table.set_model(ModelEntry("wine"))
    run(with_gateway(table, test))


def test_requests_for_a_model_at_zero_wait_for_its_pod_and_ask_for_it_once(run: Runner) -> None:
    async def go() -> None:
        runner, port = await stand_in_pod("cold")
        table = RoutingTable()
        table.set_model(ModelEntry("sleepy", cold_start_timeout=10.0, scale_to_zero=True))

        async def test(url: str, gw: Gateway, client: aiohttp.ClientSession, scale_ups: list[str]) -> None:
            held = [asyncio.create_task(post(client, f"{url}/v2/models/sleepy/infer")) for _ in range(5)]
            await asyncio.sleep(0.5)
            assert not any(t.done() for t in held)  # held, not failed
            assert scale_ups == ["sleepy"]  # one request to the operator for five held requests
            async with client.get(f"{url}/metrics") as r:
                assert 'modelfleet_gateway_queue_length{model="sleepy"} 5.0' in await r.text()
            table.set_pod("cold", endpoint("cold", port, model="sleepy"))  # the watch: a pod became ready
            gw.table_changed()
            answers = await asyncio.gather(*held)
            assert [(s, body["pod"]) for s, body, _h in answers] == [(200, "cold")] * 5
            async with client.get(f"{url}/metrics") as r:
                text = await r.text()
            assert 'modelfleet_gateway_cold_start_seconds_count{model="sleepy"} 5.0' in text
            assert 'modelfleet_gateway_queue_length{model="sleepy"} 0.0' in text
            # Back at zero soon after (well within the bound): the next cold start asks again, once.
            table.set_pod("cold", None)  # the watch: the pod went
            gw.table_changed()
            again = [asyncio.create_task(post(client, f"{url}/v2/models/sleepy/infer")) for _ in range(3)]
            await asyncio.sleep(0.5)
            assert scale_ups == ["sleepy", "sleepy"]
            table.set_pod("cold", endpoint("cold", port, model="sleepy"))
            gw.table_changed()
            assert [s for s, _b, _h in await asyncio.gather(*again)] == [200] * 3

        await with_gateway(table, test)
        await runner.cleanup()

    run(go())


def test_no_pod_within_the_bound_is_a_503_with_retry_after_and_a_full_queue_is_refused_at_once(run: Runner) -> None:
    async def test(url: str, _gw: Gateway, client: aiohttp.ClientSession, _s: list[str]) -> None:
        started = time.monotonic()
        held = [asyncio.create_task(post(client, f"{url}/v2/models/stuck/infer")) for _ in range(2)]
        await asyncio.sleep(0.3)
        status, body, headers = await post(client, f"{url}/v2/models/stuck/infer")  # the third: over the bound of 2
        assert status == 503 and headers["Retry-After"] == "7", body
        assert body["error"] == "model 'stuck' has no ready pod and 2 requests already wait"
        assert time.monotonic() - started < 1.0  # refused, not held
        for status, body, headers in await asyncio.gather(*held):
            assert status == 503 and headers["Retry-After"] == "7"
            assert body["error"] == "model 'stuck' has no ready pod after waiting 1.5s (serving.coldStartTimeout)"
        assert time.monotonic() - started >= 1.5  # held for the whole bound, then answered

    table = RoutingTable()
    table.set_model(ModelEntry("stuck", cold_start_timeout=1.5, scale_to_zero=True))
    run(with_gateway(table, test, max_queue=2, retry_after=7))


def test_a_pod_that_refuses_connections_is_skipped_and_one_that_does_not_answer_is_a_504(run: Runner) -> None:
    async def go() -> None:
        runner, port = await stand_in_pod("good")
        slow, slow_port = await stand_in_pod("slow", delay=3.0)
        table = RoutingTable()
        table.set_model(ModelEntry("iris", cold_start_timeout=1.0))
        table.set_model(ModelEntry("lazy", cold_start_timeout=1.0))
        table.set_pod("dead", endpoint("dead", free_port()))  # nothing listens there
        table.set_pod("good", endpoint("good", port))
        table.set_pod("slow", endpoint("slow", slow_port, model="lazy"))

        async def test(url: str, _gw: Gateway, client: aiohttp.ClientSession, _s: list[str]) -> None:
            for _ in range(4):  # whichever pod's turn it is, the answer comes from the one that listens
                status, body, _h = await post(client, f"{url}/v2/models/iris/infer")
                assert (status, body["pod"]) == (200, "good")
            assert table.ejected.get("dead")  # out of the rotation for a while
            status, body, _h = await post(client, f"{url}/v2/models/lazy/infer")
            assert status == 504 and body["error"] == "pod slow of model 'lazy' did not answer in time"

        await with_gateway(table, test, upstream_timeout=1.0)
        await runner.cleanup()
        await slow.cleanup()

    run(go())


def test_chunked_answers_closed_connections_and_idle_timeouts_of_the_pods_are_handled(run: Runner) -> None:
    """The gateway's own HTTP/1.1 client: a chunked answer is read whole; `Connection: close` is not reused; a kept
    connection the pod closed while idle is replaced without the request failing."""

    async def go() -> None:
        async def chunked(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for part in (b'{"pod": ', b'"chunky", ', b'"n": 3}'):
                await resp.write(part)
            await resp.write_eof()
            return resp

        async def closing(_request: web.Request) -> web.Response:
            return web.json_response({"pod": "closing"}, headers={"Connection": "close"})

        app = web.Application()
        app.add_routes([web.post("/v2/models/chunky/infer", chunked), web.post("/v2/models/closing/infer", closing)])
        runner = web.AppRunner(app, keepalive_timeout=0.3)  # the pod drops idle connections after 0.3 s
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        table = RoutingTable()
        for model in ("chunky", "closing"):
            table.set_model(ModelEntry(model, cold_start_timeout=1.0))
            table.set_pod(model, endpoint(model, port, model=model))

        async def test(url: str, gw: Gateway, client: aiohttp.ClientSession, _s: list[str]) -> None:
            for _ in range(3):
                status, body, _h = await post(client, f"{url}/v2/models/chunky/infer")
                assert (status, body) == (200, {"pod": "chunky", "n": 3})
            assert len(gw.pool.idle[f"127.0.0.1:{port}"]) == 1  # one kept connection, reused
            await asyncio.sleep(0.6)  # the pod has closed it meanwhile
            status, body, _h = await post(client, f"{url}/v2/models/chunky/infer")
            assert (status, body["pod"]) == (200, "chunky")
            for _ in range(2):
                status, body, _h = await post(client, f"{url}/v2/models/closing/infer")
                assert (status, body) == (200, {"pod": "closing"})
            assert len(gw.pool.idle[f"127.0.0.1:{port}"]) <= 1  # closing answers are not kept

        await with_gateway(table, test)
        await runner.cleanup()

    run(go())
