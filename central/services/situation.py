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
from hazardwatch.central.store import Tx


def _area(boxes_json: str) -> float | None:
    boxes = json.loads(boxes_json)
    if not boxes:
        return None
    return area(union([Region(b["x1"], b["y1"], b["x2"], b["y2"]) for b in boxes]))


def _growth(tx: Tx, incident_id: int, latest: dict[str, float]) -> float | None:
    firsts = tx.execute(
        "SELECT edge_id, camera_id, boxes FROM alert_events WHERE id IN (SELECT MIN(id) FROM alert_events "
        "WHERE incident_id = ? AND state <> 'end' GROUP BY edge_id, camera_id)",
        (incident_id,),
    )
    ratios = []
    for edge_id, camera_id, boxes in firsts:
        first = _area(boxes)
        now = latest.get(f"{edge_id}/{camera_id}")
        if first and now:
            ratios.append(now / first)
    return max(ratios) if ratios else None


def _weather(tx: Tx, hazard: str, cameras: list[str], now: float) -> tuple[tuple[str, str, str], ...]:
    rows = tx.execute(
        "SELECT edge_id, camera_id, level, reason, until FROM weather_watch WHERE hazard = ? AND level <> 'normal'",
        (hazard,),
    )
    return tuple(
        (f"{e}/{c}", level, reason or "")
        for e, c, level, reason, until in rows
        if f"{e}/{c}" in cameras and (until is None or until > now)
    )


def _local_hour(cfg: CentralConfig, at: float) -> int | None:
    try:
        return datetime.fromtimestamp(at, ZoneInfo(cfg.timezone)).hour
    except (KeyError, ValueError, OverflowError, OSError):  # a stored time no datetime can hold (issue 17.2)
        return None


def confidence_of(tx: Tx, incident_id: int) -> float | None:
    """The incident's confidence: the highest of its active alerts (of all alerts once none is active)."""
    rows = tx.execute("SELECT active, confidence FROM incident_alerts WHERE incident_id = ?", (incident_id,))
    live = [c for a, c in rows if a and c is not None]
    every = [c for _a, c in rows if c is not None]
    return max(live or every) if (live or every) else None


def assess_incident(
    tx: Tx, incident_id: int, hazard: str, members: list[tuple], cfg: CentralConfig, now: float
) -> tuple[str, list[dict[str, Any]], float | None]:
    """(severity, reasons, confidence) for the incident as it stands."""
    cameras = sorted({f"{m[0]}/{m[1]}" for m in members})
    latest: dict[str, float] = {}
    for m in members:
        a = _area(m[3])
        if a:
            key = f"{m[0]}/{m[1]}"
            latest[key] = max(latest.get(key, 0.0), a)
    confidence = confidence_of(tx, incident_id)
    last_at = max((m[5] for m in members), default=now)
    facts = Facts(
        hazard=hazard,
        base=cfg.severity.get(hazard, "moderate"),  # type: ignore[call-overload]
        cameras=tuple(cameras),
        confidence=confidence,
        growth=_growth(tx, incident_id, latest),
        weather=_weather(tx, hazard, cameras, now),
        local_hour=_local_hour(cfg, last_at),
    )
    severity, reasons = assess(facts, cfg.severity_rules)
    return severity, reasons, confidence
