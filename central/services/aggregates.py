"""An incident's aggregates (cameras, activity, score, location, severity) recomputed from its alerts.

Ingest refreshes every incident a batch touched once, at the end of the batch, from a handful of
queries and one UPDATE for the whole batch instead of six statements per alert. The incidents are locked in id order
(`FOR UPDATE` on PostgreSQL) before their alerts are read, so two instances refreshing one incident
take turns and the second reads what the first committed; the fixed order keeps them from deadlocking.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.geo import Sighting, estimate_location, sighting
from hazardwatch.central.services import situation
from hazardwatch.central.services.sqlin import matching
from hazardwatch.central.store import Tx

# json.dumps with options builds an encoder per call; these are built once.
COMPACT = json.JSONEncoder(separators=(",", ":")).encode
COMPACT_UTF8 = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
MEMBER_COLUMNS = "edge_id, camera_id, active, boxes, score, last_at, lat, lon, bearing_deg, fov_deg"

# One statement for every incident of the batch; the casts type a VALUES column that is all NULL.
UPDATE_AGGREGATES = (
    "WITH v(severity, camera_count, cameras, active_alerts, score_max, last_alert_at, lat, lon, est_lat, est_lon, "
    "updated_at, version, severity_reasons, confidence, procedure, id) AS (VALUES {rows}) "
    "UPDATE incidents SET severity = v.severity, camera_count = CAST(v.camera_count AS INTEGER), "
    "cameras = v.cameras, active_alerts = CAST(v.active_alerts AS INTEGER), "
    "score_max = CAST(v.score_max AS DOUBLE PRECISION), last_alert_at = CAST(v.last_alert_at AS DOUBLE PRECISION), "
    "lat = CAST(v.lat AS DOUBLE PRECISION), lon = CAST(v.lon AS DOUBLE PRECISION), "
    "est_lat = CAST(v.est_lat AS DOUBLE PRECISION), est_lon = CAST(v.est_lon AS DOUBLE PRECISION), "
    "updated_at = CAST(v.updated_at AS DOUBLE PRECISION), version = CAST(v.version AS INTEGER), "
    "severity_reasons = v.severity_reasons, confidence = CAST(v.confidence AS DOUBLE PRECISION), "
    "procedure = v.procedure FROM v WHERE incidents.id = CAST(v.id AS BIGINT)"
)


def refresh(tx: Tx, incident_id: int, cfg: CentralConfig, now: float, already_bumped: bool = False) -> None:
    """Recompute one incident's aggregates (see `refresh_many`)."""
    refresh_many(tx, {incident_id: already_bumped}, cfg, now)


def refresh_many(tx: Tx, incidents: Mapping[int, bool], cfg: CentralConfig, now: float) -> None:
    """Recompute the aggregates of `{incident_id: already_bumped}`; bump an incident's version when
    something notifiable changed. A new incident starts at version 1 and a reopen bumps it itself
    (`already_bumped`)."""
    ids = sorted(incidents)
    if not ids:
        return
    where, params = matching(tx, "id", ids)
    rows = tx.execute(
        "SELECT id, hazard, severity, camera_count, active_alerts, score_max, version, procedure, state FROM incidents "
        f"WHERE {where} ORDER BY id{tx.for_update()}",
        params,
    )
    where, params = matching(tx, "incident_id", ids)
    members: dict[int, list[tuple]] = {i: [] for i in ids}
    confidences: dict[int, list[tuple]] = {i: [] for i in ids}
    for row in tx.execute(
        f"SELECT incident_id, {MEMBER_COLUMNS}, confidence FROM incident_alerts WHERE {where}",
        params,
    ):
        members[row[0]].append(tuple(row[1:11]))
        confidences[row[0]].append((row[3], row[11]))
    firsts = situation.first_sightings(tx, ids)
    weather = {h: situation.weather_rows(tx, h) for h in sorted({r[1] for r in rows})}
    updates = []
    for row in rows:
        incident_id, hazard = row[0], row[1]
        updates.append(
            _aggregate(
                row,
                members[incident_id],
                situation.assess_with(
                    hazard,
                    members[incident_id],
                    situation.confidence_from(confidences[incident_id]),
                    firsts[incident_id],
                    weather[hazard],
                    cfg,
                    now,
                ),
                cfg,
                now,
                incidents[incident_id],
            )
        )
    tx.write_rows(UPDATE_AGGREGATES, updates)


def _aggregate(
    row: tuple,
    members: list[tuple],
    assessed: tuple[str, list, float | None],
    cfg: CentralConfig,
    now: float,
    already_bumped: bool,
) -> tuple:
    """The UPDATE's parameters for one incident."""
    incident_id, hazard, old_severity, old_cameras, old_active, old_score, version, old_procedure, state = row
    cameras = sorted({f"{m[0]}/{m[1]}" for m in members})
    active = sum(1 for m in members if m[2])
    score = max((m[4] for m in members), default=0.0)
    last_at = max((m[5] for m in members), default=now)
    located = [(m[6], m[7]) for m in members if m[6] is not None and m[7] is not None]
    lat = sum(p[0] for p in located) / len(located) if located else None
    lon = sum(p[1] for p in located) / len(located) if located else None
    est = estimate_location(sightings_of(members))
    severity, reasons, confidence = assessed
    chosen = cfg.response.select(hazard, severity)
    procedure = None
    if chosen is not None and old_procedure and _procedure_id(old_procedure) == chosen.id:
        procedure = old_procedure  # the text the officer saw and ticked stays, even if the config changed since
    elif chosen is not None:
        procedure = COMPACT_UTF8(cfg.response.snapshot(hazard, severity))
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
    return (
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
        COMPACT(reasons),
        confidence,
        procedure,
        incident_id,
    )


@functools.lru_cache(maxsize=256)
def _procedure_id(text: str) -> str | None:
    """The id of a stored procedure snapshot (a few texts, read back with every refresh)."""
    kept = json.loads(text)
    return kept.get("id") if isinstance(kept, dict) else None


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
