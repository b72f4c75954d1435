"""Alerts into incidents on the store: correlation, recurrence after a close, false-alarm suppressions.

The rules are `incidents/correlate.py`; this module reads what they need and writes the outcome. Ingest
stores a whole batch of MQTT messages in one transaction. What correlation never reads (alert history,
evidence, timeline, camera facts) and the incidents' aggregates go out at the end of the batch
(`AlertBatch`), one multi-row statement each. What it reads back within the batch waits only until the
next read: new incidents are inserted at once, and the alerts' memberships (incident_alerts) gather
until correlation next reads the store, then go out as one upsert. A batch of updates is a handful of
statements, whatever its size, instead of about five per alert.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.correlate import SYSTEM, Choice, Member, Region
from hazardwatch.central.services.aggregates import COMPACT, refresh_many
from hazardwatch.central.services.placement import for_attached, for_unattached, stays
from hazardwatch.central.services.sqlin import matching_pairs
from hazardwatch.central.services.suppressions import Active
from hazardwatch.central.store import Tx
from hazardwatch.contract import Alert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertOutcome:
    incident_id: int | None  # None for a duplicate
    duplicate: bool
    created: bool = False
    reopened: bool = False


@dataclass(frozen=True)
class _Known:
    """What the store already knows of an alert: the event (edge, seq), its incident and that incident's close."""

    seen: str | None
    own: int | None
    last_seq: int | None
    closed: tuple[str, float] | None  # (state, resolved_at) when an operator closed `own`


def _closed(state: str | None, resolved_by: str | None, resolved_at: float | None) -> tuple[str, float] | None:
    if state in ("resolved", "false_alarm") and resolved_by not in (None, SYSTEM):
        return state, float(resolved_at or 0.0)
    return None


# One alert's membership. An update moves the alert to its incident with its latest look; an end only
# marks it inactive where it is (`active` = 0 tells the two apart). Either applies only over an older seq.
UPSERT_MEMBERS = (
    "INSERT INTO incident_alerts(incident_id, edge_id, alert_id, camera_id, active, boxes, score, last_at, "
    "lat, lon, bearing_deg, fov_deg, last_seq, confidence) VALUES {rows} "
    "ON CONFLICT (edge_id, alert_id) DO UPDATE SET "
    "incident_id = CASE WHEN excluded.active = 1 THEN excluded.incident_id ELSE incident_alerts.incident_id END, "
    "active = excluded.active, "
    "boxes = CASE WHEN excluded.active = 1 THEN excluded.boxes ELSE incident_alerts.boxes END, "
    "score = CASE WHEN excluded.active = 1 THEN excluded.score ELSE incident_alerts.score END, "
    "last_at = excluded.last_at, last_seq = excluded.last_seq, "
    "confidence = CASE WHEN excluded.active = 1 THEN excluded.confidence ELSE incident_alerts.confidence END "
    "WHERE incident_alerts.last_seq IS NULL OR incident_alerts.last_seq < excluded.last_seq"
)


@dataclass
class AlertBatch:
    """The writes of one batch: those correlation never reads back, sent together by `flush`, and the
    memberships, sent by `write_members` before correlation reads the store again."""

    members: dict[tuple[str, str], tuple] = field(default_factory=dict)  # (edge, alert_id) -> upsert row
    evidence: list[tuple] = field(default_factory=list)
    alert_events: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    cameras: dict[tuple[str, str], tuple] = field(default_factory=dict)
    touched: dict[int, bool] = field(default_factory=dict)  # incident -> its version was already bumped
    seen: dict[tuple[str, int], str] = field(default_factory=dict)  # (edge, seq) -> alert_id, this batch
    # What `prefetch` read of the batch's alerts, kept current as the batch applies them.
    stored: dict[tuple[str, int], str] = field(default_factory=dict)  # (edge, seq) -> alert_id in the store
    known: dict[tuple[str, str], _Known] = field(default_factory=dict)  # (edge, alert_id) -> membership
    covered: set[tuple[str, str]] = field(default_factory=set)
    covered_events: set[tuple[str, int]] = field(default_factory=set)
    suppressions: Active = field(default_factory=Active)

    def prefetch(self, tx: Tx, alerts: Sequence[Alert], now: float) -> None:
        """Read in three queries what the store knows of every alert of the batch (call with the batch's
        correlation locks held, so no other instance changes it meanwhile): events, memberships with
        their incidents' closes, then the false-alarm suppressions of the cameras whose alerts may be
        judged against them (`Active` says what a batch sees of an operator's false alarm)."""
        events = sorted({(a.edge_id, a.seq) for a in alerts})
        members = sorted({(a.edge_id, a.alert_id) for a in alerts})
        if not events:
            return
        where, params = matching_pairs(tx, ("edge_id", "seq"), ("text", "bigint"), events)
        for edge, seq, alert_id in tx.execute(f"SELECT edge_id, seq, alert_id FROM alert_events WHERE {where}", params):
            self.stored[(edge, int(seq))] = alert_id
        where, params = matching_pairs(tx, ("ia.edge_id", "ia.alert_id"), ("text", "text"), members)
        for edge, alert_id, own, last_seq, state, by, at in tx.execute(
            "SELECT ia.edge_id, ia.alert_id, ia.incident_id, ia.last_seq, i.state, i.resolved_by, i.resolved_at "
            "FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id "
            f"WHERE {where}",
            params,
        ):
            self.known[(edge, alert_id)] = _Known(None, own, last_seq, _closed(state, by, at))
        self.covered.update(members)
        self.covered_events.update(events)
        # Only a look that is in no incident yet, or in one an operator closed, meets the suppressions.
        judged = []
        for a in alerts:
            k = self.known.get((a.edge_id, a.alert_id))
            if a.state.value != "end" and (k is None or k.closed is not None):
                judged.append((a.edge_id, a.camera_id))
        self.suppressions.read(tx, judged, now)

    def applied(self, alert: Alert, known: _Known, incident_id: int) -> None:
        """Keep the prefetched membership current, as the store's upsert just changed it."""
        key = (alert.edge_id, alert.alert_id)
        if key not in self.covered:
            return
        if known.own is None:
            own, last_seq = incident_id, alert.seq
        elif known.last_seq is None or alert.seq > known.last_seq:
            own, last_seq = (known.own if alert.state.value == "end" else incident_id), alert.seq
        else:
            own, last_seq = known.own, known.last_seq
        self.known[key] = _Known(None, own, last_seq, known.closed if own == known.own else None)

    def event(self, incident_id: int, at: float, kind: str, actor: str, detail: dict) -> None:
        self.events.append((incident_id, at, kind, actor, COMPACT(detail)))

    def touch(self, incident_id: int, already_bumped: bool = False) -> None:
        self.touched[incident_id] = self.touched.get(incident_id, False) or already_bumped

    def member(self, tx: Tx, row: tuple) -> None:
        """Queue an alert's membership upsert (one statement cannot upsert one row twice: a second event
        of the same alert sends the first one's out)."""
        key = (row[1], row[2])
        if key in self.members:
            self.write_members(tx)
        self.members[key] = row

    def write_members(self, tx: Tx) -> None:
        """Send the queued memberships (before anything reads incident_alerts)."""
        tx.write_rows(UPSERT_MEMBERS, list(self.members.values()))
        self.members = {}

    def flush(self, tx: Tx, cfg: CentralConfig, now: float) -> None:
        """Write what was deferred, then refresh every touched incident once (in id order)."""
        self.write_members(tx)
        tx.write_rows(
            "INSERT INTO evidence(id, incident_id, content_type, data, created_at) VALUES {rows}", self.evidence
        )
        tx.write_rows(
            "INSERT INTO alert_events(edge_id, seq, alert_id, state, camera_id, hazard, score, boxes, zone, "
            "first_frame_at, last_frame_at, model, received_at, incident_id, evidence_id, confidence) VALUES {rows}",
            self.alert_events,
        )
        tx.write_rows(
            "INSERT INTO cameras(edge_id, camera_id, name, lat, lon, bearing_deg, fov_deg, updated_at) "
            "VALUES {rows} ON CONFLICT (edge_id, camera_id) DO UPDATE SET name = excluded.name, "
            "lat = excluded.lat, lon = excluded.lon, bearing_deg = excluded.bearing_deg, "
            "fov_deg = excluded.fov_deg, updated_at = excluded.updated_at",
            [self.cameras[k] for k in sorted(self.cameras)],
        )
        tx.write_rows("INSERT INTO incident_events(incident_id, at, kind, actor, detail) VALUES {rows}", self.events)
        refresh_many(tx, self.touched, cfg, now)
        self.evidence, self.alert_events, self.events = [], [], []
        self.cameras, self.touched, self.seen = {}, {}, {}


def _jpeg_or_none(alert: Alert) -> bytes | None:
    """The snapshot's bytes if they are base64 of a JPEG; else None. Evidence is served as image/jpeg
    to browsers and receivers, so anything else (HTML, a script, junk) is dropped and the alert kept."""
    try:
        data = base64.b64decode(alert.snapshot_jpeg_b64 or "", validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if data[:3] == b"\xff\xd8\xff":
        return data
    log.warning(
        "alert %s/%s seq %d: snapshot is not a base64 JPEG; evidence dropped, alert kept",
        alert.edge_id,
        alert.camera_id,
        alert.seq,
    )
    return None


def _known(tx: Tx, alert: Alert, batch: AlertBatch) -> _Known:
    event = (alert.edge_id, alert.seq)
    if (alert.edge_id, alert.alert_id) in batch.covered and event in batch.covered_events:
        k = batch.known.get((alert.edge_id, alert.alert_id)) or _Known(None, None, None, None)
        return _Known(batch.stored.get(event) or batch.seen.get(event), k.own, k.last_seq, k.closed)
    batch.write_members(tx)
    row = tx.one(
        "SELECT (SELECT alert_id FROM alert_events WHERE edge_id = ? AND seq = ?), ia.incident_id, ia.last_seq, "
        "i.state, i.resolved_by, i.resolved_at FROM (SELECT 1 AS one) o "
        "LEFT JOIN incident_alerts ia ON ia.edge_id = ? AND ia.alert_id = ? "
        "LEFT JOIN incidents i ON i.id = ia.incident_id",
        (alert.edge_id, alert.seq, alert.edge_id, alert.alert_id),
    )
    seen, own, last_seq, state, resolved_by, resolved_at = row or (None,) * 6
    return _Known(seen or batch.seen.get(event), own, last_seq, _closed(state, resolved_by, resolved_at))


def apply_alert(tx: Tx, alert: Alert, cfg: CentralConfig, now: float, batch: AlertBatch | None = None) -> AlertOutcome:
    """Store one alert event and fold it into its incident.

    Idempotent by (edge, seq), which the contract says identifies an event. The alert's state follows its
    highest seq, so an older event arriving late (an update after its end) is kept in the history only.
    Without a `batch` the deferred writes go out at once; with one, the caller flushes it.
    """
    if batch is None:
        own_batch = AlertBatch()
        outcome = apply_alert(tx, alert, cfg, now, own_batch)
        own_batch.flush(tx, cfg, now)
        return outcome
    known = _known(tx, alert, batch)
    own = known.own
    if known.seen is not None:
        if known.seen != alert.alert_id:
            log.warning(
                "edge %s reused seq %d (alert %s, then %s): kept the first",
                alert.edge_id,
                alert.seq,
                known.seen,
                alert.alert_id,
            )
        return AlertOutcome(None, duplicate=True)
    batch.seen[(alert.edge_id, alert.seq)] = alert.alert_id
    stale = own is not None and known.last_seq is not None and alert.seq < known.last_seq
    # An alert already in an incident stays there (rule 1) unless an operator closed that incident and the
    # hazard is still seen (recurrence, docs/central.md); false-alarm suppressions keep matching looks quiet.
    why: dict
    if stale or (own is not None and stays(alert, known.closed)):
        choice, why = Choice("attach", own), {}
    else:
        batch.write_members(tx)  # placement reads incident_alerts
        me = Member(
            alert.edge_id,
            alert.alert_id,
            f"{alert.edge_id}/{alert.camera_id}",
            tuple(Region(b.x1, b.y1, b.x2, b.y2) for b in alert.boxes),
            alert.last_frame_at,
            alert.lat,
            alert.lon,
        )
        if own is not None:
            choice, why = for_attached(tx, alert, me, own, known.closed, cfg, now, batch.event, batch.suppressions)
        else:
            choice, why = for_unattached(tx, alert, me, cfg, now, batch.event, batch.suppressions)
    created = reopened = False
    if choice.action == "new":
        incident_id = tx.scalar(
            "INSERT INTO incidents(hazard, state, severity, opened_at, updated_at, last_alert_at, previous_id) "
            "VALUES (?, 'open', ?, ?, ?, ?, ?) RETURNING id",
            (alert.hazard.value, cfg.severity[alert.hazard], now, now, alert.last_frame_at, choice.previous_id),
        )
        batch.event(incident_id, now, "opened", SYSTEM, {"previous_id": choice.previous_id, **why})
        if own is not None and own != incident_id:
            batch.event(own, now, "recurred", SYSTEM, {"new_id": incident_id, **why})
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
            batch.event(incident_id, now, "reopened", SYSTEM, {"alert_id": alert.alert_id})
            reopened = True
    confidence = _store_alert(tx, alert, incident_id, cfg, now, batch)
    batch.event(
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
            "evidence_id": batch.alert_events[-1][14],
            **({"stale": True} if stale else {}),
            **({"suppressed_by": why["suppressed_by"]} if "suppressed_by" in why else {}),
        },
    )
    batch.applied(alert, known, incident_id)
    batch.touch(incident_id, already_bumped=reopened)
    if own is not None and own != incident_id:
        batch.touch(own)  # the alert moved out: the closed incident no longer counts it
    return AlertOutcome(incident_id, duplicate=False, created=created, reopened=reopened)


def _store_alert(tx: Tx, alert: Alert, incident_id: int, cfg: CentralConfig, now: float, batch: AlertBatch) -> float:
    """The alert's membership before correlation next reads; its history, evidence and camera at the end."""
    boxes = json.dumps([b.model_dump() for b in alert.boxes])
    confidence, _calibrated = cfg.confidence.calibrate(alert.model_name, alert.score)
    batch.member(
        tx,
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
        batch.evidence.append((evidence_id, incident_id, "image/jpeg", image, now))
    batch.alert_events.append(
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
        )
    )
    if alert.state.value == "new":  # camera facts ride on every alert; storing them once per alert is enough
        batch.cameras[(alert.edge_id, alert.camera_id)] = (
            alert.edge_id,
            alert.camera_id,
            alert.camera_name,
            alert.lat,
            alert.lon,
            alert.bearing_deg,
            alert.fov_deg,
            now,
        )
    return confidence
