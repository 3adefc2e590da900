"""A small load generator on aiohttp: closed loop (N clients, each sends its next request when the last answered) and
open loop (requests start at a fixed rate whatever the server does; latency counts from the scheduled start, so a
slow server is not hidden by a slowed-down client). Loopback only; bounded in time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np

TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass
class Result:
    label: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    @property
    def error_rate(self) -> float:
        total = len(self.latencies) + self.errors
        return self.errors / total if total else 0.0


async def _one(session: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            return resp.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def closed_loop(url: str, body: bytes, concurrency: int, seconds: float) -> Result:
    result = Result(f"closed c={concurrency}", seconds)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                if await _one(session, url, body):
                    result.latencies.append(time.perf_counter() - start)
                else:
                    result.errors += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return result


async def open_loop(url: str, body: bytes, rate: float, seconds: float) -> Result:
    result = Result(f"open {rate:g}/s", seconds)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        start = time.perf_counter()
        tasks = []

        async def fire(scheduled: float) -> None:
            if await _one(session, url, body):
                result.latencies.append(time.perf_counter() - scheduled)
            else:
                result.errors += 1

        n = int(rate * seconds)
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(scheduled)))
        await asyncio.gather(*tasks)
    return result


async def grpc_closed_loop(target: str, request: bytes, concurrency: int, seconds: float) -> Result:
    """The closed loop over gRPC: `request` is a serialised ModelInferRequest sent as is (no stubs, so any server of
    the protocol is measured the same way), over one channel shared by the clients, as gRPC clients do (HTTP/2
    streams on one connection)."""
    import grpc

    result = Result(f"gRPC c={concurrency}", seconds)
    async with grpc.aio.insecure_channel(target) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    await infer(request, timeout=5)
                    result.latencies.append(time.perf_counter() - start)
                except grpc.aio.AioRpcError:
                    result.errors += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return result
