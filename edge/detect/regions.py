"""Masks and zones in relative coordinates.

Masks remove regions (a flag that flaps in the wind, a chimney); zones restrict a hazard to part of
the view (the road for fallen trees). Score maps are masked cell by cell; boxes are kept when their
centre lies inside an allowed zone and outside every mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from hazardwatch.edge.detect.detector import Detection

Polygon = Sequence[tuple[float, float]]


def point_in_polygon(x: float, y: float, polygon: Polygon) -> bool:
    """Even-odd ray casting; polygons are small, so this is cheap."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def rasterize(polygons: Sequence[Polygon], height: int, width: int) -> np.ndarray:
    """Boolean grid of the given size, True inside any polygon (by cell centre)."""
    grid = np.zeros((height, width), np.uint8)
    for poly in polygons:
        pts = np.array([[x * width - 0.5, y * height - 0.5] for x, y in poly], np.float32)
        cv2.fillPoly(grid, [np.round(pts * 16).astype(np.int32)], 1, shift=4)
    return grid.astype(bool)


@dataclass(frozen=True)
class RegionFilter:
    """Masks of one camera, and the zones one hazard is restricted to (empty: the whole view)."""

    masks: tuple[tuple[tuple[float, float], ...], ...] = ()
    zones: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()

    @property
    def is_noop(self) -> bool:
        return not self.masks and not self.zones

    def allowed_grid(self, height: int, width: int) -> np.ndarray:
        """True where a score map cell may count."""
        allowed = np.ones((height, width), bool)
        if self.zones:
            allowed = rasterize([p for _, p in self.zones], height, width)
        if self.masks:
            allowed &= ~rasterize(self.masks, height, width)
        return allowed

    def apply(self, detections: list[Detection]) -> list[Detection]:
        """Drop boxes centred in a mask or outside every zone; tag the zone a box falls in."""
        out = []
        for det in detections:
            cx, cy = det.center
            if any(point_in_polygon(cx, cy, m) for m in self.masks):
                continue
            if not self.zones:
                out.append(det)
                continue
            for zone_id, poly in self.zones:
                if point_in_polygon(cx, cy, poly):
                    out.append(replace(det, zone=zone_id))
                    break
        return out
