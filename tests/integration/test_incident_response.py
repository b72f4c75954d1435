"""Issue 16 on a real store (SQLite and PostgreSQL): a hazard still seen after an operator closes its
incident comes back; a false alarm keeps its camera and region quiet only inside a time-bound
suppression that a clearly stronger detection breaks through."""

from __future__ import annotations

import pytest
from test_central_services import CFG, alert

from hazardwatch.central.services import dispatch, incidents, suppressions, views
from hazardwatch.central.services.errors import Conflict, Invalid
from hazardwatch.central.store import Database


@pytest.fixture
def db(database_url):
    d = Database(database_url)
    d.migrate()
    yield d
    d.close()


def apply(db: Database, a, now: float) -> incidents.AlertOutcome:
    with db.tx() as tx:
        return incidents.apply_alert(tx, a, CFG, now)


def act(db: Database, iid: int, action: str, now: float, note: str = "", suppress_s: float = 0.0) -> None:
    with db.tx() as tx:
        incidents.act(tx, iid, action, "amy", note, now, suppress_s)


def row(db: Database, iid: int) -> tuple:
    with db.tx() as tx:
        return tx.one("SELECT state, active_alerts, previous_id FROM incidents WHERE id = ?", (iid,))


def kinds(db: Database, iid: int) -> list[str]:
    with db.tx() as tx:
        return [e["kind"] for e in views.timeline(tx, iid)]


def test_resolved_while_still_seen_comes_back_as_a_linked_incident(db):
    first = apply(db, alert(0, at=1000), 1000).incident_id
    apply(db, alert(1, state="update", at=1030, score=0.85), 1030)
    act(db, first, "resolve", 1040, "crew says it is out")
    # an update from before the decision (frame taken at 1035) changes nothing
    late = apply(db, alert(2, state="update", at=1035, score=0.9), 1041)
    assert late.incident_id == first and not late.created
    # the edge still confirms the fire at its next look: a new incident linked to the closed one
    back = apply(db, alert(3, state="update", at=1070, score=0.86), 1070)
    assert back.created and back.incident_id != first
    assert row(db, back.incident_id) == ("open", 1, first)
    assert row(db, first)[:2] == ("resolved", 0)  # the closed incident no longer claims the alert
    assert kinds(db, first)[-1] == "recurred"
    with db.tx() as tx:
        opened = views.timeline(tx, back.incident_id)[0]
        view = views.incident_view(tx, first, "http://central")
    assert opened["detail"] == {"previous_id": first, "reason": "still_seen_after_resolved"}
    assert view["successor_ids"] == [back.incident_id]
    # later looks and a second camera's alert of the same closed incident join the successor, not a third
    assert apply(db, alert(4, state="update", at=1100, score=0.9), 1100).incident_id == back.incident_id
    # it is notified as a fresh Alert (the closed one was never notified here, so no Cancel is due)
    with db.tx() as tx:
        planned = dispatch.plan(tx, back.incident_id, CFG, 1100 + 60, "http://c")
    assert planned is not None and planned.msg_type == "Alert"


def test_end_after_resolve_stays_with_the_closed_incident(db):
    first = apply(db, alert(0, at=1000), 1000).incident_id
    act(db, first, "resolve", 1010, "out")
    ended = apply(db, alert(1, state="end", at=1100), 1100)
    assert ended.incident_id == first and not ended.created
    assert row(db, first)[:2] == ("resolved", 0)


def test_false_alarm_is_quiet_inside_its_region_until_it_expires(db):
    first = apply(db, alert(0, at=1000, score=0.7), 1000).incident_id
    act(db, first, "false_alarm", 1010, "sun glare on the lake", suppress_s=600)
    with db.tx() as tx:
        (sup,) = suppressions.listing(tx, 1011, incident_id=first)
    assert (sup["edge_id"], sup["camera_id"], sup["hazard"], sup["created_by"]) == ("e1", "north", "smoke", "amy")
    assert sup["ends_at"] == 1610 and sup["region"] == {"x1": 0.45, "y1": 0.4, "x2": 0.55, "y2": 0.5}
    # the same alert's updates and a new alert in the same region stay quiet, counted
    assert apply(db, alert(1, state="update", at=1040, score=0.75), 1040).incident_id == first
    again = apply(db, alert(2, alert_id="alert-north-2", at=1100, score=0.72, x=(0.47, 0.53)), 1100)
    assert again.incident_id == first and not again.created
    assert row(db, first)[0] == "false_alarm"
    with db.tx() as tx:
        (sup,) = suppressions.listing(tx, 1101, incident_id=first)
        last = views.timeline(tx, first)[-1]
    assert sup["quiet_count"] == 2 and last["detail"]["suppressed_by"] == sup["id"]
    # another region of the same camera is not covered
    other = apply(db, alert(3, alert_id="alert-north-3", at=1200, x=(0.0, 0.1)), 1200)
    assert other.created
    # once the suppression ran out, the still-seen alert comes back
    back = apply(db, alert(4, state="update", at=1700, score=0.7), 1700)
    assert back.created and row(db, back.incident_id)[2] == first


def test_a_clearly_stronger_or_larger_detection_breaks_through(db):
    first = apply(db, alert(0, at=1000, score=0.6), 1000).incident_id
    act(db, first, "false_alarm", 1010, "cloud", suppress_s=3600)
    assert apply(db, alert(1, state="update", at=1040, score=0.7), 1040).incident_id == first  # +0.10: quiet
    stronger = apply(db, alert(2, state="update", at=1070, score=0.8), 1070)  # +0.20 >= 0.15 margin
    assert stronger.created and row(db, stronger.incident_id)[2] == first
    assert "suppression_broken" in kinds(db, first)
    with db.tx() as tx:
        (sup,) = suppressions.listing(tx, 1071, include_ended=True, incident_id=first)
    assert not sup["active"] and sup["ended_by"] == "system" and "stronger" in sup["end_reason"]

    # growth: a region twice as large breaks through at the same score
    second = apply(db, alert(3, edge="e2", cam="east", alert_id="alert-east-1", at=2000, score=0.6), 2000).incident_id
    act(db, second, "false_alarm", 2010, "dust", suppress_s=3600)
    assert (
        apply(db, alert(4, edge="e2", cam="east", alert_id="alert-east-2", at=2040, score=0.6), 2040).incident_id
        == second
    )
    grown = apply(db, alert(5, edge="e2", cam="east", alert_id="alert-east-3", at=2070, score=0.6, x=(0.4, 0.65)), 2070)
    assert grown.created and row(db, grown.incident_id)[2] == second


def test_reopen_and_lift_end_a_suppression(db):
    first = apply(db, alert(0, at=1000), 1000).incident_id
    act(db, first, "false_alarm", 1010, "fog", suppress_s=3600)
    act(db, first, "reopen", 1020, "it is smoke after all")
    with db.tx() as tx:
        assert suppressions.listing(tx, 1021) == []
        (sup,) = suppressions.listing(tx, 1021, include_ended=True)
    assert sup["ended_by"] == "amy" and sup["end_reason"] == "incident reopened"
    # no suppression asked: false alarm with suppress_s=0 keeps nothing quiet
    act(db, first, "false_alarm", 1030, "fog")
    with db.tx() as tx:
        assert suppressions.listing(tx, 1031) == []
    back = apply(db, alert(1, state="update", at=1060), 1060)
    assert back.created


def test_severity_follows_the_situation_with_reasons_and_one_calibrated_confidence(db):
    """Issue 16.2/16.3 on the store: growth, a weather watch and an important camera raise the severity,
    each with a reason; the incident carries the calibrated confidence, the timeline the same number."""
    cfg = CFG.model_copy(update={
        "severity_rules": CFG.severity_rules.model_validate({
            "time_windows": [],
            "cameras": {"e1/north": {"importance": "high", "watches": "primary school"}},
        }),
        "confidence": CFG.confidence.model_validate({"calibration": {"m": [[0.5, 0.3], [1.0, 0.9]]}}),
    })
    with db.tx() as tx:
        iid = incidents.apply_alert(tx, alert(0, at=1000, score=0.75, x=(0.45, 0.5)), cfg, 1000).incident_id
        first = views.incident_view(tx, iid, "http://c")
    assert first["severity"] == "severe"  # smoke moderate + school
    assert [r["code"] for r in first["severity_reasons"]] == ["base", "importance"]
    assert first["confidence"] == pytest.approx(0.6)  # 0.3 + 0.6 * (0.75 - 0.5) / 0.5
    with db.tx() as tx:
        tx.execute(
            "INSERT INTO weather_watch(edge_id, camera_id, hazard, level, until, reason, changed_at) "
            "VALUES ('e1', 'north', 'smoke', 'high', NULL, 'Forest fire danger red warning', 1000)"
        )
        incidents.apply_alert(tx, alert(1, state="update", at=1030, score=0.95, x=(0.40, 0.6)), cfg, 1030)
        grown = views.incident_view(tx, iid, "http://c")
        tl = views.timeline(tx, iid)
    assert grown["severity"] == "extreme"
    by_code = {r["code"]: r for r in grown["severity_reasons"]}
    assert set(by_code) == {"base", "importance", "growth", "weather"}
    assert by_code["growth"]["factor"] == 4.0 and by_code["weather"]["reason"] == "Forest fire danger red warning"
    assert grown["confidence"] == pytest.approx(0.84)
    assert tl[-1]["detail"]["confidence"] == pytest.approx(0.84) and tl[-1]["detail"]["score"] == 0.95
    cam = grown["cameras"][0]
    assert cam["confidence"] == pytest.approx(0.84) and cam["vote_score"] == 0.95


def test_procedure_follows_severity_ticks_are_recorded_and_closing_a_severe_one_needs_a_note(db):
    """Issue 16.4 on the store: the checklist and contacts for the hazard and severity, ticks with who and
    when, escalation to the severe checklist, and a note to close a severe incident."""
    from hazardwatch.central.services import procedures

    cfg = CFG.model_copy(update={"severity_rules": CFG.severity_rules.model_validate({"time_windows": []})})
    with db.tx() as tx:
        iid = incidents.apply_alert(tx, alert(0, at=1000), cfg, 1000).incident_id
        p = views.incident_view(tx, iid, "http://c")["procedure"]
    assert p["id"] == "fire-watch" and p["done"] == 0  # smoke, moderate: verify and call the brigade
    assert [c["id"] for c in p["contacts"]] == ["forest_fire_brigade", "duty_leader"]
    with db.tx() as tx:
        procedures.tick(tx, iid, "fire-watch", 1, True, "amy", "brigade on the way", 1010)
        p = views.incident_view(tx, iid, "http://central")["procedure"]
        step = views.timeline(tx, iid)[-1]
    assert p["done"] == 1 and p["steps"][1] | {"by": "amy", "at": 1010, "done": True} == p["steps"][1]
    assert step["kind"] == "step" and step["actor"] == "amy" and step["detail"]["text"].startswith("Call the")
    with pytest.raises(Conflict, match="not fire-severe"), db.tx() as tx:
        procedures.tick(tx, iid, "fire-severe", 0, True, "amy", "", 1011)
    # a second camera makes it severe: the severe checklist applies
    with db.tx() as tx:
        incidents.apply_alert(tx, alert(1, edge="e2", cam="east", alert_id="alert-east-1", at=1020,
                                        place={"lat": 22.58, "lon": 114.16, "bearing_deg": 290.0, "fov_deg": 60.0}),
                              cfg, 1020)
        p = views.incident_view(tx, iid, "http://central")["procedure"]
    assert p["id"] == "fire-severe" and p["done"] == 0 and len(p["steps"]) == 5
    with pytest.raises(Invalid, match="closing a severe incident needs a note"), db.tx() as tx:
        incidents.act(tx, iid, "resolve", "amy", " ", 1030, note_to_close=("severe", "extreme"))
    with db.tx() as tx:
        incidents.act(tx, iid, "resolve", "amy", "out, brigade confirmed", 1031, note_to_close=("severe", "extreme"))
    assert row(db, iid)[0] == "resolved"


def test_an_incident_keeps_the_procedure_text_it_was_given_while_its_procedure_applies(db):
    """Refreshing an incident reuses its stored procedure text (no rebuild per alert): a config edit of that
    procedure's text does not reach it, while a severity that calls for another procedure replaces it."""

    cfg = CFG.model_copy(update={"severity_rules": CFG.severity_rules.model_validate({"time_windows": []})})
    with db.tx() as tx:
        iid = incidents.apply_alert(tx, alert(0, at=1000), cfg, 1000).incident_id
    edited = [p.model_copy(update={"title": "Edited later"}) for p in cfg.response.procedures]
    later = cfg.model_copy(update={"response": cfg.response.model_copy(update={"procedures": edited})})
    with db.tx() as tx:
        incidents.apply_alert(tx, alert(1, state="update", at=1010), later, 1010)
        kept = views.incident_view(tx, iid, "http://central")["procedure"]
    assert kept["id"] == "fire-watch" and kept["title"] != "Edited later"
    with db.tx() as tx:  # a second camera: severe, and the severe checklist as the edited config has it
        incidents.apply_alert(tx, alert(0, edge="e2", cam="east", alert_id="alert-east-1", at=1020,
                                        place={"lat": 22.58, "lon": 114.16, "bearing_deg": 290.0, "fov_deg": 60.0}),
                              later, 1020)  # fmt: skip
        replaced = views.incident_view(tx, iid, "http://central")["procedure"]
    assert replaced["id"] == "fire-severe" and replaced["title"] == "Edited later"


def test_calibration_tables_come_from_operators_verdicts(db, tmp_path):
    """Issue 16.3: `hazardwatch central calibrate` measures P(real | vote score) per model on resolved
    (real) and false-alarm incidents; system-closed incidents say nothing. The table loads as config."""
    import subprocess
    import sys
    from itertools import pairwise

    import yaml

    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.services.calibration import calibrate, isotonic

    assert isotonic([(0.6, 0), (0.7, 1), (0.65, 0), (0.9, 1), (0.8, 0)]) == [(0.625, 0.0), (0.75, 0.5), (0.9, 1.0)]
    seq = 0
    for k in range(40):  # high scores were real, low ones false alarms, a few in between either way
        score = 0.55 + 0.01 * k
        real = k >= 20 or k % 7 == 0
        seq += 1
        iid = apply(db, alert(seq, alert_id=f"alert-k{k:03d}", at=10_000 * (k + 1), score=score), 10_000 * (k + 1)) \
            .incident_id
        act(db, iid, "resolve" if real else "false_alarm", 10_000 * (k + 1) + 10, "verdict")
    seq += 1
    quiet = apply(db, alert(seq, alert_id="alert-auto", at=900_000, score=0.99), 900_000).incident_id
    with db.tx() as tx:
        tx.execute("UPDATE incidents SET state = 'resolved', resolved_by = 'system', resolved_at = 900100 "
                   "WHERE id = ?", (quiet,))
        result = calibrate(tx, min_alerts=30)
    assert result["outcomes"] == {"m": {"real": 23, "false_alarm": 17}}
    table = result["calibration"]["m"]
    assert table[0][1] < 0.3 and table[-1][1] == 1.0
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in pairwise(table))
    cfg = CentralConfig.model_validate({"broker": None, "confidence": {"calibration": result["calibration"]}})
    assert cfg.confidence.calibrate("m@1", 0.9) == (1.0, True)
    with db.tx() as tx:
        assert calibrate(tx, min_alerts=100)["skipped"]["m"].startswith("40 alerts")

    # the command prints the YAML to paste into the central config
    conf = tmp_path / "central.yaml"
    conf.write_text(yaml.safe_dump({"broker": None, "database": {"url": db.url}}))
    run = subprocess.run([sys.executable, "-m", "hazardwatch.cli", "central", "calibrate", "--config", str(conf)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(run.stdout)["confidence"]["calibration"]["m"] == table
    assert "m: 23 real, 17 false alarms: table written" in run.stderr
