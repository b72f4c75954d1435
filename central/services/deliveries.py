"""The delivery queue as operators see it: recent deliveries with counts by state, and retrying a
dead letter. The queue itself (claiming, retries, dead letters) is `notify/queue.py`."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from hazardwatch.central.notify import queue
from hazardwatch.central.store import Tx

HIDDEN = ("payload", "lease_until")  # the payload can be large; the lease is the worker's business


def listing(tx: Tx, state: str | None, limit: int, offset: int) -> dict[str, Any]:
    """Newest first; `state` is one of `queue.STATES` (the queue refuses others) or None for all."""
    rows = queue.list_deliveries(tx, state=cast("queue.State | None", state), limit=limit, offset=offset)
    items = [{k: v for k, v in dataclasses.asdict(d).items() if k not in HIDDEN} for d in rows]
    return {"items": items, "counts": queue.counts_by_state(tx)}


def retry(tx: Tx, delivery_id: int) -> bool:
    """Put a dead letter back in the queue; False when it is not one."""
    return queue.retry_dead(tx, delivery_id)
