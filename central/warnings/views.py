"""Read models of the weather side: warnings on record (with recent rejections) and the raised watch
(with its history), as the API returns them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from hazardwatch.central.store import Tx
from hazardwatch.central.warnings.areas import GeocodeTable
from hazardwatch.central.warnings.cap_model import Area
from hazardwatch.central.warnings.lifecycle import ACTIVE
from hazardwatch.central.warnings.rules import LEVEL_RANK
from hazardwatch.contract import RiskLevel


def warnings_view(
    tx: Tx, now: float, state: str | None = None, limit: int = 100, geocodes: GeocodeTable | None = None
) -> dict[str, Any]:
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    rows = tx.execute(
        "SELECT id, sender, identifier, sent, msg_type, status, event, severity, headline, effective, expires, infos, "
        f"state, reason, replaced_by, source, deviations, received_at, updated_at FROM weather_warnings {where} "
        "ORDER BY CASE state WHEN 'active' THEN 0 ELSE 1 END, updated_at DESC, id DESC LIMIT ?",
        [*params, limit],
    )
    items = []
    for r in rows:
        infos = json.loads(r[11])
        items.append(
            {
                "id": r[0],
                "sender": r[1],
                "identifier": r[2],
                "sent": r[3],
                "msg_type": r[4],
                "status": r[5],
                "event": r[6],
                "severity": r[7],
                "headline": r[8],
                "effective": r[9],
                "expires": r[10],
                "state": r[12],
                "in_force": r[12] == ACTIVE and r[9] <= now < r[10],
                "reason": r[13],
                "replaced_by": r[14],
                "source": r[15],
                "deviations": json.loads(r[16]),
                "received_at": r[17],
                "updated_at": r[18],
                "levels": _merge_levels(i["levels"] for i in infos),
                "areas": [a["desc"] for i in infos for a in i["areas"]][:50],
                "geometry": area_geojson([Area.from_dict(a) for i in infos for a in i["areas"]], geocodes or {}),
            }
        )
    rejected = [
        {"at": at, **json.loads(detail)}
        for at, detail in tx.execute(
            "SELECT at, detail FROM weather_events WHERE kind = 'rejected' ORDER BY id DESC LIMIT 20"
        )
    ]
    return {"items": items, "rejected": rejected}


def area_geojson(areas: Iterable[Area], geocodes: GeocodeTable) -> dict[str, Any]:
    """A warning's areas as GeoJSON for the map: its polygons (and those of configured geocodes it names) as
    Polygons in lon/lat order, its circles as Points with `radius_m` (GeoJSON has no circle). A shape repeated
    (the same area in each language's info block) is drawn once."""
    features: list[dict[str, Any]] = []
    seen: set[str] = set()
    for area in areas:
        polygons = list(area.polygons)
        for code in area.geocodes:
            entry = geocodes.get((code[0].strip(), code[1].strip()))
            polygons.extend(entry.polygons if entry else ())
        for poly in polygons:
            ring = [[lon, lat] for lat, lon in poly]
            if ring and ring[0] != ring[-1]:
                ring.append(ring[0])
            _add(features, seen, _feature({"type": "Polygon", "coordinates": [ring]}, area.desc))
        for lat, lon, radius_km in area.circles:
            _add(features, seen, _feature({"type": "Point", "coordinates": [lon, lat]}, area.desc, radius_km * 1000))
    return {"type": "FeatureCollection", "features": features}


def _add(features: list[dict[str, Any]], seen: set[str], feature: dict[str, Any]) -> None:
    key = json.dumps([feature["geometry"], feature["properties"].get("radius_m")])
    if key not in seen:
        seen.add(key)
        features.append(feature)


def _feature(geometry: dict[str, Any], desc: str, radius_m: float | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"area": desc}
    if radius_m is not None:
        props["radius_m"] = radius_m
    return {"type": "Feature", "geometry": geometry, "properties": props}


def _merge_levels(levels: Iterable[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for lv in levels:
        for h, v in lv.items():
            if LEVEL_RANK[RiskLevel(v)] > LEVEL_RANK[RiskLevel(out.get(h, "normal"))]:
                out[h] = v
    return out


def watch_view(tx: Tx, limit: int = 50) -> dict[str, Any]:
    rows = tx.execute(
        "SELECT edge_id, camera_id, hazard, level, until, reason, warnings, changed_at, sent_level, sent_at "
        "FROM weather_watch WHERE level <> 'normal' ORDER BY edge_id, camera_id, hazard"
    )
    items = [
        {
            "edge_id": r[0],
            "camera_id": r[1],
            "hazard": r[2],
            "level": r[3],
            "until": r[4],
            "reason": r[5],
            "warnings": json.loads(r[6]),
            "changed_at": r[7],
            "delivered": r[8] == r[3],
            "sent_at": r[9],
        }
        for r in rows
    ]
    history = [
        {"at": at, **json.loads(detail)}
        for at, detail in tx.execute(
            "SELECT at, detail FROM weather_events WHERE kind = 'watch' ORDER BY id DESC LIMIT ?", (limit,)
        )
    ]
    return {"items": items, "history": history}
