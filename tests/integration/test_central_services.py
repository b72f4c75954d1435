"""Central's domain services on a real store (SQLite and PostgreSQL): correlation into incidents,
dedup, lifecycle, timers, silences and inhibition."""

from __future__ import annotations

import json

import pytest

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.geo import haversine_km
from hazardwatch.central.services import dispatch, health, incidents, silences, views
from hazardwatch.central.services.errors import Conflict, NotFound
from hazardwatch.central.store import Database
from hazardwatch.contract import Alert, CameraStatus

CFG = CentralConfig.model_validate(
    {
        "broker": None,
        "timers": {"group_wait_s": 10, "group_interval_s": 60, "repeat_interval_s": 3600},
        "correlation": {"auto_resolve_after_s": 300, "reopen_window_s": 1800},
        "receivers": [{"name": "cmd", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
    }
)
NORTH = {"lat": 22.65, "lon": 114.08, "bearing_deg": 150.0, "fov_deg": 60.0}
EAST = {"lat": 22.58, "lon": 114.16, "bearing_deg": 290.0, "fov_deg": 60.0}


def alert(
    seq: int,
    *,
    edge="e1",
    cam="north",
    alert_id="alert-north-1",
    state="new",
    at=1000.0,
    x=(0.45, 0.55),
    place=NORTH,
    hazard="smoke",
    score=0.8,
) -> Alert:
    return Alert(
        edge_id=edge,
        sent_at=at,
        alert_id=alert_id,
        seq=seq,
        state=state,
        camera_id=cam,
        hazard=hazard,
        score=score,
        boxes=[{"x1": x[0], "y1": 0.4, "x2": x[1], "y2": 0.5, "score": score}],
        first_frame_at=at - 5,
        last_frame_at=at,
        model_name="m",
        model_version="1",
        **place,
    )


@pytest.fixture
def db(database_url):
    d = Database(database_url)
    version = d.migrate()
    assert version >= 2
    assert d.migrate() == version  # idempotent
    yield d
    d.close()


def apply(db: Database, a: Alert, now: float) -> incidents.AlertOutcome:
    with db.tx() as tx:
        return incidents.apply_alert(tx, a, CFG, now)


def plan(db: Database, iid: int, now: float):
    with db.tx() as tx:
        return dispatch.plan(tx, iid, CFG, now, "http://central")


def deliveries(db: Database) -> list[tuple]:
    with db.tx() as tx:
        return tx.execute("SELECT incident_id, idempotency_key, msg_type FROM deliveries ORDER BY id")


def test_two_cameras_one_smoke_one_incident_with_estimated_location(db):
    first = apply(db, alert(0), 1000)
    assert first.created
    second = apply(db, alert(0, edge="e2", cam="east", alert_id="alert-east-1", place=EAST, x=(0.3, 0.4)), 1002)
    assert second.incident_id == first.incident_id and not second.created
    with db.tx() as tx:
        view = views.incident_view(tx, first.incident_id, "http://central")
    assert view["camera_count"] == 2 and view["severity"] == "extreme"  # smoke seen by two cameras
    assert view["location"]["estimated"] is True
    assert len(view["sightings"]) == 2
    # the estimate lies in front of both cameras, between them
    lat, lon = view["location"]["lat"], view["location"]["lon"]
    assert (
        haversine_km(lat, lon, NORTH["lat"], NORTH["lon"]) < 15
        and haversine_km(lat, lon, EAST["lat"], EAST["lon"]) < 15
    )
    assert lat < NORTH["lat"] and lon < EAST["lon"]


def test_redelivery_is_applied_once(db):
    a = alert(7)
    assert not apply(db, a, 1000).duplicate
    for _ in range(20):
        assert apply(db, a, 1001).duplicate
    with db.tx() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM alert_events") == 1
        assert tx.scalar("SELECT COUNT(*) FROM incidents") == 1


def test_lifecycle_end_auto_resolve_and_reopen(db):
    iid = apply(db, alert(0, at=1000), 1000).incident_id
    apply(db, alert(1, state="update", at=1010, score=0.95), 1010)
    apply(db, alert(2, state="end", at=1100), 1100)
    with db.tx() as tx:
        assert tx.one("SELECT active_alerts, score_max FROM incidents WHERE id = ?", (iid,)) == (0, 0.95)
        assert incidents.auto_resolve(tx, CFG, 1300) == []  # not quiet long enough
        assert incidents.auto_resolve(tx, CFG, 1500) == [iid]
        assert tx.one("SELECT state, resolved_by FROM incidents WHERE id = ?", (iid,)) == (
            "resolved",
            "system",
        )
    again = apply(db, alert(3, alert_id="alert-north-2", at=1600), 1600)
    assert again.reopened and again.incident_id == iid
    with db.tx() as tx:
        kinds = [e["kind"] for e in views.timeline(tx, iid)]
    assert kinds == ["opened", "alert", "alert", "alert", "auto_resolved", "reopened", "alert"]


def test_operator_actions_record_who_and_refuse_wrong_states(db):
    iid = apply(db, alert(0), 1000).incident_id
    with db.tx() as tx:
        incidents.act(tx, iid, "acknowledge", "amy", "", 1001)
    with (
        pytest.raises(Conflict, match="cannot acknowledge an incident that is acknowledged"),
        db.tx() as tx,
    ):
        incidents.act(tx, iid, "acknowledge", "bob", "", 1002)
    with db.tx() as tx:
        incidents.act(tx, iid, "false_alarm", "bob", "low cloud", 1003)
        row = tx.one("SELECT state, acknowledged_by, resolved_by, note FROM incidents WHERE id = ?", (iid,))
        assert row == ("false_alarm", "amy", "bob", "low cloud")
    with pytest.raises(NotFound, match="incident 999 does not exist"), db.tx() as tx:
        incidents.act(tx, 999, "resolve", "amy", "", 1004)
    # a new alert nearby after a false alarm starts a new incident linked to it
    new = apply(db, alert(1, alert_id="alert-north-9", at=1010), 1010)
    assert new.created
    with db.tx() as tx:
        assert tx.scalar("SELECT previous_id FROM incidents WHERE id = ?", (new.incident_id,)) == iid


def test_timers_group_wait_interval_cancel(db):
    iid = apply(db, alert(0), 1000).incident_id
    assert plan(db, iid, 1005) is None  # group wait
    apply(db, alert(0, edge="e2", cam="east", alert_id="alert-east-1", place=EAST, x=(0.3, 0.4)), 1006)
    p = plan(db, iid, 1011)
    assert p.msg_type == "Alert" and p.receivers == ("cmd",)
    (row,) = deliveries(db)
    assert row[2] == "Alert"
    payload = json.loads(_payload(db, row[1]))
    assert payload["camera_count"] == 2  # both cameras made it into the first notification
    apply(db, alert(1, state="update", at=1020, score=0.99), 1020)  # score +0.19: a notifiable change
    assert plan(db, iid, 1030) is None  # group interval
    assert plan(db, iid, 1072).msg_type == "Update"
    with db.tx() as tx:
        incidents.act(tx, iid, "resolve", "amy", "put out", 1080)
    assert plan(db, iid, 1140).msg_type == "Cancel"
    assert plan(db, iid, 9000) is None  # closed: no repeats
    assert [r[2] for r in deliveries(db)] == ["Alert", "Update", "Cancel"]
    keys = [r[1] for r in deliveries(db)]
    assert len(set(keys)) == 3


def _payload(db: Database, key: str) -> str:
    with db.tx() as tx:
        return tx.scalar("SELECT payload FROM deliveries WHERE idempotency_key = ?", (key,))


def test_repeat_interval(db):
    iid = apply(db, alert(0), 1000).incident_id
    assert plan(db, iid, 1011).msg_type == "Alert"
    assert plan(db, iid, 2000) is None
    assert plan(db, iid, 1011 + 3600).msg_type == "Update"
    with db.tx() as tx:
        assert dispatch.plan_due(tx, CFG, 1011 + 3600 + 10, "http://central") == ([], 0)


def test_silence_then_expiry_and_inhibition(db):
    iid = apply(db, alert(0), 1000).incident_id
    with db.tx() as tx:
        s = silences.create(
            tx,
            edge_id="e1",
            camera_id="north",
            hazard="smoke",
            area=None,
            starts_at=900,
            ends_at=2000,
            created_by="amy",
            comment="burn-off",
            now=900,
        )
    p = plan(db, iid, 1011)
    assert p.receivers == () and "silenced by #" in p.suppressed
    assert deliveries(db) == []
    assert plan(db, iid, 1500).suppressed  # still silenced; recorded once in the timeline
    with db.tx() as tx:
        assert [e["kind"] for e in views.timeline(tx, iid)].count("suppressed") == 1
        assert silences.expire(tx, s.id, "bob", 1600)
    assert plan(db, iid, 1601).msg_type == "Alert"

    # inhibition: the only camera of another incident is offline
    other = apply(db, alert(0, edge="e3", cam="west", alert_id="alert-west-1", hazard="waterlogging"), 1700)
    with db.tx() as tx:
        health.apply_camera_status(
            tx,
            CameraStatus(edge_id="e3", sent_at=1700, camera_id="west", state="offline", reason="no frame", since=1700),
            1700,
        )
    assert "inhibited" in plan(db, other.incident_id, 1720).suppressed
    with db.tx() as tx:  # an older retained status replayed later does not overwrite the newer one
        health.apply_camera_status(
            tx, CameraStatus(edge_id="e3", sent_at=1600, camera_id="west", state="online", since=1600), 1730
        )
        assert tx.scalar("SELECT state FROM cameras WHERE camera_id = 'west'") == "offline"
    with db.tx() as tx:  # how far it has learnt its normal comes with its status, the state's since kept
        health.apply_camera_status(
            tx,
            CameraStatus(edge_id="e3", sent_at=1740, camera_id="west", state="offline", reason="no frame",
                         since=1700, normal={"smoke": "warming"}),
            1740,
        )  # fmt: skip
        (west,) = [c for c in views.cameras(tx) if c["camera_id"] == "west"]
        assert west["normal"] == {"smoke": "warming"} and west["since"] == 1700


def _burst(db: Database, n: int, at: float) -> list[int]:
    """`n` separate incidents (cameras 100 km apart), all opened at `at`."""
    out = []
    for k in range(n):
        place = {"lat": -40 + k, "lon": 10.0, "bearing_deg": 0.0, "fov_deg": 60.0}
        a = alert(0, edge=f"b{k}", cam="c", alert_id=f"alert-burst-{k}", place=place, at=at)
        out.append(apply(db, a, at).incident_id)
    return out


def test_due_incidents_are_planned_in_one_transaction_per_batch(db):
    ids = _burst(db, 30, 1000)
    with db.tx() as tx:
        planned, examined = dispatch.plan_due(tx, CFG, 1005, "http://central", limit=20)
    assert (planned, examined) == ([], 0)  # group_wait (10 s) holds them all
    with db.tx() as tx:
        planned, examined = dispatch.plan_due(tx, CFG, 1011, "http://central", limit=20)
    assert examined == 20 and [p.msg_type for p in planned] == ["Alert"] * 20
    with db.tx() as tx:
        rest, examined = dispatch.plan_due(tx, CFG, 1011, "http://central", limit=20)
    assert examined == 10 and len(rest) == 10
    assert sorted(p.incident_id for p in planned + rest) == sorted(ids)
    rows = deliveries(db)
    assert sorted(r[1] for r in rows) == sorted(f"inc{i}-v1" for i in ids)
    with db.tx() as tx:
        assert dispatch.plan_due(tx, CFG, 1012, "http://central") == ([], 0)
        notified = tx.execute("SELECT COUNT(*) FROM incident_events WHERE kind = 'notified'")[0][0]
    assert notified == 30


def test_two_instances_planning_at_once_split_the_due_incidents(db, database_url):
    """Rows another instance is planning are skipped, not waited for, and never planned twice."""
    if not database_url.startswith("postgres"):
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    ids = _burst(db, 12, 1000)
    other = Database(database_url, pool_size=1)
    try:
        with db.tx() as tx_a, other.tx() as tx_b:
            first, seen_a = dispatch.plan_due(tx_a, CFG, 1011, "http://central", limit=5)
            second, seen_b = dispatch.plan_due(tx_b, CFG, 1011, "http://central", limit=50)
        assert seen_a == 5 and seen_b == 7  # B skipped A's five locked rows instead of waiting
        assert sorted(p.incident_id for p in first + second) == sorted(ids)
    finally:
        other.close()
    keys = [r[1] for r in deliveries(db)]
    assert len(keys) == len(set(keys)) == 12
