"""How edge and central run their long-lived asyncio stages: until asked to stop, or until one crashes.

A crashed stage must stop the whole process (so its supervisor, systemd or Docker, restarts it) rather
than leave the others idling on without it; either way every stage is cancelled and awaited before the
caller closes what the stages used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


class StageCrashed(RuntimeError):
    """One stage ended with an exception (its cause); the text names the service and the stage."""


async def run_stages(
    service: str,
    stages: Sequence[asyncio.Task[Any]],
    stop: asyncio.Event,
    *,
    before_cancel: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Wait until `stop` is set or a stage ends; StageCrashed when one raised.

    `before_cancel` runs first on the way out (a stage that must drain before its peers go).
    """
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait([*stages, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and (exc := task.exception()) is not None:
                raise StageCrashed(f"{service} stage {task.get_name()} crashed") from exc
    finally:
        try:
            if before_cancel is not None:
                await before_cancel()
        finally:  # a failed or interrupted drain still stops every stage before the caller closes things
            for task in [*stages, stopper]:
                task.cancel()
            await asyncio.gather(*stages, stopper, return_exceptions=True)
