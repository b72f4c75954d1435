"""Which correlation locks an alert takes: the places where it could merge with another alert.

Two alerts can only end up in one incident when they share a hazard and either come from the same
camera or lie within `cross_camera_distance_km` of each other (`correlate.py`). So instead of one lock
per hazard, an alert locks:
- its camera (same-camera merges, and cameras that report no position);
- with a position, every cell of a fixed grid (cells twice `distance_km` high) that its search box
  touches: at most 2 x 2 cells away from the poles.
  The box holds every point within the distance, so of two alerts that could merge, each one's box
  holds the other's own cell: they share at least one lock and are serialised, while alerts in
  different places take disjoint locks and run side by side.
Callers take all the keys of a batch at once, in one fixed order (`Tx.lock_all`), so two instances
wanting overlapping sets cannot deadlock.
"""

from __future__ import annotations

import math

KM_PER_DEG_LAT = 111.0  # slightly under the mean 111.19, so the box errs on the large side
BOX_MARGIN = 1.05  # and a little more for the spherical approximation of the longitude span
MIN_COS = 0.05  # near the poles a box spans at most 1/0.05 times its height in longitude


def camera_key(hazard: str, edge_id: str, camera_id: str) -> str:
    return f"corr-cam:{hazard}:{edge_id}/{camera_id}"


def cell_keys(hazard: str, lat: float, lon: float, distance_km: float) -> list[str]:
    """The grid cells that the alert's search box (every point within `distance_km`) touches."""
    dlat = distance_km / KM_PER_DEG_LAT * BOX_MARGIN
    cell = 2 * distance_km / KM_PER_DEG_LAT  # degrees, for rows and columns alike
    poleward = min(90.0, abs(lat) + dlat)
    dlon = dlat / max(MIN_COS, math.cos(math.radians(poleward)))
    columns = max(1, math.ceil(360.0 / cell))
    rows = range(math.floor((max(-90.0, lat - dlat) + 90) / cell), math.floor((min(90.0, lat + dlat) + 90) / cell) + 1)
    first, last = math.floor((lon - dlon + 180) / cell), math.floor((lon + dlon + 180) / cell)
    cols = {c % columns for c in range(first, last + 1)} if last - first + 1 < columns else set(range(columns))
    return [f"corr-cell:{hazard}:{r}:{c}" for r in rows for c in sorted(cols)]


def lock_keys(
    hazard: str, edge_id: str, camera_id: str, lat: float | None, lon: float | None, distance_km: float
) -> list[str]:
    """Every lock an alert needs before correlation may read or write its incidents."""
    keys = [camera_key(hazard, edge_id, camera_id)]
    if lat is not None and lon is not None:
        keys += cell_keys(hazard, lat, lon, distance_km)
    return keys
