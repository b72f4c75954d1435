"""Geometry for correlation: distances, and where two cameras' lines of sight cross (after Pyronear).

A detection's horizontal centre gives an azimuth inside the camera's field of view:
`bearing + (cx - 0.5) * fov`. Two such rays from different cameras intersect at the smoke's likely
position; with more cameras the pairwise intersections are averaged. A local equirectangular
projection is accurate to well under 1 % over the tens of kilometres a camera can see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hazardwatch.kernel.geo import EARTH_RADIUS_KM, haversine_km

__all__ = ["haversine_km"]  # where the services and tests import it from

MAX_RANGE_KM = 40.0  # beyond this no camera sees smoke; farther crossings are noise


@dataclass(frozen=True)
class Sighting:
    """One camera's line of sight to a detection."""

    camera: str
    lat: float
    lon: float
    azimuth_deg: float  # clockwise from north
    half_width_deg: float  # angular half-width of the detection, for the cone drawn on the map


def sighting(camera: str, lat: float, lon: float, bearing: float, fov: float, x1: float, x2: float) -> Sighting:
    centre = (x1 + x2) / 2
    return Sighting(camera, lat, lon, (bearing + (centre - 0.5) * fov) % 360, max(0.5, (x2 - x1) * fov / 2))


def _to_xy(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    x = math.radians(lon - lon0) * math.cos(math.radians(lat0)) * EARTH_RADIUS_KM
    y = math.radians(lat - lat0) * EARTH_RADIUS_KM
    return x, y


def _to_latlon(x: float, y: float, lat0: float, lon0: float) -> tuple[float, float]:
    lat = lat0 + math.degrees(y / EARTH_RADIUS_KM)
    lon = lon0 + math.degrees(x / (EARTH_RADIUS_KM * math.cos(math.radians(lat0))))
    return lat, lon


def intersect(a: Sighting, b: Sighting) -> tuple[float, float] | None:
    """Where two lines of sight cross in front of both cameras, within range; None otherwise."""
    lat0, lon0 = a.lat, a.lon
    ax, ay = 0.0, 0.0
    bx, by = _to_xy(b.lat, b.lon, lat0, lon0)
    da = (math.sin(math.radians(a.azimuth_deg)), math.cos(math.radians(a.azimuth_deg)))
    db = (math.sin(math.radians(b.azimuth_deg)), math.cos(math.radians(b.azimuth_deg)))
    denom = da[0] * db[1] - da[1] * db[0]
    if abs(denom) < math.sin(math.radians(2)):  # nearly parallel: no useful crossing
        return None
    t = ((bx - ax) * db[1] - (by - ay) * db[0]) / denom
    u = ((bx - ax) * da[1] - (by - ay) * da[0]) / denom
    if t <= 0 or u <= 0 or t > MAX_RANGE_KM or u > MAX_RANGE_KM:
        return None
    return _to_latlon(ax + t * da[0], ay + t * da[1], lat0, lon0)


def estimate_location(sightings: Sequence[Sighting]) -> tuple[float, float] | None:
    """Mean of the pairwise crossings of sightings from different cameras."""
    points = []
    for i, a in enumerate(sightings):
        for b in sightings[i + 1 :]:
            if a.camera != b.camera and (p := intersect(a, b)) is not None:
                points.append(p)
    if not points:
        return None
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)
