"""The batched inference loop: frames from many visits share one model call on one thread.

Visits submit requests from the event loop and await their own result; `run` drains the queue in
batches of up to `max_batch` and hands each batch to `process` on the given executor (the engine's
single inference thread, so the predictor's state is only ever touched there). The patrol bench
drives this same class, so its figures are the engine's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

MAX_BATCH = 16

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Pending(Generic[Req, Res]):
    request: Req
    future: asyncio.Future[Res]


class InferenceBatcher(Generic[Req, Res]):
    """Queue of looks waiting for the model; one `run` task per batcher."""

    def __init__(
        self,
        process: Callable[[list[Req]], Sequence[Res]],
        executor: Executor,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._process = process
        self._executor = executor
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending[Req, Res]] = asyncio.Queue()

    async def submit(self, request: Req) -> Res:
        """Queue one request and wait for its result (or the batch's exception)."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(request, future))
        return await future

    async def run(self) -> None:
        """Drain the queue forever; a failed batch fails its own requests and the loop goes on."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._process, [p.request for p in batch])
            except Exception as exc:
                log.exception("inference failed for a batch of %d frames", len(batch))
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)
