"""Incident operations on the store: attach alerts, recompute aggregates, operator actions.

Every function takes an open transaction (`Tx`) so callers decide the unit of durability: the
ingest path writes a whole batch of MQTT messages in one transaction before acknowledging them.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from dataclasses import dataclass

from hazardwatch.central.config import SEVERITY_ORDER, CentralConfig
from hazardwatch.central.incidents.correlate import (
    OPEN_STATES,
    SYSTEM,
    Candidate,
    Choice,
    Member,
    Region,
    choose,
)
from hazardwatch.central.incidents.geo import Sighting, estimate_location, sighting
from hazardwatch.central.incidents.suppress import judge
from hazardwatch.central.services import situation, suppressions
from hazardwatch.central.store import Tx
from hazardwatch.contract import Alert

SEVERITIES = list(SEVERITY_ORDER)
log = logging.getLogger(__name__)


class ActionError(Exception):
    """An operator action that cannot apply (unknown incident, wrong state)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AlertOutcome:
    incident_id: int | None  # None for a duplicate
    duplicate: bool
    created: bool = False
    reopened: bool = False


def _jpeg_or_none(alert: Alert) -> bytes | None:
    """The snapshot's bytes if they are base64 of a JPEG; else None. Evidence is served as image/jpeg
    to browsers and receivers, so anything else (HTML, a script, junk) is dropped and the alert kept."""
    import base64
    import binascii
    import logging

    try:
        data = base64.b64decode(alert.snapshot_jpeg_b64 or "", validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if data[:3] == b"\xff\xd8\xff":
        return data
    logging.getLogger(__name__).warning(
        "alert %s/%s seq %d: snapshot is not a base64 JPEG; evidence dropped, alert kept",
        alert.edge_id,
        alert.camera_id,
        alert.seq,
    )
    return None


def add_event(tx: Tx, incident_id: int, at: float, kind: str, actor: str, detail: dict) -> None:
    tx.execute(
        "INSERT INTO incident_events(incident_id, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (incident_id, at, kind, actor, json.dumps(detail, separators=(",", ":"))),
    )


def _candidates(tx: Tx, alert: Alert, cfg: CentralConfig, now: float) -> list[Candidate]:
    """Incidents a new alert could join: the same camera's or those seen nearby, recently.

    A bounding box around the camera (the correlation distance) narrows the search in SQL; the exact
    rules run in `correlate.choose`.
    """
    c = cfg.correlation
    horizon = alert.last_frame_at - max(c.same_camera_window_s, c.cross_camera_window_s)
    clauses = ["(edge_id = ? AND camera_id = ? AND last_at >= ?)"]
    params: list = [alert.edge_id, alert.camera_id, horizon]
    if alert.lat is not None and alert.lon is not None:
        dlat = c.cross_camera_distance_km / 111.0
        dlon = c.cross_camera_distance_km / (111.0 * max(0.05, math.cos(math.radians(alert.lat))))
        clauses.append("(lat BETWEEN ? AND ? AND lon BETWEEN ? AND ? AND last_at >= ?)")
        params += [alert.lat - dlat, alert.lat + dlat, alert.lon - dlon, alert.lon + dlon, horizon]
    nearby = {
        r[0]
        for r in tx.execute(f"SELECT DISTINCT incident_id FROM incident_alerts WHERE {' OR '.join(clauses)}", params)
    }
    if not nearby:
        return []
    ids = sorted(nearby)
    marks = ",".join("?" * len(ids))
    rows = tx.execute(
        f"SELECT id, hazard, state, last_alert_at, resolved_at, resolved_by FROM incidents WHERE id IN ({marks}) "
        "AND hazard = ? AND (state IN ('open', 'acknowledged') OR resolved_at >= ?)",
        [*ids, alert.hazard.value, now - c.reopen_window_s],
    )
    if not rows:
        return []
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    members: dict[int, list[Member]] = {i: [] for i in ids}
    for inc_id, edge_id, alert_id, camera_id, boxes, last_at, lat, lon in tx.execute(
        "SELECT incident_id, edge_id, alert_id, camera_id, boxes, last_at, lat, lon FROM incident_alerts "
        f"WHERE incident_id IN ({marks})",
        ids,
    ):
        regions = tuple(Region(b["x1"], b["y1"], b["x2"], b["y2"]) for b in json.loads(boxes))
        members[inc_id].append(Member(edge_id, alert_id, f"{edge_id}/{camera_id}", regions, last_at, lat, lon))
    return [Candidate(r[0], r[1], r[2], r[3], r[4], r[5], tuple(members[r[0]])) for r in rows]


def apply_alert(tx: Tx, alert: Alert, cfg: CentralConfig, now: float) -> AlertOutcome:
    """Store one alert event and fold it into its incident.

    Idempotent by (edge, seq), which the contract says identifies an event. The alert's state follows its
    highest seq, so an older event arriving late (an update after its end) is kept in the history only.
    """
    seen, own, last_seq = tx.one(
        "SELECT (SELECT alert_id FROM alert_events WHERE edge_id = ? AND seq = ?), "
        "(SELECT incident_id FROM incident_alerts WHERE edge_id = ? AND alert_id = ?), "
        "(SELECT last_seq FROM incident_alerts WHERE edge_id = ? AND alert_id = ?)",
        (alert.edge_id, alert.seq, alert.edge_id, alert.alert_id, alert.edge_id, alert.alert_id),
    ) or (None, None, None)
    if seen is not None:
        if seen != alert.alert_id:
            log.warning(
                "edge %s reused seq %d (alert %s, then %s): kept the first",
                alert.edge_id,
                alert.seq,
                seen,
                alert.alert_id,
            )
        return AlertOutcome(None, duplicate=True)
    stale = own is not None and last_seq is not None and alert.seq < last_seq
    me = Member(
        alert.edge_id,
        alert.alert_id,
        f"{alert.edge_id}/{alert.camera_id}",
        tuple(Region(b.x1, b.y1, b.x2, b.y2) for b in alert.boxes),
        alert.last_frame_at,
        alert.lat,
        alert.lon,
    )
    # An alert already in an incident stays there (rule 1) unless an operator closed that incident and the
    # hazard is still seen (recurrence, docs/central.md); false-alarm suppressions keep matching looks quiet.
    if stale:
        choice, why = Choice("attach", own), {}
    elif own is not None:
        choice, why = _for_attached(tx, alert, me, own, cfg, now)
    else:
        choice, why = _for_unattached(tx, alert, me, cfg, now)
    created = reopened = False
    if choice.action == "new":
        incident_id = tx.scalar(
            "INSERT INTO incidents(hazard, state, severity, opened_at, updated_at, last_alert_at, previous_id) "
            "VALUES (?, 'open', ?, ?, ?, ?, ?) RETURNING id",
            (
                alert.hazard.value,
                cfg.severity[alert.hazard],
                now,
                now,
                alert.last_frame_at,
                choice.previous_id,
            ),
        )
        add_event(tx, incident_id, now, "opened", SYSTEM, {"previous_id": choice.previous_id, **why})
        if own is not None and own != incident_id:
            add_event(tx, own, now, "recurred", SYSTEM, {"new_id": incident_id, **why})
        created = True
    else:
        incident_id = choice.incident_id
        assert incident_id is not None
        if choice.action == "reopen":
            tx.execute(
                "UPDATE incidents SET state = 'open', resolved_at = NULL, resolved_by = NULL, "
                "acknowledged_at = NULL, acknowledged_by = NULL, version = version + 1, updated_at = ? WHERE id = ?",
                (now, incident_id),
            )
            add_event(tx, incident_id, now, "reopened", SYSTEM, {"alert_id": alert.alert_id})
            reopened = True

    boxes = json.dumps([b.model_dump() for b in alert.boxes])
    if alert.state.value == "end":
        tx.execute(
            "UPDATE incident_alerts SET active = 0, last_at = ?, last_seq = ? WHERE edge_id = ? AND alert_id = ? "
            "AND (last_seq IS NULL OR last_seq < ?)",
            (alert.last_frame_at, alert.seq, alert.edge_id, alert.alert_id, alert.seq),
        )
    confidence, _calibrated = cfg.confidence.calibrate(alert.model_name, alert.score)
    upsert = (
        "INSERT INTO incident_alerts(incident_id, edge_id, alert_id, camera_id, active, boxes, score, last_at, "
        "lat, lon, bearing_deg, fov_deg, last_seq, confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (edge_id, alert_id) DO "
    )
    if alert.state.value == "end":
        upsert += "NOTHING"
    else:
        upsert += (
            "UPDATE SET incident_id = excluded.incident_id, active = 1, boxes = excluded.boxes, "
            "score = excluded.score, last_at = excluded.last_at, last_seq = excluded.last_seq, "
            "confidence = excluded.confidence "
            "WHERE incident_alerts.last_seq IS NULL OR incident_alerts.last_seq < excluded.last_seq"
        )
    tx.execute(
        upsert,
        (
            incident_id,
            alert.edge_id,
            alert.alert_id,
            alert.camera_id,
            0 if alert.state.value == "end" else 1,
            boxes,
            alert.score,
            alert.last_frame_at,
            alert.lat,
            alert.lon,
            alert.bearing_deg,
            alert.fov_deg,
            alert.seq,
            confidence,
        ),
    )
    evidence_id = None
    image = _jpeg_or_none(alert) if alert.snapshot_jpeg_b64 else None
    if image is not None:
        evidence_id = secrets.token_urlsafe(24)
        tx.execute(
            "INSERT INTO evidence(id, incident_id, content_type, data, created_at) VALUES (?, ?, 'image/jpeg', ?, ?)",
            (evidence_id, incident_id, image, now),
        )
    tx.execute(
        "INSERT INTO alert_events(edge_id, seq, alert_id, state, camera_id, hazard, score, boxes, zone, "
        "first_frame_at, last_frame_at, model, received_at, incident_id, evidence_id, confidence) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert.edge_id,
            alert.seq,
            alert.alert_id,
            alert.state.value,
            alert.camera_id,
            alert.hazard.value,
            alert.score,
            boxes,
            alert.zone,
            alert.first_frame_at,
            alert.last_frame_at,
            f"{alert.model_name}@{alert.model_version}",
            now,
            incident_id,
            evidence_id,
            confidence,
        ),
    )
    if alert.state.value == "new":  # camera facts ride on every alert; storing them once per alert is enough
        _upsert_camera(tx, alert, now)
    add_event(
        tx,
        incident_id,
        now,
        "alert",
        f"{alert.edge_id}/{alert.camera_id}",
        {
            "alert_id": alert.alert_id,
            "state": alert.state.value,
            "seq": alert.seq,
            "score": alert.score,
            "confidence": round(confidence, 4),
            "evidence_id": evidence_id,
            **({"stale": True} if stale else {}),
            **({"suppressed_by": why["suppressed_by"]} if "suppressed_by" in why else {}),
        },
    )
    refresh(tx, incident_id, cfg, now, already_bumped=reopened)
    if own is not None and own != incident_id:
        refresh(tx, own, cfg, now)  # the alert moved out: the closed incident no longer counts it
    return AlertOutcome(incident_id, duplicate=False, created=created, reopened=reopened)


def _closed_by_operator(tx: Tx, incident_id: int) -> tuple[str, float] | None:
    row = tx.one("SELECT state, resolved_by, resolved_at FROM incidents WHERE id = ?", (incident_id,))
    if row is None or row[0] not in ("resolved", "false_alarm") or row[1] in (None, SYSTEM):
        return None
    return row[0], float(row[2] or 0.0)


def _suppression_verdict(
    tx: Tx, alert: Alert, me: Member, cfg: CentralConfig, now: float
) -> tuple[str, int | None, int | None]:
    """The strongest verdict of the camera's active false-alarm suppressions (break > quiet > outside),
    with the suppression's incident and id."""
    fa = cfg.false_alarm
    quiet = None
    for s in suppressions.active_for(tx, alert.edge_id, alert.camera_id, alert.hazard.value, now):
        verdict = judge(
            s, me.camera, alert.hazard.value, me.regions, alert.score, now, fa.break_score_margin, fa.break_area_factor
        )
        if verdict == "break":
            suppressions.end(tx, s.id, SYSTEM, f"broken through by a stronger detection (score {alert.score:.2f})", now)
            add_event(
                tx, s.incident_id, now, "suppression_broken", SYSTEM, {"suppression_id": s.id, "score": alert.score}
            )
            return "break", s.incident_id, s.id
        if verdict == "quiet" and quiet is None:
            quiet = s
    if quiet is not None:
        suppressions.record_quiet(tx, quiet.id, now)
        return "quiet", quiet.incident_id, quiet.id
    return "outside", None, None


def _recurrence_target(tx: Tx, alert: Alert, me: Member, closed_id: int, cfg: CentralConfig, now: float) -> Choice:
    """Where a hazard still seen after its incident was closed goes: the closed incident's open successor,
    another open incident it matches, or a new incident linked to the closed one."""
    successor = tx.scalar(
        "SELECT id FROM incidents WHERE previous_id = ? AND state IN ('open', 'acknowledged') ORDER BY id DESC",
        (closed_id,),
    )
    if successor is not None:
        return Choice("attach", successor)
    others = [c for c in _candidates(tx, alert, cfg, now) if c.id != closed_id]
    choice = choose(me, alert.hazard.value, others, cfg.correlation)
    if choice.action == "attach":
        return choice
    return Choice("new", previous_id=closed_id)


def _for_attached(tx: Tx, alert: Alert, me: Member, own: int, cfg: CentralConfig, now: float) -> tuple[Choice, dict]:
    closed = _closed_by_operator(tx, own)
    if closed is None or alert.state.value == "end" or alert.last_frame_at <= closed[1]:
        return Choice("attach", own), {}
    verdict, _sup_incident, sup_id = _suppression_verdict(tx, alert, me, cfg, now)
    if verdict == "quiet":
        return Choice("attach", own), {"suppressed_by": sup_id}
    reason = "stronger_than_false_alarm" if verdict == "break" else f"still_seen_after_{closed[0]}"
    return _recurrence_target(tx, alert, me, own, cfg, now), {"reason": reason}


def _for_unattached(tx: Tx, alert: Alert, me: Member, cfg: CentralConfig, now: float) -> tuple[Choice, dict]:
    if alert.state.value == "end":
        return choose(me, alert.hazard.value, _candidates(tx, alert, cfg, now), cfg.correlation), {}
    verdict, sup_incident, sup_id = _suppression_verdict(tx, alert, me, cfg, now)
    if verdict == "quiet" and sup_incident is not None:
        return Choice("attach", sup_incident), {"suppressed_by": sup_id}
    choice = choose(me, alert.hazard.value, _candidates(tx, alert, cfg, now), cfg.correlation)
    if verdict == "break":
        if choice.action == "new":
            choice = Choice("new", previous_id=sup_incident)
        return choice, {"reason": "stronger_than_false_alarm"}
    if choice.action == "new" and choice.previous_id is not None:
        return choice, {"reason": "seen_again_after_close"}
    return choice, {}


def _upsert_camera(tx: Tx, alert: Alert, now: float) -> None:
    tx.execute(
        "INSERT INTO cameras(edge_id, camera_id, name, lat, lon, bearing_deg, fov_deg, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (edge_id, camera_id) DO UPDATE SET name = excluded.name, "
        "lat = excluded.lat, lon = excluded.lon, bearing_deg = excluded.bearing_deg, fov_deg = excluded.fov_deg, "
        "updated_at = excluded.updated_at",
        (
            alert.edge_id,
            alert.camera_id,
            alert.camera_name,
            alert.lat,
            alert.lon,
            alert.bearing_deg,
            alert.fov_deg,
            now,
        ),
    )


def refresh(tx: Tx, incident_id: int, cfg: CentralConfig, now: float, already_bumped: bool = False) -> None:
    """Recompute an incident's aggregates; bump its version when something notifiable changed.

    A new incident starts at version 1 and a reopen bumps it itself (`already_bumped`).
    """
    row = tx.one(
        "SELECT hazard, severity, camera_count, active_alerts, score_max, version, procedure, state FROM incidents "
        "WHERE id = ?",
        (incident_id,),
    )
    assert row is not None
    hazard, old_severity, old_cameras, old_active, old_score, version, old_procedure, state = row
    members = tx.execute(
        "SELECT edge_id, camera_id, active, boxes, score, last_at, lat, lon, bearing_deg, fov_deg "
        "FROM incident_alerts WHERE incident_id = ?",
        (incident_id,),
    )
    cameras = sorted({f"{m[0]}/{m[1]}" for m in members})
    active = sum(1 for m in members if m[2])
    score = max((m[4] for m in members), default=0.0)
    last_at = max((m[5] for m in members), default=now)
    located = [(m[6], m[7]) for m in members if m[6] is not None and m[7] is not None]
    lat = sum(p[0] for p in located) / len(located) if located else None
    lon = sum(p[1] for p in located) / len(located) if located else None
    est = estimate_location(sightings_of(members))
    severity, reasons, confidence = situation.assess_incident(tx, incident_id, hazard, members, cfg, now)
    procedure = cfg.response.snapshot(hazard, severity)
    kept = json.loads(old_procedure) if old_procedure else None
    if procedure and kept and kept.get("id") == procedure["id"]:
        procedure = kept  # the text the officer saw and ticked stays, even if the config changed since
    closed = state in ("resolved", "false_alarm")  # a closed incident's version stays: no repeated Cancels
    bump = (
        not already_bumped
        and not closed
        and (
            severity != old_severity
            or len(cameras) != old_cameras
            or (old_active > 0) != (active > 0)
            or score >= old_score + 0.1
        )
    )
    tx.execute(
        "UPDATE incidents SET severity = ?, camera_count = ?, cameras = ?, active_alerts = ?, score_max = ?, "
        "last_alert_at = ?, lat = ?, lon = ?, est_lat = ?, est_lon = ?, updated_at = ?, version = ?, "
        "severity_reasons = ?, confidence = ?, procedure = ? WHERE id = ?",
        (
            severity,
            len(cameras),
            json.dumps(cameras),
            active,
            max(score, old_score),
            last_at,
            lat,
            lon,
            est[0] if est else None,
            est[1] if est else None,
            now,
            version + (1 if bump and old_cameras > 0 else 0),
            json.dumps(reasons, separators=(",", ":")),
            confidence,
            json.dumps(procedure, ensure_ascii=False, separators=(",", ":")) if procedure else None,
            incident_id,
        ),
    )


def sightings_of(members: list[tuple]) -> list[Sighting]:
    """Lines of sight of members with a position, bearing and field of view (latest region each)."""
    out = []
    for edge_id, camera_id, _active, boxes, _score, _last, lat, lon, bearing, fov in members:
        regions = json.loads(boxes)
        if None in (lat, lon, bearing, fov) or not regions:
            continue
        best = max(regions, key=lambda b: b["score"])
        out.append(sighting(f"{edge_id}/{camera_id}", lat, lon, bearing, fov, best["x1"], best["x2"]))
    return out


# -- operator actions ---------------------------------------------------------------------------------
ALLOWED = {
    "acknowledge": ("open",),
    "resolve": ("open", "acknowledged"),
    "false_alarm": ("open", "acknowledged", "resolved"),
    "reopen": ("resolved", "false_alarm"),
}


def act(
    tx: Tx,
    incident_id: int,
    action: str,
    actor: str,
    note: str,
    now: float,
    suppress_s: float = 0.0,
    note_to_close: tuple[str, ...] = (),
) -> None:
    """Acknowledge, resolve, mark false alarm or reopen; every action records who and why.

    A false alarm suppresses the same camera, hazard and region for `suppress_s` (docs/central.md); a
    reopen ends the incident's suppressions. Closing an incident whose severity is in `note_to_close`
    needs a note."""
    tx.lock(f"incident:{incident_id}")
    row = tx.one("SELECT state, severity FROM incidents WHERE id = ?", (incident_id,))
    if row is None:
        raise ActionError(404, f"incident {incident_id} does not exist")
    state, severity = row
    if state not in ALLOWED[action]:
        raise ActionError(409, f"cannot {action.replace('_', ' ')} an incident that is {state}")
    if action in ("resolve", "false_alarm") and severity in note_to_close and not note.strip():
        raise ActionError(400, f"note: closing a {severity} incident needs a note (what was done, who confirmed it)")
    if action == "acknowledge":
        tx.execute(
            "UPDATE incidents SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, "
            "version = version + 1, updated_at = ? WHERE id = ?",
            (actor, now, now, incident_id),
        )
    elif action in ("resolve", "false_alarm"):
        new_state = "resolved" if action == "resolve" else "false_alarm"
        tx.execute(
            "UPDATE incidents SET state = ?, resolved_by = ?, resolved_at = ?, note = ?, version = version + 1, "
            "updated_at = ? WHERE id = ?",
            (new_state, actor, now, note, now, incident_id),
        )
    else:
        tx.execute(
            "UPDATE incidents SET state = 'open', resolved_by = NULL, resolved_at = NULL, version = version + 1, "
            "updated_at = ? WHERE id = ?",
            (now, incident_id),
        )
    detail: dict = {"from": state, "note": note}
    if action == "false_alarm":
        suppressions.end_for_incident(tx, incident_id, actor, "marked false alarm again", now)
        ids = suppressions.create_for_incident(tx, incident_id, actor, suppress_s, now)
        detail.update(suppression_ids=ids, suppress_until=now + suppress_s if ids else None)
    elif action == "reopen":
        suppressions.end_for_incident(tx, incident_id, actor, "incident reopened", now)
    add_event(tx, incident_id, now, action, actor, detail)


def auto_resolve(tx: Tx, cfg: CentralConfig, now: float) -> list[int]:
    """Resolve open incidents whose alerts all ended and that stayed quiet long enough."""
    rows = tx.execute(
        "SELECT id FROM incidents WHERE state IN ('open', 'acknowledged') AND active_alerts = 0 "
        "AND last_alert_at < ? AND updated_at < ?",
        (now - cfg.correlation.auto_resolve_after_s, now - cfg.correlation.auto_resolve_after_s),
    )
    ids = [r[0] for r in rows]
    for incident_id in ids:
        tx.execute(
            "UPDATE incidents SET state = 'resolved', resolved_by = ?, resolved_at = ?, version = version + 1, "
            "updated_at = ? WHERE id = ? AND state IN ('open', 'acknowledged')",
            (SYSTEM, now, now, incident_id),
        )
        add_event(tx, incident_id, now, "auto_resolved", SYSTEM, {"quiet_s": cfg.correlation.auto_resolve_after_s})
    return ids


__all__ = ["OPEN_STATES", "ActionError", "AlertOutcome", "act", "apply_alert", "auto_resolve", "refresh"]
