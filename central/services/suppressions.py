"""False-alarm suppressions on the store: made by the false-alarm action, consulted for every alert,
listed and lifted through the API. The rules themselves are `incidents/suppress.py`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hazardwatch.central.incidents.correlate import Region
from hazardwatch.central.incidents.suppress import Suppression, area, union
from hazardwatch.central.services.sqlin import matching, matching_pairs
from hazardwatch.central.store import Tx

COLUMNS = (
    "id, incident_id, edge_id, camera_id, hazard, x1, y1, x2, y2, ref_score, ref_area, created_by, created_at, "
    "ends_at, ended_at, ended_by, end_reason, quiet_count, last_quiet_at"
)


def _row_dict(r: tuple, now: float) -> dict[str, Any]:
    keys = COLUMNS.split(", ")
    d = dict(zip(keys, r, strict=True))
    d["region"] = {k: d.pop(k) for k in ("x1", "y1", "x2", "y2")}
    d["active"] = d["ended_at"] is None and d["ends_at"] > now
    return d


def _suppression(r: tuple) -> Suppression:
    return Suppression(
        id=r[0],
        incident_id=r[1],
        camera=f"{r[2]}/{r[3]}",
        hazard=r[4],
        region=Region(r[5], r[6], r[7], r[8]),
        ref_score=r[9],
        ref_area=r[10],
        ends_at=r[13],
    )


def create_for_incident(tx: Tx, incident_id: int, actor: str, duration_s: float, now: float) -> list[int]:
    """One suppression per camera of the incident: the union of every region that camera reported."""
    if duration_s <= 0:
        return []
    hazard = tx.scalar("SELECT hazard FROM incidents WHERE id = ?", (incident_id,))
    per_camera: dict[tuple[str, str], tuple[list[Region], float]] = {}
    for edge_id, camera_id, boxes, score in tx.execute(
        "SELECT edge_id, camera_id, boxes, score FROM alert_events WHERE incident_id = ? AND state != 'end'",
        (incident_id,),
    ):
        regions, best = per_camera.setdefault((edge_id, camera_id), ([], 0.0))
        regions.extend(Region(b["x1"], b["y1"], b["x2"], b["y2"]) for b in json.loads(boxes))
        per_camera[(edge_id, camera_id)] = (regions, max(best, score, *(b["score"] for b in json.loads(boxes))))
    ids = []
    for (edge_id, camera_id), (regions, best) in sorted(per_camera.items()):
        region = union(regions)
        largest = max((area(r) for r in regions), default=1.0)
        ids.append(
            tx.scalar(
                "INSERT INTO suppressions(incident_id, edge_id, camera_id, hazard, x1, y1, x2, y2, ref_score, "
                "ref_area, created_by, created_at, ends_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    incident_id,
                    edge_id,
                    camera_id,
                    hazard,
                    region.x1,
                    region.y1,
                    region.x2,
                    region.y2,
                    best,
                    largest,
                    actor,
                    now,
                    now + duration_s,
                ),
            )
        )
    return ids


def active_for(tx: Tx, edge_id: str, camera_id: str, hazard: str, now: float) -> list[Suppression]:
    rows = tx.execute(
        f"SELECT {COLUMNS} FROM suppressions WHERE edge_id = ? AND camera_id = ? AND hazard = ? AND ends_at > ? "
        "AND ended_at IS NULL ORDER BY id DESC",
        (edge_id, camera_id, hazard, now),
    )
    return [_suppression(r) for r in rows]


@dataclass
class Active:
    """The active suppressions of an ingest batch's cameras, read in one statement instead of one per alert.

    Visibility: `read` runs inside the batch's transaction, after its correlation locks and after the
    batch's memberships and incidents' closes were read, and every alert of the batch was received
    before the batch began. So an alert sees every suppression committed before it arrived (an
    operator's false alarm suppresses the next alert received after its commit), and one committed
    while the batch runs takes effect from the next batch, which also holds those alerts' later events.
    Within the batch it stays current: a suppression an alert breaks through (`end`) no longer applies
    to the alerts after it. A camera the read did not cover, or a later `now`, is read as before, one
    query for the alert.
    """

    read_at: float | None = None
    cameras: set[tuple[str, str]] = field(default_factory=set)
    by_camera: dict[tuple[str, str], list[Suppression]] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)  # ended by this batch's alerts

    def read(self, tx: Tx, cameras: Iterable[tuple[str, str]], now: float) -> None:
        """Every suppression active at `now` of these (edge_id, camera_id) pairs, one statement."""
        wanted = sorted(set(cameras))
        if not wanted:
            return
        where, params = matching_pairs(tx, ("edge_id", "camera_id"), ("text", "text"), wanted)
        rows = tx.execute(
            f"SELECT {COLUMNS} FROM suppressions WHERE {where} AND ends_at > ? AND ended_at IS NULL ORDER BY id DESC",
            [*params, now],
        )
        self.read_at, self.cameras, self.by_camera = now, set(wanted), {}
        for r in rows:
            self.by_camera.setdefault((r[2], r[3]), []).append(_suppression(r))

    def of(self, tx: Tx, edge_id: str, camera_id: str, hazard: str, now: float) -> list[Suppression]:
        """The camera's suppressions of `hazard` active at `now`, newest first."""
        if self.read_at is None or now != self.read_at or (edge_id, camera_id) not in self.cameras:
            return active_for(tx, edge_id, camera_id, hazard, now)
        found = self.by_camera.get((edge_id, camera_id), [])
        return [s for s in found if s.hazard == hazard and s.id not in self.ended]

    def end(self, tx: Tx, s: Suppression, actor: str, reason: str, now: float) -> None:
        """End `s` early in the store and for the rest of the batch."""
        end(tx, s.id, actor, reason, now)
        self.ended.add(s.id)


def record_quiet(tx: Tx, suppression_id: int, now: float) -> None:
    """Count a look it kept quiet (nobody reads the result: in a pipelined batch it does not wait)."""
    tx.write(
        "UPDATE suppressions SET quiet_count = quiet_count + 1, last_quiet_at = ? WHERE id = ?", (now, suppression_id)
    )


def end(tx: Tx, suppression_id: int, actor: str, reason: str, now: float) -> bool:
    """End early (an operator lifts it, a stronger detection breaks through, the incident reopens)."""
    rows = tx.execute(
        "UPDATE suppressions SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL "
        "AND ends_at > ? RETURNING id",
        (now, actor, reason, suppression_id, now),
    )
    return bool(rows)


def end_for_incident(tx: Tx, incident_id: int, actor: str, reason: str, now: float) -> None:
    tx.execute(
        "UPDATE suppressions SET ended_at = ?, ended_by = ?, end_reason = ? WHERE incident_id = ? "
        "AND ended_at IS NULL AND ends_at > ?",
        (now, actor, reason, incident_id, now),
    )


def listing(tx: Tx, now: float, include_ended: bool = False, incident_id: int | None = None) -> list[dict[str, Any]]:
    where, params = [], []
    if not include_ended:
        where.append("ended_at IS NULL AND ends_at > ?")
        params.append(now)
    if incident_id is not None:
        where.append("incident_id = ?")
        params.append(incident_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = tx.execute(f"SELECT {COLUMNS} FROM suppressions {clause} ORDER BY id DESC LIMIT 500", params)
    return [_row_dict(r, now) for r in rows]


def listing_of(tx: Tx, now: float, incident_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Every suppression (ended too) of each of these incidents, newest first, from one query."""
    if not incident_ids:
        return {}
    out: dict[int, list[dict[str, Any]]] = {}
    where, params = matching(tx, "incident_id", incident_ids)
    rows = tx.execute(f"SELECT {COLUMNS} FROM suppressions WHERE {where} ORDER BY id DESC", params)
    for r in rows:
        out.setdefault(r[1], []).append(_row_dict(r, now))
    return out
