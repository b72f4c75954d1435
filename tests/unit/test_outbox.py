"""The outbox keeps order and sequence across restarts and drops by policy when full."""

from __future__ import annotations

import json

import pytest

from hazardwatch.edge.publish.outbox import Outbox, OutboxError

pytestmark = pytest.mark.quick


def alert_builder(n: int):
    return lambda seq: json.dumps({"n": n, "seq": seq}).encode()


def test_order_and_sequence_survive_reopen(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=100)
    assert [box.put_alert("t/a", alert_builder(i)) for i in range(3)] == [0, 1, 2]
    box.put_status("t/s", b"online")
    box.close()
    box = Outbox(tmp_path / "o.db", max_messages=100)
    pending = box.pending(0, 10)
    assert [m.topic for m in pending] == ["t/a", "t/a", "t/a", "t/s"]
    assert [json.loads(m.payload)["seq"] for m in pending[:3]] == [0, 1, 2]
    assert pending[3].retain and not pending[0].retain
    box.ack(pending[0].id)
    assert box.put_alert("t/a", alert_builder(9)) == 3  # the sequence never goes back
    assert box.depth() == 4


def test_newer_status_supersedes_unsent_one(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=100)
    box.put_status("cam1/status", b"offline")
    box.put_status("cam2/status", b"online")
    box.put_status("cam1/status", b"online")
    assert [(m.topic, m.payload) for m in box.pending(0, 10)] == [
        ("cam2/status", b"online"),
        ("cam1/status", b"online"),
    ]


def test_full_outbox_drops_oldest_status_first_then_oldest_alert(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=100)
    for i in range(50):
        box.put_status(f"cam{i}/status", b"x")
    for i in range(60):
        box.put_alert("a", alert_builder(i))
    kinds = [m.kind for m in box.pending(0, 1000)]
    assert kinds.count("alert") == 60 and kinds.count("status") == 40
    assert box.dropped() == {"alert": 0, "status": 10}
    for i in range(60, 150):
        box.put_alert("a", alert_builder(i))
    pending = box.pending(0, 1000)
    assert len(pending) == 100 and all(m.kind == "alert" for m in pending)
    assert [json.loads(m.payload)["n"] for m in pending] == list(range(50, 150))
    assert box.dropped() == {"alert": 50, "status": 50}


def test_unwritable_outbox_raises_clear_error(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=100)
    box.close()
    (tmp_path / "o.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match=r"o\.db"):
        Outbox(tmp_path / "o.db", max_messages=100)
