"""Which cameras lie in a warning's area: polygons, circles, and geocodes through a configured table.

Geometry is plain lat/lon: a ray-casting test for polygons (warning polygons are a few to tens of
kilometres across, where the planar error is far below a camera's placement error) and the haversine
distance for circles. Polygons crossing the antimeridian are not handled (none of the bureaus'
areas do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hazardwatch.central.warnings.cap_parse import Area

CameraKey = tuple[str, str]  # (edge_id, camera_id)
Polygon = Sequence[tuple[float, float]]
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class CameraPlace:
    edge_id: str
    camera_id: str
    lat: float | None
    lon: float | None

    @property
    def key(self) -> CameraKey:
        return (self.edge_id, self.camera_id)


@dataclass(frozen=True)
class GeocodeEntry:
    """A geocode (e.g. an administrative code) stands for a polygon, a list of cameras, or both."""

    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    cameras: frozenset[CameraKey] = frozenset()


GeocodeTable = Mapping[tuple[str, str], GeocodeEntry]


def point_in_polygon(lat: float, lon: float, polygon: Polygon) -> bool:
    """Ray casting (even-odd); points on an edge count as inside."""
    inside = False
    n = len(polygon)
    for i in range(n):
        y1, x1 = polygon[i]
        y2, x2 = polygon[(i + 1) % n]
        # On the segment: inside.
        cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1)
        if abs(cross) < 1e-12 and min(x1, x2) <= lon <= max(x1, x2) and min(y1, y2) <= lat <= max(y1, y2):
            return True
        if (y1 > lat) != (y2 > lat):
            x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_at:
                inside = not inside
    return inside


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def cameras_in_area(area: Area, cameras: Iterable[CameraPlace], geocodes: GeocodeTable) -> set[CameraKey]:
    """Cameras inside any polygon or circle of the area, or named by (or inside) one of its geocodes."""
    polygons = list(area.polygons)
    named: set[CameraKey] = set()
    for code in area.geocodes:
        entry = geocodes.get((code[0].strip(), code[1].strip()))
        if entry:
            polygons.extend(entry.polygons)
            named |= entry.cameras
    hit = set(named)  # configured camera lists count even before the camera has reported
    for cam in cameras:
        if cam.lat is None or cam.lon is None:
            continue
        if any(point_in_polygon(cam.lat, cam.lon, p) for p in polygons) or any(
            distance_km(cam.lat, cam.lon, c[0], c[1]) <= c[2] for c in area.circles
        ):
            hit.add(cam.key)
    return hit
