"""Silences: mute notifications for a camera, edge, hazard and/or area over a time window.

A silenced incident is still recorded and visible; only its notifications wait. When the silence
expires the next dispatch notifies whatever changed meanwhile (as Alertmanager does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hazardwatch.central.config import CircleArea
from hazardwatch.central.incidents.geo import haversine_km
from hazardwatch.central.services.errors import Invalid
from hazardwatch.central.store import Tx


@dataclass(frozen=True)
class Silence:
    id: int
    edge_id: str | None
    camera_id: str | None
    hazard: str | None
    area: CircleArea | None
    starts_at: float
    ends_at: float
    created_by: str
    comment: str

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, hazard: str, cameras: list[str], lat: float | None, lon: float | None) -> bool:
        """All given matchers must hold; a camera matcher holds when every incident camera matches."""
        if self.hazard and self.hazard != hazard:
            return False
        if self.edge_id or self.camera_id:
            for key in cameras:
                edge, cam = key.split("/", 1)
                if (self.edge_id and edge != self.edge_id) or (self.camera_id and cam != self.camera_id):
                    return False
            if not cameras:
                return False
        if self.area:
            if lat is None or lon is None:
                return False
            if haversine_km(lat, lon, self.area.lat, self.area.lon) > self.area.radius_km:
                return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "edge_id": self.edge_id,
            "camera_id": self.camera_id,
            "hazard": self.hazard,
            "area": self.area.model_dump() if self.area else None,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
        }


_COLUMNS = "id, edge_id, camera_id, hazard, area, starts_at, ends_at, created_by, comment"


def _row(r: tuple) -> Silence:
    area = CircleArea.model_validate(json.loads(r[4])) if r[4] else None
    return Silence(r[0], r[1], r[2], r[3], area, r[5], r[6], r[7], r[8])


def create(
    tx: Tx,
    *,
    edge_id: str | None,
    camera_id: str | None,
    hazard: str | None,
    area: CircleArea | None,
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    now: float,
) -> Silence:
    if ends_at <= starts_at:
        raise Invalid("ends_at must be after starts_at")
    if not any((edge_id, camera_id, hazard, area)):
        raise Invalid("a silence needs at least one matcher: edge_id, camera_id, hazard or area")
    sid = tx.scalar(
        "INSERT INTO silences(edge_id, camera_id, hazard, area, starts_at, ends_at, created_by, comment, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            edge_id,
            camera_id,
            hazard,
            area.model_dump_json() if area else None,
            starts_at,
            ends_at,
            created_by,
            comment,
            now,
        ),
    )
    return Silence(sid, edge_id, camera_id, hazard, area, starts_at, ends_at, created_by, comment)


def expire(tx: Tx, silence_id: int, actor: str, now: float) -> bool:
    rows = tx.execute(
        "UPDATE silences SET ends_at = ?, expired_by = ? WHERE id = ? AND ends_at > ? RETURNING id",
        (now, actor, silence_id, now),
    )
    return bool(rows)


def active(tx: Tx, now: float) -> list[Silence]:
    return [
        _row(r) for r in tx.execute(f"SELECT {_COLUMNS} FROM silences WHERE starts_at <= ? AND ends_at > ?", (now, now))
    ]


def listing(tx: Tx, include_expired: bool, now: float) -> list[Silence]:
    if include_expired:
        return [_row(r) for r in tx.execute(f"SELECT {_COLUMNS} FROM silences ORDER BY id DESC LIMIT 500")]
    return [_row(r) for r in tx.execute(f"SELECT {_COLUMNS} FROM silences WHERE ends_at > ? ORDER BY id DESC", (now,))]
