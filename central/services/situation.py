"""The facts an incident's severity rests on, read from the store, and the resulting severity, reasons
and calibrated confidence (rules: `incidents/severity.py`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.correlate import Region
from hazardwatch.central.incidents.severity import Facts, assess
from hazardwatch.central.incidents.suppress import area, union
from hazardwatch.central.services.sqlin import matching
from hazardwatch.central.store import Tx
from hazardwatch.contract import Hazard


def _area(boxes_json: str) -> float | None:
    boxes = json.loads(boxes_json)
    if not boxes:
        return None
    return area(union([Region(b["x1"], b["y1"], b["x2"], b["y2"]) for b in boxes]))


def first_sightings(tx: Tx, incident_ids: list[int]) -> dict[int, list[tuple]]:
    """Each camera's first (non-end) alert event per incident: {incident: [(edge_id, camera_id, boxes)]}."""
    out: dict[int, list[tuple]] = {i: [] for i in incident_ids}
    if not incident_ids:
        return out
    where, params = matching(tx, "incident_id", incident_ids)
    rows = tx.execute(
        "SELECT incident_id, edge_id, camera_id, boxes FROM alert_events WHERE id IN (SELECT MIN(id) "
        f"FROM alert_events WHERE {where} AND state <> 'end' GROUP BY incident_id, edge_id, camera_id)",
        params,
    )
    for incident_id, edge_id, camera_id, boxes in rows:
        out[incident_id].append((edge_id, camera_id, boxes))
    return out


def growth_of(firsts: list[tuple], latest: dict[str, float]) -> float | None:
    """How much the detected area grew: each camera's latest area over its first, the largest ratio."""
    ratios = []
    for edge_id, camera_id, boxes in firsts:
        first = _area(boxes)
        now = latest.get(f"{edge_id}/{camera_id}")
        if first and now:
            ratios.append(now / first)
    return max(ratios) if ratios else None


def weather_rows(tx: Tx, hazard: str) -> list[tuple]:
    """The hazard's raised weather watch, one row per camera: (edge_id, camera_id, level, reason, until)."""
    return tx.execute(
        "SELECT edge_id, camera_id, level, reason, until FROM weather_watch WHERE hazard = ? AND level <> 'normal'",
        (hazard,),
    )


def weather_of(rows: list[tuple], cameras: list[str], now: float) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (f"{e}/{c}", level, reason or "")
        for e, c, level, reason, until in rows
        if f"{e}/{c}" in cameras and (until is None or until > now)
    )


def _local_hour(cfg: CentralConfig, at: float) -> int | None:
    try:
        return datetime.fromtimestamp(at, ZoneInfo(cfg.timezone)).hour
    except (KeyError, ValueError, OverflowError, OSError):  # a stored time no datetime can hold
        return None


def confidence_from(rows: list[tuple]) -> float | None:
    """(active, confidence) of each alert -> the highest of the active ones (of all once none is active)."""
    live = [c for a, c in rows if a and c is not None]
    every = [c for _a, c in rows if c is not None]
    return max(live or every) if (live or every) else None


def assess_with(
    hazard: str,
    members: list[tuple],
    confidence: float | None,
    firsts: list[tuple],
    weather: list[tuple],
    cfg: CentralConfig,
    now: float,
) -> tuple[str, list[dict[str, Any]], float | None]:
    """(severity, reasons, confidence) of an incident from facts read beforehand (`first_sightings`,
    `weather_rows`, `confidence_from`), so a batch of incidents is assessed from a few queries."""
    cameras = sorted({f"{m[0]}/{m[1]}" for m in members})
    latest: dict[str, float] = {}
    for m in members:
        a = _area(m[3])
        if a:
            key = f"{m[0]}/{m[1]}"
            latest[key] = max(latest.get(key, 0.0), a)
    last_at = max((m[5] for m in members), default=now)
    facts = Facts(
        hazard=hazard,
        base=cfg.severity.get(Hazard(hazard), "moderate"),
        cameras=tuple(cameras),
        confidence=confidence,
        growth=growth_of(firsts, latest),
        weather=weather_of(weather, cameras, now),
        local_hour=_local_hour(cfg, last_at),
    )
    severity, reasons = assess(facts, cfg.severity_rules)
    return severity, reasons, confidence
