"""run_stages: the one loop edge and central run their asyncio stages in."""

from __future__ import annotations

import asyncio

import pytest

from hazardwatch.kernel.tasks import StageCrashed, run_stages

pytestmark = pytest.mark.quick


async def _forever(log: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        log.append(f"{name} ended")


async def _crash() -> None:
    await asyncio.sleep(0.01)
    raise ValueError("disk gone")


def test_a_crashed_stage_stops_the_rest_and_names_itself() -> None:
    log: list[str] = []

    async def main() -> None:
        stages = [
            asyncio.create_task(_forever(log, "patrol"), name="patrol"),
            asyncio.create_task(_crash(), name="housekeeping"),
        ]
        await run_stages("edge", stages, asyncio.Event())

    with pytest.raises(StageCrashed, match="edge stage housekeeping crashed") as info:
        asyncio.run(main())
    assert isinstance(info.value.__cause__, ValueError)
    assert log == ["patrol ended"]


def test_stop_cancels_every_stage_after_the_drain_step() -> None:
    log: list[str] = []

    async def drain() -> None:
        log.append("drained")

    async def main() -> None:
        stop = asyncio.Event()
        stages = [asyncio.create_task(_forever(log, n), name=n) for n in ("delivery", "events")]
        asyncio.get_running_loop().call_later(0.02, stop.set)
        await run_stages("central", stages, stop, before_cancel=drain)
        assert all(t.cancelled() for t in stages)

    asyncio.run(main())
    assert log[0] == "drained"
    assert sorted(log[1:]) == ["delivery ended", "events ended"]


def test_every_stage_is_cancelled_even_when_the_drain_step_fails() -> None:
    """A drain that raises (or is itself cancelled) must not leave the stages running past the caller's
    close of what they use."""
    log: list[str] = []

    async def drain() -> None:
        raise RuntimeError("drain failed")

    async def main() -> None:
        stop = asyncio.Event()
        stop.set()
        stages = [asyncio.create_task(_forever(log, n), name=n) for n in ("delivery", "events")]
        with pytest.raises(RuntimeError, match="drain failed"):
            await run_stages("central", stages, stop, before_cancel=drain)
        assert all(t.cancelled() for t in stages)  # here, before asyncio.run's own clean-up
        assert sorted(log) == ["delivery ended", "events ended"]

    asyncio.run(main())
