"""Which cameras lie in a warning's area: polygons, circles, and geocodes through a configured table.

Geometry is plain lat/lon: a ray-casting test for polygons (warning polygons are a few to tens of
kilometres across, where the planar error is far below a camera's placement error) and the haversine
distance for circles. Polygons crossing the antimeridian are not handled (none of the bureaus'
areas do).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hazardwatch.central.warnings.cap_model import Area
from hazardwatch.kernel.geo import haversine_km, point_in_polygon

CameraKey = tuple[str, str]  # (edge_id, camera_id)
Polygon = Sequence[tuple[float, float]]


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
            haversine_km(cam.lat, cam.lon, c[0], c[1]) <= c[2] for c in area.circles
        ):
            hit.add(cam.key)
    return hit
