"""False-alarm suppression: does a detection stay quiet, or is it clearly stronger? Pure rules.

An operator who marks a false alarm says "this, here, is not a hazard". That covers one camera, one
hazard and the image region the false alarm was seen in, for a limited time. A detection outside the
region is not covered. Inside it, a detection stays quiet unless it is clearly stronger than what the
operator judged: a higher score by a margin, or a region several times larger (a plume that grows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hazardwatch.central.incidents.correlate import Region

Verdict = Literal["outside", "quiet", "break"]


def area(r: Region) -> float:
    return max(0.0, r.x2 - r.x1) * max(0.0, r.y2 - r.y1)


def union(regions: Sequence[Region]) -> Region:
    """The smallest rectangle holding every region; the whole frame when there are none."""
    if not regions:
        return Region(0, 0, 1, 1)
    return Region(
        min(r.x1 for r in regions), min(r.y1 for r in regions), max(r.x2 for r in regions), max(r.y2 for r in regions)
    )


@dataclass(frozen=True)
class Suppression:
    id: int
    incident_id: int
    camera: str  # "edge_id/camera_id"
    hazard: str
    region: Region
    ref_score: float
    ref_area: float
    ends_at: float


def judge(
    s: Suppression,
    camera: str,
    hazard: str,
    regions: Sequence[Region],
    score: float,
    at: float,
    score_margin: float,
    area_factor: float,
) -> Verdict:
    """`quiet` inside an active suppression, `break` when clearly stronger, else `outside`."""
    if camera != s.camera or hazard != s.hazard or at >= s.ends_at:
        return "outside"
    mine = list(regions) or [Region(0, 0, 1, 1)]
    if not any(r.overlaps(s.region) for r in mine):
        return "outside"
    if score >= s.ref_score + score_margin:
        return "break"
    if area(union(mine)) >= max(s.ref_area, 1e-4) * area_factor:
        return "break"
    return "quiet"
