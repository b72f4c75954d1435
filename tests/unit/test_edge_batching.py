"""The engine's one inference loop: looks queued while the model runs share the next call."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from hazardwatch.edge.engine.batching import InferenceBatcher

pytestmark = pytest.mark.quick


def test_looks_queued_during_a_call_share_the_next_batch_in_order():
    gate = threading.Event()
    calls: list[list[int]] = []
    sizes: list[int] = []

    def process(batch: list[int]) -> list[int]:
        calls.append(list(batch))
        gate.wait(5)  # hold the first call so the next looks queue up behind it
        return [x * 10 for x in batch]

    async def main() -> list[int]:
        with ThreadPoolExecutor(1) as pool:
            batcher: InferenceBatcher[int, int] = InferenceBatcher(
                process, pool, max_batch=3, on_batch=lambda n, _s: sizes.append(n)
            )
            runner = asyncio.create_task(batcher.run())
            first = asyncio.create_task(batcher.submit(0))
            await asyncio.sleep(0.05)
            rest = [asyncio.create_task(batcher.submit(k)) for k in range(1, 6)]
            await asyncio.sleep(0.05)
            gate.set()
            out = await asyncio.gather(first, *rest)
            runner.cancel()
            return list(out)

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50]
    assert calls == [[0], [1, 2, 3], [4, 5]]
    assert sizes == [1, 3, 2]


def test_a_failed_batch_fails_its_own_looks_and_the_loop_goes_on():
    def process(batch: list[int]) -> list[int]:
        if -1 in batch:
            raise ValueError("model broke")
        return batch

    async def main() -> tuple[BaseException | int, int]:
        with ThreadPoolExecutor(1) as pool:
            batcher: InferenceBatcher[int, int] = InferenceBatcher(process, pool)
            runner = asyncio.create_task(batcher.run())
            bad = await asyncio.gather(batcher.submit(-1), return_exceptions=True)
            good = await batcher.submit(7)
            runner.cancel()
            return bad[0], good

    bad, good = asyncio.run(main())
    assert isinstance(bad, ValueError) and str(bad) == "model broke"
    assert good == 7
