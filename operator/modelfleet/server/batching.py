"""Adaptive micro-batching for models whose per-call cost dominates (random forests: the cost of one row is close to
the cost of thirty). Requests that arrive while a batch is predicting are merged into the next batch, up to
`max_batch` rows; a lone request waits at most `max_wait` seconds for company. Prediction runs on a worker thread so
the event loop keeps accepting requests meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from modelfleet.server.model import ServedModel

Item = tuple[dict[str, np.ndarray], "asyncio.Future[tuple[np.ndarray, np.ndarray | None]]"]


class MicroBatcher:
    def __init__(
        self, model: ServedModel, max_batch: int, max_wait: float, observe: Callable[[int], None] = lambda _rows: None
    ) -> None:
        self.model, self.max_batch, self.max_wait, self.observe = model, max_batch, max_wait, observe
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def submit(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        future: asyncio.Future[tuple[np.ndarray, np.ndarray | None]] = asyncio.get_running_loop().create_future()
        await self.queue.put((columns, future))
        return await future

    @staticmethod
    def _rows(item: Item) -> int:
        return len(next(iter(item[0].values())))

    async def _collect(self) -> list[Item]:
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        rows = self._rows(batch[0])
        deadline = loop.time() + self.max_wait
        while rows < self.max_batch:
            try:
                item = self.queue.get_nowait()  # whatever queued up while the last batch ran: no waiting
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            batch.append(item)
            rows += self._rows(item)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(cols, fut) for cols, fut in batch if not fut.cancelled()]
            if not live:
                continue
            merged = {k: np.concatenate([cols[k] for cols, _ in live]) for k in live[0][0]}
            self.observe(len(next(iter(merged.values()))))
            try:
                pred, proba = await loop.run_in_executor(None, self.model.predict, merged)
            except Exception as e:  # the model's own error goes back to every request of the batch
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            offset = 0
            for cols, fut in live:
                n = len(next(iter(cols.values())))
                result: Any = (pred[offset : offset + n], None if proba is None else proba[offset : offset + n])
                offset += n
                if not fut.done():
                    fut.set_result(result)
