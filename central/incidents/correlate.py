"""Which incident does an alert belong to? Pure rules, documented in docs/central.md.

1. An alert already attached to an incident stays with it (its updates and end land there), except when
   an operator closed that incident and the hazard is still seen: then the alert moves to a new incident
   linked to the closed one, unless a false-alarm suppression keeps it quiet (`services/incidents.py`,
   `incidents/suppress.py`, docs/central.md).
2. An open or acknowledged incident of the same hazard takes the alert when
   a. the same camera saw an overlapping (or touching, `region_margin`) region within `same_camera_window_s`, or
   b. another camera within `cross_camera_distance_km` of the incident saw the same hazard within
      `cross_camera_window_s`.
3. An incident the system auto-resolved reopens when rule 2 would match and it was resolved less
   than `reopen_window_s` ago. An incident an operator resolved or marked false alarm never reopens:
   a new incident starts and links to it (`previous_id`), so the operator's decision stands.
4. Otherwise a new incident starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hazardwatch.central.config import CorrelationConfig
from hazardwatch.central.incidents.geo import haversine_km

OPEN_STATES = ("open", "acknowledged")
SYSTEM = "system"


@dataclass(frozen=True)
class Region:
    x1: float
    y1: float
    x2: float
    y2: float

    def overlaps(self, other: Region, margin: float = 0.0) -> bool:
        """Overlapping, or (with a margin) within `margin` of each other: touching tiles are one place."""
        return (
            min(self.x2, other.x2) + margin > max(self.x1, other.x1)
            and min(self.y2, other.y2) + margin > max(self.y1, other.y1)
        )


@dataclass(frozen=True)
class Member:
    """An alert already in an incident, as correlation needs it."""

    edge_id: str
    alert_id: str
    camera: str  # "edge_id/camera_id"
    regions: tuple[Region, ...]
    last_at: float
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class Candidate:
    id: int
    hazard: str
    state: str
    last_alert_at: float
    resolved_at: float | None
    resolved_by: str | None
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Choice:
    action: Literal["attach", "reopen", "new"]
    incident_id: int | None = None
    previous_id: int | None = None


def _whole_frame_if_empty(regions: tuple[Region, ...]) -> tuple[Region, ...]:
    return regions or (Region(0, 0, 1, 1),)


def matches(alert: Member, hazard: str, inc: Candidate, cfg: CorrelationConfig) -> bool:
    if inc.hazard != hazard:
        return False
    mine = _whole_frame_if_empty(alert.regions)
    for m in inc.members:
        if m.camera == alert.camera:
            if alert.last_at - m.last_at <= cfg.same_camera_window_s and any(
                a.overlaps(b, cfg.region_margin) for a in mine for b in _whole_frame_if_empty(m.regions)
            ):
                return True
        elif (
            alert.last_at - m.last_at <= cfg.cross_camera_window_s
            and None not in (alert.lat, alert.lon, m.lat, m.lon)
            and haversine_km(alert.lat, alert.lon, m.lat, m.lon) <= cfg.cross_camera_distance_km  # type: ignore[arg-type]
        ):
            return True
    return False


def choose(alert: Member, hazard: str, candidates: Sequence[Candidate], cfg: CorrelationConfig) -> Choice:
    """Apply the rules above; candidates may be in any order."""
    for inc in candidates:
        if any(m.edge_id == alert.edge_id and m.alert_id == alert.alert_id for m in inc.members):
            return Choice("attach", inc.id)
    ordered = sorted(candidates, key=lambda c: c.last_alert_at, reverse=True)
    for inc in ordered:
        if inc.state in OPEN_STATES and matches(alert, hazard, inc, cfg):
            return Choice("attach", inc.id)
    previous = None
    for inc in ordered:
        if inc.state in OPEN_STATES or not matches(alert, hazard, inc, cfg):
            continue
        recent = inc.resolved_at is not None and alert.last_at - inc.resolved_at <= cfg.reopen_window_s
        if inc.state == "resolved" and inc.resolved_by == SYSTEM and recent:
            return Choice("reopen", inc.id)
        previous = previous or inc.id
    return Choice("new", previous_id=previous)
