"""Group commit of delivery outcomes: attempts that end while an earlier write is still running are
recorded together in the next transaction, so a burst of deliveries costs a commit per batch, not one
per delivery. Each attempt still waits for its own outcome to be durable (and learns whether its lease
was still valid) before it counts as done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from hazardwatch.central.notify import queue
from hazardwatch.central.notify.policy import Decision
from hazardwatch.central.notify.queue import Delivery
from hazardwatch.central.store.database import Database

Outcomes = Sequence[tuple[Delivery, Decision]]


def write_outcomes(db: Database, outcomes: Outcomes, now: float) -> list[bool]:
    """Record several outcomes in one transaction; for each, False when its attempt had lost its lease."""
    kept = []
    with db.tx() as tx:
        for delivery, decision in outcomes:
            if decision.result == "delivered":
                kept.append(queue.mark_delivered(tx, delivery.id, delivery.attempts, now))
            elif decision.result == "retry":
                assert decision.next_attempt_at is not None
                kept.append(
                    queue.mark_retry(tx, delivery.id, delivery.attempts, decision.next_attempt_at, decision.error)
                )
            else:
                kept.append(queue.mark_dead(tx, delivery.id, delivery.attempts, decision.error))
    return kept


class Recorder:
    """`await record(delivery, decision)` -> kept; writes run one at a time in a worker thread."""

    def __init__(self, write: Callable[[Outcomes], list[bool]]) -> None:
        self._write = write
        self._pending: list[tuple[Delivery, Decision, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, delivery: Delivery, decision: Decision) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, decision, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                kept = await asyncio.to_thread(self._write, [(d, dec) for d, dec, _ in batch])
            except Exception as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (*_, done), k in zip(batch, kept, strict=True):
                if not done.done():
                    done.set_result(k)
