"""Where an incident is, in words and on the ground: the configured named area it falls in, and for a
single camera the stretch along its line of sight where the hazard probably is.

The distance comes from flat-ground geometry: a camera `height_m` above the ground, its view's centre
pitched `tilt_deg` down, sees the ground at image row y (0 top, 1 bottom) at
`height / tan(tilt + atan((y - 0.5) * 2 * tan(vfov / 2)))`. A hazard's base sits in the lower half of
its box, so the box's bottom gives the near end and its middle the far end. Rows at or above the
horizon have no ground distance; then the configured `view_range_m` (a terrain hint) bounds the range.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hazardwatch.central.map_config import MapConfig
from hazardwatch.central.store import Tx

EARTH_RADIUS_M = 6_371_008.8
FRAME_ASPECT = 9 / 16  # height / width of the frames vertical field of view is derived for
MAX_RANGE_M = 20_000.0  # farthest a camera is assumed to see a hazard without a terrain hint
MIN_DEPRESSION_DEG = 0.05  # below this the ray meets the ground too far away to mean anything

Ring = list[tuple[float, float]]  # (lon, lat)


@dataclass(frozen=True)
class NamedArea:
    name: str
    polygons: tuple[tuple[Ring, ...], ...]  # each polygon: outer ring, then holes
    bbox: tuple[float, float, float, float]  # lon0, lat0, lon1, lat1

    def contains(self, lat: float, lon: float) -> bool:
        if not (self.bbox[0] <= lon <= self.bbox[2] and self.bbox[1] <= lat <= self.bbox[3]):
            return False
        return any(
            _in_ring(lon, lat, rings[0]) and not any(_in_ring(lon, lat, hole) for hole in rings[1:])
            for rings in self.polygons
        )


@dataclass(frozen=True)
class Placement:
    """What central knows of where a camera stands and looks (from its camera_status)."""

    lat: float
    lon: float
    bearing_deg: float
    fov_deg: float
    height_m: float | None = None
    tilt_deg: float | None = None
    view_range_m: tuple[float, float] | None = None


def _in_ring(x: float, y: float, ring: Ring) -> bool:
    """Even-odd ray casting; points on an edge may fall either side, which is fine for naming a place."""
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _polygons(geometry: dict[str, Any]) -> list[tuple[Ring, ...]]:
    coords = geometry["coordinates"]
    polys = [coords] if geometry["type"] == "Polygon" else coords
    return [tuple([(float(p[0]), float(p[1])) for p in ring] for ring in poly) for poly in polys]


def named_areas(cfg: MapConfig) -> list[NamedArea]:
    """The configured areas in file order; the first that contains a point names it."""
    out = []
    for layer in cfg.areas:
        for feature in layer.data["features"]:
            polys = _polygons(feature["geometry"])
            outer = [p for poly in polys for p in poly[0]]
            lons = [p[0] for p in outer]
            lats = [p[1] for p in outer]
            name = str(feature["properties"][layer.name_property]).strip()
            out.append(NamedArea(name, tuple(polys), (min(lons), min(lats), max(lons), max(lats))))
    return out


def area_name(areas: Iterable[NamedArea], lat: float, lon: float) -> str | None:
    return next((a.name for a in areas if a.contains(lat, lon)), None)


def destination(lat: float, lon: float, bearing_deg: float, distance_m: float) -> tuple[float, float]:
    """The point `distance_m` from (lat, lon) along a great circle starting at `bearing_deg`."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


def box_bearing(cam: Placement, x_centre: float) -> float:
    """Bearing of an image column (0 left, 1 right) for a rectilinear lens."""
    half = math.radians(min(cam.fov_deg, 170.0) / 2)
    off = math.degrees(math.atan((x_centre - 0.5) * 2 * math.tan(half)))
    return (cam.bearing_deg + off) % 360


def ground_distance(cam: Placement, y: float) -> float | None:
    """Metres to where image row y meets flat ground, or None at or above the horizon (or no height)."""
    if cam.height_m is None:
        return None
    vfov = 2 * math.atan(math.tan(math.radians(min(cam.fov_deg, 170.0) / 2)) * FRAME_ASPECT)
    below = math.radians(cam.tilt_deg or 0.0) + math.atan((y - 0.5) * 2 * math.tan(vfov / 2))
    if below <= math.radians(MIN_DEPRESSION_DEG):
        return None
    return cam.height_m / math.tan(below)


def distance_range(cam: Placement, box: dict[str, float]) -> tuple[float, float] | None:
    """Near and far metres along the line of sight where the boxed hazard probably is, or None."""
    hint = cam.view_range_m
    lo, hi = hint if hint else (0.0, MAX_RANGE_M)
    near = ground_distance(cam, box["y2"])
    far = ground_distance(cam, (box["y1"] + box["y2"]) / 2)
    if near is None and hint is None:
        return None
    near = lo if near is None else min(max(near, lo), hi)
    far = hi if far is None else min(max(far, near), hi)
    if far - near < 1.0:  # clamped onto one end of the hint: show a short stretch, not a point
        near, far = max(lo, near * 0.9), min(hi, far * 1.1 + 1.0)
    return round(near, 1), round(far, 1)


def union_box(boxes: Sequence[dict[str, float]]) -> dict[str, float] | None:
    if not boxes:
        return None
    return {k: (min if k in ("x1", "y1") else max)(b[k] for b in boxes) for k in ("x1", "y1", "x2", "y2")}


def sight_segment(cam: Placement, boxes: Sequence[dict[str, float]]) -> dict[str, Any] | None:
    """The stretch along one camera's view where its boxes' hazard probably is: bearing, range, ends."""
    box = union_box(boxes)
    if box is None:
        return None
    span = distance_range(cam, box)
    if span is None:
        return None
    bearing = box_bearing(cam, (box["x1"] + box["x2"]) / 2)
    start = destination(cam.lat, cam.lon, bearing, span[0])
    end = destination(cam.lat, cam.lon, bearing, span[1])
    return {
        "bearing_deg": round(bearing, 1),
        "range_m": list(span),
        "segment": [[round(start[0], 6), round(start[1], 6)], [round(end[0], 6), round(end[1], 6)]],
    }


def _midpoint(segment: list[list[float]]) -> tuple[float, float]:
    return (segment[0][0] + segment[1][0]) / 2, (segment[0][1] + segment[1][1]) / 2


def annotate(tx: Tx, items: list[dict[str, Any]], areas: Sequence[NamedArea], chunk: int = 500) -> None:
    """Add `place` to incident summaries or views: the named area it lies in (`area`, None outside them;
    no key when no areas are configured) and, for one camera (where no cones cross), the stretch of its
    line of sight where the hazard probably is."""
    single = [i["id"] for i in items if i["camera_count"] == 1 and not (i["location"] or {}).get("estimated")]
    stretches: dict[int, dict[str, Any]] = {}
    for start in range(0, len(single), chunk):
        ids = single[start : start + chunk]
        rows = tx.execute(
            "SELECT ia.incident_id, ia.boxes, c.lat, c.lon, c.bearing_deg, c.fov_deg, c.height_m, c.tilt_deg, "
            "c.range_near_m, c.range_far_m FROM incident_alerts ia JOIN cameras c ON c.edge_id = ia.edge_id "
            f"AND c.camera_id = ia.camera_id WHERE ia.incident_id IN ({', '.join('?' * len(ids))}) ORDER BY ia.last_at",
            ids,
        )
        for iid, boxes, lat, lon, bearing, fov, height, tilt, near, far in rows:
            if None in (lat, lon, bearing, fov):
                continue
            cam = Placement(lat, lon, bearing, fov, height, tilt, (near, far) if near is not None else None)
            stretch = sight_segment(cam, json.loads(boxes or "[]"))
            if stretch is not None:
                stretches[iid] = stretch
    for item in items:
        stretch = stretches.get(item["id"])
        loc = item["location"]
        point = _midpoint(stretch["segment"]) if stretch else (loc["lat"], loc["lon"]) if loc else None
        named = {"area": area_name(areas, *point) if point else None} if areas else {}
        item["place"] = {**named, **(stretch or {})}
