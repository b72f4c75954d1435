"""Read models: the incident view (what the API returns and what notifications carry), lists, health."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hazardwatch.central.services import procedures, suppressions
from hazardwatch.central.services.incidents import sightings_of
from hazardwatch.central.services.sqlin import matching
from hazardwatch.central.store import Tx

INCIDENT_COLUMNS = (
    "id, hazard, state, severity, opened_at, updated_at, last_alert_at, active_alerts, score_max, lat, lon, "
    "est_lat, est_lon, cameras, camera_count, acknowledged_by, acknowledged_at, resolved_by, resolved_at, note, "
    "version, previous_id, severity_reasons, confidence"
)
STATE_ORDER = "CASE state WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END"
SEVERITY_RANK = "CASE severity WHEN 'extreme' THEN 0 WHEN 'severe' THEN 1 WHEN 'moderate' THEN 2 ELSE 3 END"


@dataclass(frozen=True)
class IncidentFilter:
    state: str | None = None
    hazard: str | None = None
    camera: str | None = None  # "edge_id/camera_id"
    since: float | None = None
    limit: int = 50
    offset: int = 0


def evidence_url(base_url: str, evidence_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/v1/evidence/{evidence_id}.jpg"


def _summary(row: tuple) -> dict[str, Any]:
    (
        iid,
        hazard,
        state,
        severity,
        opened_at,
        updated_at,
        last_alert_at,
        active,
        score,
        lat,
        lon,
        est_lat,
        est_lon,
        cameras,
        camera_count,
        ack_by,
        ack_at,
        res_by,
        res_at,
        note,
        version,
        previous_id,
        severity_reasons,
        confidence,
    ) = row
    location = None
    if est_lat is not None:
        location = {"lat": est_lat, "lon": est_lon, "estimated": True}
    elif lat is not None:
        location = {"lat": lat, "lon": lon, "estimated": False}
    return {
        "id": iid,
        "hazard": hazard,
        "state": state,
        "severity": severity,
        "opened_at": opened_at,
        "updated_at": updated_at,
        "last_alert_at": last_alert_at,
        "alerts_active": active,
        "score_max": score,
        "location": location,
        "camera_keys": json.loads(cameras),
        "camera_count": camera_count,
        "acknowledged_by": ack_by,
        "acknowledged_at": ack_at,
        "resolved_by": res_by,
        "resolved_at": res_at,
        "note": note,
        "version": version,
        "previous_id": previous_id,
        "severity_reasons": json.loads(severity_reasons or "[]"),
        "confidence": confidence,
    }


def list_incidents(tx: Tx, f: IncidentFilter) -> tuple[list[dict[str, Any]], int]:
    """Newest and most severe first within each state; open before acknowledged before closed."""
    where: list[str] = []
    params: list[str | float] = []
    if f.state:
        where.append("state = ?")
        params.append(f.state)
    if f.hazard:
        where.append("hazard = ?")
        params.append(f.hazard)
    if f.since is not None:
        where.append("updated_at >= ?")
        params.append(f.since)
    if f.camera:
        where.append("id IN (SELECT incident_id FROM incident_alerts WHERE edge_id || '/' || camera_id = ?)")
        params.append(f.camera)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = tx.scalar(f"SELECT COUNT(*) FROM incidents {clause}", params)
    rows = tx.execute(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents {clause} "
        f"ORDER BY {STATE_ORDER}, {SEVERITY_RANK}, last_alert_at DESC, id DESC LIMIT ? OFFSET ?",
        [*params, f.limit, f.offset],
    )
    return [_summary(r) for r in rows], int(total or 0)


def incident_view(tx: Tx, incident_id: int, base_url: str, site: str = "") -> dict[str, Any] | None:
    """The full incident: cameras with health, sightings, evidence. Notifications carry this too."""
    return incident_views(tx, [incident_id], base_url, site).get(incident_id)


def _camera(m: tuple) -> dict[str, Any]:
    return {
        "edge_id": m[1],
        "camera_id": m[2],
        "name": m[11] or "",
        "lat": m[7],
        "lon": m[8],
        "bearing_deg": m[9],
        "fov_deg": m[10],
        "state": m[12] or "unknown",
        "boxes": json.loads(m[4]),
        "active": bool(m[3]),
        "confidence": m[13],
        "vote_score": m[5],
    }


def _evidence(base_url: str, e: tuple) -> dict[str, Any]:
    return {
        "id": e[1],
        "url": evidence_url(base_url, e[1]),
        "camera": f"{e[2]}/{e[3]}",
        "at": e[4],
        "boxes": json.loads(e[5]),  # raw per-frame model scores, for experts
        "confidence": e[6],
        "vote_score": e[7],
        "model": e[8],
    }


def incident_views(tx: Tx, incident_ids: list[int], base_url: str, site: str = "") -> dict[int, dict[str, Any]]:
    """Full views of several incidents from one set of queries (seven, however many incidents), so a
    planning batch of a burst reads its notifications' payloads at once; missing ids are left out."""
    ids = sorted(set(incident_ids))
    if not ids:
        return {}
    out: dict[int, dict[str, Any]] = {}
    raw_procedures: dict[int, str] = {}
    where, params = matching(tx, "id", ids)
    for row in tx.execute(f"SELECT {INCIDENT_COLUMNS}, procedure FROM incidents WHERE {where}", params):
        view = _summary(row[:-1])
        view["site"] = site
        out[row[0]] = view
        if row[-1]:
            raw_procedures[row[0]] = row[-1]
    members: dict[int, list[tuple]] = {i: [] for i in out}
    where, params = matching(tx, "ia.incident_id", ids)
    for m in tx.execute(
        "SELECT ia.incident_id, ia.edge_id, ia.camera_id, ia.active, ia.boxes, ia.score, ia.last_at, ia.lat, "
        "ia.lon, ia.bearing_deg, ia.fov_deg, c.name, c.state, ia.confidence FROM incident_alerts ia "
        "LEFT JOIN cameras c ON c.edge_id = ia.edge_id AND c.camera_id = ia.camera_id "
        f"WHERE {where} ORDER BY ia.incident_id, ia.last_at",
        params,
    ):
        members.setdefault(m[0], []).append(m)
    evidence: dict[int, list[dict[str, Any]]] = {i: [] for i in out}
    where, params = matching(tx, "ae.incident_id", ids)
    for e in tx.execute(
        "SELECT incident_id, id, edge_id, camera_id, last_frame_at, boxes, confidence, score, model FROM ("
        "SELECT ae.incident_id, e.id, ae.edge_id, ae.camera_id, ae.last_frame_at, ae.boxes, ae.confidence, "
        "ae.score, ae.model, ROW_NUMBER() OVER (PARTITION BY ae.incident_id ORDER BY ae.id DESC) AS n, "
        "ae.id AS event_id FROM alert_events ae JOIN evidence e ON e.id = ae.evidence_id "
        f"WHERE {where}) latest WHERE n <= 10 ORDER BY incident_id, event_id DESC",
        params,
    ):
        evidence.setdefault(e[0], []).append(_evidence(base_url, e))
    successors: dict[int, list[int]] = {}
    where, params = matching(tx, "previous_id", ids)
    for prev, succ in tx.execute(f"SELECT previous_id, id FROM incidents WHERE {where} ORDER BY id", params):
        successors.setdefault(prev, []).append(succ)
    procedure = procedures.procedure_views(tx, raw_procedures)
    suppressed = suppressions.listing_of(tx, time.time(), list(out))
    for iid, view in out.items():
        cameras: dict[str, dict[str, Any]] = {}
        for m in members.get(iid, []):
            cameras[f"{m[1]}/{m[2]}"] = _camera(m)
        view["cameras"] = list(cameras.values())
        view["sightings"] = [
            {
                "camera": s.camera,
                "lat": s.lat,
                "lon": s.lon,
                "azimuth_deg": s.azimuth_deg,
                "half_width_deg": s.half_width_deg,
            }
            for s in sightings_of([m[1:11] for m in members.get(iid, [])])
        ]
        view["procedure"] = procedure.get(iid)
        view["suppressions"] = suppressed.get(iid, [])
        view["successor_ids"] = successors.get(iid, [])
        view["evidence"] = evidence.get(iid, [])
    return out


def timeline(tx: Tx, incident_id: int, limit: int = 500) -> list[dict[str, Any]]:
    rows = tx.execute(
        "SELECT at, kind, actor, detail FROM incident_events WHERE incident_id = ? ORDER BY id LIMIT ?",
        (incident_id, limit),
    )
    return [{"at": r[0], "kind": r[1], "actor": r[2], "detail": json.loads(r[3])} for r in rows]


def cameras(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.execute(
        "SELECT edge_id, camera_id, name, lat, lon, bearing_deg, fov_deg, state, reason, since, last_frame_at, "
        "updated_at, diagnoses, night, height_m, tilt_deg, range_near_m, range_far_m, normal FROM cameras "
        "ORDER BY edge_id, camera_id"
    )
    keys = (
        "edge_id",
        "camera_id",
        "name",
        "lat",
        "lon",
        "bearing_deg",
        "fov_deg",
        "state",
        "reason",
        "since",
        "last_frame_at",
        "updated_at",
    )
    out = []
    for r in rows:
        cam = dict(zip(keys, r[:12], strict=True))
        cam["diagnoses"] = json.loads(r[12] or "{}")
        cam["night"] = bool(r[13])
        cam["blind"] = blind_because(cam["state"], cam["diagnoses"])
        cam["height_m"], cam["tilt_deg"] = r[14], r[15]
        cam["view_range_m"] = [r[16], r[17]] if r[16] is not None else None
        cam["normal"] = json.loads(r[18] or "{}")
        out.append(cam)
    return out


# Diagnoses after which a camera cannot see a hazard (docs/diagnose.md); night_ir and fog are not.
BLIND_DIAGNOSES = ("black", "overexposed", "blank", "covered", "blurred", "view_shifted", "frozen")


def blind_because(state: str, diagnoses: dict[str, float]) -> list[str]:
    """Why a camera cannot see: its blinding diagnoses, `offline`, or `degraded` for a degraded camera
    without a blinding diagnosis (failing to deliver frames, or an edge that does not diagnose):
    counted as blind, because its silence must not read as "no hazard". Empty when it can see."""
    if state == "offline":
        return ["offline"]
    found = [d for d in BLIND_DIAGNOSES if d in diagnoses]
    return found or (["degraded"] if state == "degraded" else [])


def edges(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.execute("SELECT edge_id, state, since, last_seen, heartbeat FROM edges ORDER BY edge_id")
    return [
        {
            "edge_id": r[0],
            "state": r[1],
            "since": r[2],
            "last_seen": r[3],
            "heartbeat": json.loads(r[4]) if r[4] else None,
        }
        for r in rows
    ]


def snapshot(tx: Tx, evidence_id: str) -> tuple[str, bytes] | None:
    """An alert's snapshot (content type, bytes), served at `evidence_url`."""
    row = tx.one("SELECT content_type, data FROM evidence WHERE id = ?", (evidence_id,))
    return None if row is None else (row[0], bytes(row[1]))


def incident_counts(tx: Tx) -> dict[str, int]:
    """How many incidents are in each state (the metrics gauge)."""
    return {state: int(n) for state, n in tx.execute("SELECT state, COUNT(*) FROM incidents GROUP BY state")}
