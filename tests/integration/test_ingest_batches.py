"""One ingest batch (one transaction) holding several events of one alert, a redelivery and a neighbour:
the batch's deferred writes and prefetched state must give exactly what applying them one by one gives."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest

from hazardwatch.central.config import BrokerConfig, CentralConfig
from hazardwatch.central.ingest.mqtt_ingest import Incoming, MqttIngest
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.services import incidents
from hazardwatch.central.store import Database, Tx, database
from hazardwatch.contract import Alert
from hazardwatch.harness.central_proc import alert_payload
from hazardwatch.harness.databases import temporary_database

AT = 1_700_000_000.0


def _msg(doc: dict, mid: int) -> tuple[Incoming, Alert]:
    topic = f"hazardwatch/v1/{doc['edge_id']}/alerts/{doc['camera_id']}"
    return Incoming(topic, json.dumps(doc).encode(), mid, 1), Alert.model_validate(doc)


def _events() -> list[dict]:
    north = dict(edge="e1", cam="north", alert_id="alert-north-1", lat=22.65, lon=114.08, at=AT)
    east = dict(edge="e2", cam="east", alert_id="alert-east-1", lat=22.66, lon=114.09, at=AT + 1)
    return [
        alert_payload(0, **north),
        alert_payload(1, **{**north, "at": AT + 2}, state="update", score=0.95),
        alert_payload(1, **{**north, "at": AT + 2}, state="update", score=0.95),  # redelivered in the batch
        alert_payload(0, **east),
        alert_payload(2, **{**north, "at": AT + 3}, state="end"),
        alert_payload(5, edge="e3", cam="far", alert_id="alert-far-1", lat=-30.0, lon=10.0, at=AT),
    ]


def _state(db: Database) -> dict:
    with db.tx() as tx:
        return {
            "incidents": tx.execute(
                "SELECT camera_count, active_alerts, score_max, version, state FROM incidents ORDER BY id"
            ),
            "members": tx.execute(
                "SELECT edge_id, alert_id, incident_id, active, last_seq FROM incident_alerts ORDER BY edge_id"
            ),
            "events": tx.scalar("SELECT COUNT(*) FROM alert_events"),
            "timeline": tx.execute("SELECT incident_id, kind FROM incident_events ORDER BY id"),
        }


@pytest.mark.parametrize("batch_size", [1, 6])
def test_a_batch_gives_what_one_by_one_gives(database_url, batch_size):
    db = Database(database_url)
    db.migrate()
    try:
        cfg = CentralConfig(broker=BrokerConfig(), database={"url": database_url})
        ingest = MqttIngest(cfg, db, CentralMetrics(), lambda n: None)
        msgs = [_msg(doc, k) for k, doc in enumerate(_events())]
        stored = sum(ingest.store(msgs[i : i + batch_size]) for i in range(0, len(msgs), batch_size))
        assert stored == 5  # the redelivery is a duplicate
        state = _state(db)
    finally:
        db.close()
    assert state["events"] == 5
    assert [m[:2] + m[3:] for m in state["members"]] == [
        ("e1", "alert-north-1", 0, 2),
        ("e2", "alert-east-1", 1, 0),
        ("e3", "alert-far-1", 1, 5),
    ]
    north, east, far = (m[2] for m in state["members"])
    assert north == east != far  # the neighbour joined north's incident, whatever the batching
    assert state["incidents"][0][:2] == (2, 1)  # two cameras, one alert still active
    assert [k for _i, k in state["timeline"]].count("alert") == 5


def _updates(cameras: int, seq: int) -> list[tuple[Incoming, Alert]]:
    """One event of each of `cameras` cameras a degree apart (each its own incident)."""
    state = "new" if seq == 0 else "update"
    docs = [
        alert_payload(seq, edge=f"n{cameras}-{k}", cam="c", alert_id=f"alert-n{cameras}-{k:04d}", state=state,
                      lat=-60.0 + k, lon=float(cameras), score=0.5 + 0.01 * seq)
        for k in range(cameras)
    ]  # fmt: skip
    return [_msg(doc, seq * cameras + k) for k, doc in enumerate(docs)]


def test_a_batch_of_updates_costs_the_same_statements_whatever_its_size(database_url, monkeypatch):
    """Alerts already in their incidents: memberships, history, timeline and aggregates go out as one
    statement each for the batch, so 5 updates and 60 take the same number of statements."""
    sent: list[str] = []
    for name in ("execute", "write", "write_rows", "executemany", "lock_all"):
        real = getattr(Tx, name)
        monkeypatch.setattr(Tx, name, lambda self, *a, _real=real, _name=name: sent.append(_name) or _real(self, *a))
    db = Database(database_url)
    db.migrate()
    try:
        cfg = CentralConfig(broker=BrokerConfig(), database={"url": database_url})
        ingest = MqttIngest(cfg, db, CentralMetrics(), lambda n: None)
        counts = []
        for size in (5, 60):
            assert ingest.store(_updates(size, 0)) == size
            sent.clear()
            assert ingest.store(_updates(size, 1)) == size
            counts.append(len(sent))
        with db.tx() as tx:
            members = tx.execute("SELECT COUNT(*), MIN(last_seq), SUM(active) FROM incident_alerts")
            versions = tx.execute("SELECT COUNT(*), MIN(camera_count), MAX(score_max) FROM incidents")
    finally:
        db.close()
    assert counts[0] == counts[1] <= 13, counts
    assert members == [(65, 1, 65)]
    assert versions == [(65, 1, 0.51)]


def test_write_rows_splits_a_batch_within_the_parameter_limit(database_url, monkeypatch):
    """One statement per chunk of rows that fits the store's parameter limit, rows kept in order."""
    chunks: list[int] = []
    real = database._values_list
    monkeypatch.setattr(database, "_values_list", lambda n, *a: chunks.append(n) or real(n, *a))
    db = Database(database_url)
    try:
        with db.tx() as tx:
            tx.execute("CREATE TEMPORARY TABLE pairs (k INTEGER NOT NULL, v TEXT)")
            tx._max_params = 5  # two rows of two per statement
            tx.write_rows("INSERT INTO pairs(k, v) VALUES {rows}", [(k, f"v{k}" if k % 3 else None) for k in range(7)])
            rows = tx.execute("SELECT k, v FROM pairs ORDER BY k")
    finally:
        db.close()
    assert chunks == [2, 2, 2, 1]
    assert rows == [(k, f"v{k}" if k % 3 else None) for k in range(7)]


@contextlib.contextmanager
def _central(database_url: str) -> Iterator[tuple[Database, MqttIngest]]:
    """A migrated store and an ingest on it, without a broker (`store` is called directly)."""
    db = Database(database_url)
    db.migrate()
    try:
        cfg = CentralConfig(broker=BrokerConfig(), database={"url": database_url})
        yield db, MqttIngest(cfg, db, CentralMetrics(), lambda n: None)
    finally:
        db.close()


def _after_a_false_alarm(database_url: str, batch_size: int, sent: list[str]) -> tuple[dict, int]:
    """An operator marks north's first alert a false alarm; then one batch (or one message at a time)
    brings a look inside its region, a clearly stronger one that breaks through, and another look inside
    it: the third is no longer suppressed, whatever the batching. Returns the outcome and how many
    statements read the suppressions."""
    with _central(database_url) as (db, ingest):
        assert ingest.store([_msg(alert_payload(0, alert_id="alert-north-1", score=0.6), 0)]) == 1
        with db.tx() as tx:
            first = tx.scalar("SELECT MIN(id) FROM incidents")
            incidents.act(tx, first, "false_alarm", "amy", "sun glare", time.time(), suppress_s=3600)
        looks = [
            alert_payload(1, alert_id="alert-north-2", score=0.65, x=(0.47, 0.53)),  # quiet
            alert_payload(2, alert_id="alert-north-3", score=0.95),  # +0.35: breaks through
            alert_payload(3, alert_id="alert-north-4", score=0.65, x=(0.47, 0.53)),  # the suppression ended
        ]
        msgs = [_msg(doc, k + 1) for k, doc in enumerate(looks)]
        sent.clear()
        assert sum(ingest.store(msgs[i : i + batch_size]) for i in range(0, len(msgs), batch_size)) == 3
        reads = sum("FROM suppressions" in sql for sql in sent)
        with db.tx() as tx:
            return {
                "members": tx.execute("SELECT alert_id, incident_id FROM incident_alerts ORDER BY alert_id"),
                "incidents": tx.execute("SELECT id, state, previous_id FROM incidents ORDER BY id"),
                "suppressed": tx.execute(
                    "SELECT incident_id, detail FROM incident_events WHERE kind = 'alert' AND detail LIKE "
                    "'%suppressed_by%' ORDER BY id"
                ),
                "suppression": tx.execute("SELECT quiet_count, ended_by, ended_at IS NULL FROM suppressions"),
            }, reads


def test_a_false_alarm_suppresses_the_next_batch_read_once_and_kept_current(database_url, tmp_path, monkeypatch):
    """The batch reads its cameras' suppressions in one statement; a break-through within the batch ends
    the suppression for the alerts after it, exactly as one message at a time does."""
    sent: list[str] = []
    real = Tx.execute
    monkeypatch.setattr(Tx, "execute", lambda self, sql, *a: sent.append(sql) or real(self, sql, *a))
    (tmp_path / "other").mkdir()
    with temporary_database("sqlite" if database_url.startswith("sqlite") else "postgres", tmp_path / "other") as url:
        one_by_one, reads = _after_a_false_alarm(url, 1, sent)
    assert reads == 3  # one per batch of one
    whole, reads = _after_a_false_alarm(database_url, 3, sent)
    assert reads == 1
    assert whole == one_by_one
    first, broken = whole["incidents"][0][0], whole["incidents"][1]
    assert whole["incidents"][0][1] == "false_alarm" and broken[2] == first
    assert dict(whole["members"]) == {
        "alert-north-1": first,
        "alert-north-2": first,
        "alert-north-3": broken[0],
        "alert-north-4": broken[0],
    }
    assert [(i, json.loads(d)["alert_id"]) for i, d in whole["suppressed"]] == [(first, "alert-north-2")]
    assert whole["suppression"] == [(1, "system", False)]


def test_a_new_alert_costs_two_reads_whatever_the_batch(database_url, monkeypatch):
    """A new alert's round trips: its correlation candidates and its incident's INSERT ... RETURNING; the
    batch's suppressions, memberships and events are read once for the batch (5 and 60 new alerts)."""
    reads: list[str] = []
    real = Tx.execute
    monkeypatch.setattr(Tx, "execute", lambda self, sql, *a: reads.append(sql) or real(self, sql, *a))
    counts = []
    with _central(database_url) as (_db, ingest):
        for size in (5, 60):
            reads.clear()
            assert ingest.store(_updates(size, 0)) == size
            counts.append(len(reads))
    assert counts[1] - counts[0] == 2 * (60 - 5), counts
