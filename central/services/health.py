"""Edge and camera health from the edges' status, availability and heartbeat messages; the database's own."""

from __future__ import annotations

import json

from hazardwatch.central.store import Tx
from hazardwatch.contract import Availability, CameraStatus, Heartbeat

# Placement columns a status sets only when it carries them: an older edge's status keeps what alerts set.
PLACED = ("lat", "lon", "bearing_deg", "fov_deg", "height_m", "tilt_deg", "range_near_m", "range_far_m")


def apply_camera_status(tx: Tx, msg: CameraStatus, now: float) -> None:
    """Retained statuses are replayed on every (re)subscribe: only a newer one may overwrite."""
    near, far = msg.view_range_m or (None, None)
    keep = ", ".join(f"{c} = COALESCE(excluded.{c}, cameras.{c})" for c in PLACED)
    tx.write(
        "INSERT INTO cameras(edge_id, camera_id, state, reason, since, last_frame_at, updated_at, diagnoses, night, "
        f"normal, name, {', '.join(PLACED)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (edge_id, camera_id) DO UPDATE SET state = excluded.state, "
        "reason = excluded.reason, since = excluded.since, last_frame_at = excluded.last_frame_at, "
        "updated_at = excluded.updated_at, diagnoses = excluded.diagnoses, night = excluded.night, "
        "normal = excluded.normal, "
        f"name = CASE WHEN excluded.name = '' THEN cameras.name ELSE excluded.name END, {keep} "
        "WHERE cameras.since IS NULL OR cameras.since <= excluded.since",
        (
            msg.edge_id,
            msg.camera_id,
            msg.state.value,
            msg.reason,
            msg.since,
            msg.last_frame_at,
            now,
            json.dumps(msg.diagnoses, separators=(",", ":")),
            1 if msg.night else 0,
            json.dumps({h.value: p for h, p in msg.normal.items()}, separators=(",", ":")),
            msg.camera_name or "",
            msg.lat,
            msg.lon,
            msg.bearing_deg,
            msg.fov_deg,
            msg.height_m,
            msg.tilt_deg,
            near,
            far,
        ),
    )


def apply_availability(tx: Tx, msg: Availability, now: float) -> None:
    tx.write(
        "INSERT INTO edges(edge_id, state, since, last_seen) VALUES (?, ?, ?, ?) ON CONFLICT (edge_id) DO UPDATE "
        "SET state = excluded.state, since = CASE WHEN edges.state = excluded.state THEN edges.since "
        "ELSE excluded.since END, last_seen = excluded.last_seen WHERE edges.last_seen <= excluded.last_seen",
        (msg.edge_id, msg.state, msg.sent_at, msg.sent_at),
    )


def apply_heartbeat(tx: Tx, msg: Heartbeat, now: float) -> None:
    tx.write(
        "INSERT INTO edges(edge_id, state, since, last_seen, heartbeat) VALUES (?, 'online', ?, ?, ?) "
        "ON CONFLICT (edge_id) DO UPDATE SET last_seen = excluded.last_seen, heartbeat = excluded.heartbeat "
        "WHERE edges.last_seen <= excluded.last_seen",
        (msg.edge_id, msg.sent_at, msg.sent_at, msg.model_dump_json(exclude={"schema_version", "kind"})),
    )


def ping(tx: Tx) -> None:
    """Raises when the database does not answer (the health check)."""
    tx.execute("SELECT 1")
