"""Central's ingest against events out of order and clocks from the network (issue 17, points 2 and 3).

Messages go through the real path (`validate` then `MqttIngest.store`: clamp, correlate, store) on SQLite
and PostgreSQL, without a broker: the broker's part is tested in test_hostile_mqtt.py.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.ingest.mqtt_ingest import Incoming, MqttIngest, validate
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.services import incidents, views
from hazardwatch.central.store import Database
from hazardwatch.contract import Alert
from hazardwatch.harness.central_proc import alert_payload

CFG = CentralConfig.model_validate(
    {"broker": {"host": "127.0.0.1", "port": 1}, "correlation": {"auto_resolve_after_s": 60}}
)
PREFIX = "hazardwatch"


@pytest.fixture
def ingest(database_url):
    db = Database(database_url)
    db.migrate()
    metrics = CentralMetrics()
    yield MqttIngest(CFG, db, metrics, on_stored=lambda n: None)
    db.close()


def send(ingest: MqttIngest, topic: str, doc: dict) -> int:
    msg = Incoming(topic, json.dumps(doc).encode(), 1, 1)
    return ingest.store([(msg, validate(msg, PREFIX))])


def rows(ingest: MqttIngest, sql: str, params: tuple = ()) -> list[tuple]:
    with ingest.db.tx() as tx:
        return tx.execute(sql, params)


def counter(ingest: MqttIngest, name: str, **labels: str) -> float:
    return ingest.metrics.registry.get_sample_value(name, labels) or 0.0


# -- point 3: events out of order ---------------------------------------------------------------------------
def test_same_edge_and_seq_under_another_alert_id_is_a_duplicate(ingest):
    now = time.time()
    assert send(ingest, "hazardwatch/v1/e1/alerts/north", alert_payload(77, alert_id="alert-aaaa-0001", at=now)) == 1
    again = alert_payload(77, alert_id="alert-bbbb-0002", at=now, cam="north")
    assert send(ingest, "hazardwatch/v1/e1/alerts/north", again) == 0
    assert rows(ingest, "SELECT COUNT(*) FROM alert_events WHERE edge_id = 'e1' AND seq = 77") == [(1,)]
    assert counter(ingest, "hazardwatch_central_messages_total", kind="alert", result="duplicate") == 1


LIFECYCLE = [(600, "new"), (601, "update"), (602, "end")]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_lifecycle_converges_whatever_the_arrival_order(ingest, order):
    now = time.time()
    for i in order:
        seq, state = LIFECYCLE[i]
        send(ingest, "hazardwatch/v1/e1/alerts/north", alert_payload(seq, state=state, at=now - 30 + i))
    assert rows(ingest, "SELECT active, last_seq FROM incident_alerts") == [(0, 602)]
    (incident,) = rows(ingest, "SELECT id, active_alerts FROM incidents")
    assert incident[1] == 0, "the incident still counts an active alert"
    assert rows(ingest, "SELECT COUNT(*) FROM alert_events") == [(3,)]  # the history keeps every event
    with ingest.db.tx() as tx:  # and the quiet incident resolves, as it would in order
        assert incidents.auto_resolve(tx, CFG, now + 120) == [incident[0]]


def test_a_late_update_never_revives_an_ended_alert(ingest):
    now = time.time()
    send(ingest, "hazardwatch/v1/e1/alerts/north", alert_payload(600, state="new", at=now - 20))
    send(ingest, "hazardwatch/v1/e1/alerts/north", alert_payload(602, state="end", at=now - 10))
    send(ingest, "hazardwatch/v1/e1/alerts/north", alert_payload(601, state="update", at=now - 15, score=0.95))
    assert rows(ingest, "SELECT active, score FROM incident_alerts") == [(0, 0.8)]


# -- point 2: clocks from the network -----------------------------------------------------------------------
def status(state: str, since: float, sent_at: float | None = None) -> dict:
    return {
        "schema_version": 1,
        "kind": "camera_status",
        "edge_id": "e1",
        "sent_at": since if sent_at is None else sent_at,
        "camera_id": "north",
        "state": state,
        "reason": "",
        "since": since,
    }


def test_a_status_from_the_far_future_cannot_pin_a_camera_offline(ingest):
    now = time.time()
    send(ingest, "hazardwatch/v1/e1/cameras/north/status", status("offline", 1e18))
    assert (
        counter(
            ingest, "hazardwatch_central_clock_clamped_total", kind="camera_status", field="since", direction="future"
        )
        == 1
    )
    time.sleep(0.01)
    send(ingest, "hazardwatch/v1/e1/cameras/north/status", status("online", time.time()))
    (cam,) = [c for c in views_cameras(ingest) if c["camera_id"] == "north"]
    assert cam["state"] == "online"
    assert cam["since"] <= time.time() + 1 and cam["since"] >= now - 1


def views_cameras(ingest: MqttIngest) -> list[dict]:
    with ingest.db.tx() as tx:
        return views.cameras(tx)


def test_availability_from_the_far_future_cannot_pin_an_edge(ingest):
    avail = {"schema_version": 1, "kind": "availability", "edge_id": "e1", "state": "offline", "sent_at": 1e18}
    send(ingest, "hazardwatch/v1/e1/availability", avail)
    send(ingest, "hazardwatch/v1/e1/availability", {**avail, "state": "online", "sent_at": time.time()})
    assert rows(ingest, "SELECT state FROM edges WHERE edge_id = 'e1'") == [("online",)]
    assert rows(ingest, "SELECT MAX(last_seen) FROM edges")[0][0] <= time.time() + 1


def test_an_alert_from_the_far_future_does_not_become_a_sink(ingest):
    now = time.time()
    far = alert_payload(1, alert_id="alert-sink-00001", at=now)
    far["last_frame_at"] = 1e308
    send(ingest, "hazardwatch/v1/e1/alerts/north", far)
    assert rows(ingest, "SELECT MAX(last_alert_at) FROM incidents")[0][0] <= time.time() + 1
    # six hours later the same camera sees smoke again: a new incident, not the old one reopened
    later = Alert.model_validate(alert_payload(3, alert_id="alert-later-0001", at=now + 6 * 3600))
    with ingest.db.tx() as tx:
        outcome = incidents.apply_alert(tx, later, CFG, now + 6 * 3600)
    assert outcome.created
    assert rows(ingest, "SELECT COUNT(*) FROM incidents") == [(2,)]
    assert (
        counter(
            ingest, "hazardwatch_central_clock_clamped_total", kind="alert", field="last_frame_at", direction="future"
        )
        == 1
    )


def test_an_edge_clock_at_1970_is_replaced_and_its_alert_kept(ingest):
    early = alert_payload(5, alert_id="alert-1970-00001", at=1000.0)
    assert send(ingest, "hazardwatch/v1/e1/alerts/north", early) == 1
    (last_at,) = rows(ingest, "SELECT last_alert_at FROM incidents")[0]
    assert abs(last_at - time.time()) < 60
    assert (
        counter(ingest, "hazardwatch_central_clock_clamped_total", kind="alert", field="sent_at", direction="past") == 1
    )
