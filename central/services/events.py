"""The change feed behind the dashboard's event stream: polls the store for changed incidents and
cameras (so a change made by any central instance reaches every dashboard) and fans them out.

It reads the store only; the HTTP layer turns a subscription into server-sent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from hazardwatch.central.services import places, views
from hazardwatch.central.store import Database

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
CLOSE = ""  # put in a subscriber's queue to end its stream; no frame is ever empty
SENT_LIMIT = 10_000


class EventHub:
    """Subscribers get SSE frames (`event: incident` or `event: camera`); `poke` polls at once."""

    def __init__(self, db: Database, interval_s: float = 0.3, areas: list[places.NamedArea] | None = None) -> None:
        self.db = db
        self.areas = areas or []
        self.interval_s = interval_s
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._since = time.time()
        self._sent: dict[tuple[str, Any, Any], float] = {}
        self._wake = asyncio.Event()
        self._closed = False

    def subscribe(self) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers.add(q)
        if self._closed:
            self._end(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[str]) -> None:
        self._subscribers.discard(q)

    def close(self) -> None:
        """End every stream now (shutdown). A page reconnects on its own and reloads what it shows; without
        this a stream waits for its next keepalive, and an open page holds a stopping central for a minute."""
        self._closed = True
        for q in list(self._subscribers):
            self._end(q)

    def _end(self, q: asyncio.Queue[str]) -> None:
        """Stop feeding q and tell its stream to end, dropping unread frames to make room for the signal."""
        self._subscribers.discard(q)
        while True:
            try:
                q.put_nowait(CLOSE)
                return
            except asyncio.QueueFull:
                q.get_nowait()

    def poke(self) -> None:
        self._wake.set()

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        def work() -> Any:
            with self.db.tx() as tx:
                return fn(tx, *args)

        return await asyncio.to_thread(work)

    def _changed_incidents(self, tx: Any, since: float) -> list[dict[str, Any]]:
        rows, _ = views.list_incidents(tx, views.IncidentFilter(since=since, limit=200))
        places.annotate(tx, rows, self.areas)
        return rows

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            if not self._subscribers:
                self._since = time.time() - 1
                continue
            since = self._since
            try:
                rows = await self._read(self._changed_incidents, since)
                cams = [c for c in await self._read(views.cameras) if c["updated_at"] >= since]
            except Exception:
                log.exception("event hub poll failed")
                continue
            # `since` is inclusive (changes may share a timestamp), so remember what went out at it.
            for kind, items, key in (("incident", rows, "id"), ("camera", cams, "camera_id")):
                for item in items:
                    ident = (kind, item.get("edge_id"), item[key])
                    if self._sent.get(ident) == item["updated_at"]:
                        continue
                    self._sent[ident] = item["updated_at"]
                    self._since = max(self._since, item["updated_at"])
                    self._publish(kind, item)
            if len(self._sent) > SENT_LIMIT:
                self._sent = {k: v for k, v in self._sent.items() if v >= self._since}

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        frame = f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        for q in list(self._subscribers):
            if q.full():  # a stalled client: its stream ends (it reconnects and reloads) rather than grow memory
                self._end(q)
            else:
                q.put_nowait(frame)
