"""The dashboard's live event stream (`GET /api/v1/events`, server-sent events) ends when it must: when
central stops (an open page must not hold a restart for a minute) and when a page reads too slowly to keep
up (it reconnects and reloads instead of showing "live" while receiving nothing)."""

from __future__ import annotations

import asyncio
import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hazardwatch.central.services.events import CLOSE, QUEUE_SIZE, EventHub
from hazardwatch.central.store import Database
from hazardwatch.harness.central_proc import OPERATOR, CentralProcess, write_central_config


def open_stream(url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {OPERATOR}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/event-stream")
    assert resp.readline() == b": connected\n"
    return conn, resp


@pytest.mark.mqtt
def test_central_with_an_open_page_stops_at_once_and_ends_its_stream(tmp_path: Path, mosquitto) -> None:
    cfg = write_central_config(tmp_path / "c.yaml", broker_port=mosquitto.port,
                               database_url=f"sqlite:///{tmp_path / 'c.db'}")  # fmt: skip
    central = CentralProcess(cfg, tmp_path / "c.log").start()
    conn, resp = open_stream(central.url)
    try:
        started = time.monotonic()
        assert central.stop(timeout=8) == 0  # before: the stream held it past its 15 s keepalive and more
        took = time.monotonic() - started
        rest = resp.read()  # the stream ended: EOF, not a timeout
        assert b"event:" not in rest
        assert took < 5, f"central took {took:.1f} s to stop with a page open"
    finally:
        conn.close()
        if central.child.alive():
            central.kill()


def test_a_page_too_slow_to_keep_up_has_its_stream_ended(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
        hub = EventHub(db)
        slow, fast = hub.subscribe(), hub.subscribe()
        for k in range(QUEUE_SIZE + 1):
            hub._publish("camera", {"n": k})
            if not fast.empty():
                fast.get_nowait()  # a page that keeps up
        frames = [slow.get_nowait() for _ in range(slow.qsize())]
        assert frames[-1] == CLOSE and CLOSE not in frames[:-1]  # its stream ends after what it had
        hub._publish("camera", {"n": "after"})
        assert slow.empty()  # no longer fed
        assert "after" in fast.get_nowait()  # the page that keeps up still is
        hub.close()
        assert fast.get_nowait() == CLOSE  # shutdown ends every stream
        late = hub.subscribe()
        assert late.get_nowait() == CLOSE  # and one that arrives while stopping
        db.close()

    asyncio.run(scenario())
