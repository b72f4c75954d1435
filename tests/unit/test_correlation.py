"""Correlation rules and view-cone geometry (pure functions)."""

from __future__ import annotations

import pytest

from hazardwatch.central.config import CorrelationConfig
from hazardwatch.central.incidents.correlate import Candidate, Member, Region, choose
from hazardwatch.central.incidents.geo import estimate_location, haversine_km, intersect, sighting

pytestmark = pytest.mark.quick
CFG = CorrelationConfig(
    same_camera_window_s=600, cross_camera_window_s=600, cross_camera_distance_km=10, reopen_window_s=1800
)


def member(camera="e1/c1", alert="a1", at=1000.0, region=(0.4, 0.4, 0.6, 0.6), lat=22.5, lon=114.0) -> Member:
    edge = camera.split("/")[0]
    return Member(edge, alert, camera, (Region(*region),), at, lat, lon)


def incident(iid=1, state="open", members=(), resolved_at=None, resolved_by=None, hazard="smoke") -> Candidate:
    last = max((m.last_at for m in members), default=0)
    return Candidate(iid, hazard, state, last, resolved_at, resolved_by, tuple(members))


def test_same_alert_always_attaches_even_to_a_closed_incident():
    inc = incident(state="false_alarm", members=[member()], resolved_at=900, resolved_by="amy")
    assert choose(member(at=5000), "smoke", [inc], CFG).incident_id == 1


def test_a_fire_spreading_to_the_next_tile_stays_one_incident():
    """Issue 16 (found in the demo): a per-tile model's fire moving to the neighbouring tile (touching,
    not overlapping) made a second incident for the same camera; a small margin joins them."""
    inc = incident(members=[member(region=(0.60, 0.53, 0.65, 0.67))])
    assert choose(member(alert="a2", at=1040, region=(0.65, 0.53, 0.70, 0.67)), "smoke", [inc], CFG).action == "attach"
    strict = CFG.model_copy(update={"region_margin": 0.0})
    assert choose(member(alert="a2", at=1040, region=(0.65, 0.53, 0.70, 0.67)), "smoke", [inc], strict).action == "new"
    assert choose(member(alert="a2", at=1040, region=(0.70, 0.53, 0.75, 0.67)), "smoke", [inc], CFG).action == "new"


def test_same_camera_overlapping_region_within_window():
    inc = incident(members=[member()])
    assert choose(member(alert="a2", at=1500, region=(0.5, 0.5, 0.7, 0.7)), "smoke", [inc], CFG).action == "attach"
    far_region = member(alert="a2", at=1500, region=(0.0, 0.0, 0.1, 0.1))
    assert choose(far_region, "smoke", [inc], CFG).action == "new"
    too_late = member(alert="a2", at=1000 + 601)
    assert choose(too_late, "smoke", [inc], CFG).action == "new"
    assert choose(member(alert="a2"), "waterlogging", [inc], CFG).action == "new"


def test_other_camera_nearby_joins_far_away_does_not():
    inc = incident(members=[member()])
    near = member(camera="e2/c9", alert="b1", lat=22.55, lon=114.03)  # ~6 km
    far = member(camera="e2/c9", alert="b1", lat=22.7, lon=114.2)  # ~30 km
    assert choose(near, "smoke", [inc], CFG).action == "attach"
    assert choose(far, "smoke", [inc], CFG).action == "new"


def test_reopen_rules():
    auto = incident(state="resolved", members=[member()], resolved_at=1100, resolved_by="system")
    assert choose(member(alert="a2", at=1200), "smoke", [auto], CFG).action == "reopen"
    stale = incident(state="resolved", members=[member()], resolved_at=1100, resolved_by="system")
    late = choose(member(alert="a2", at=1100 + 1801), "smoke", [stale], CFG)
    assert late.action == "new"
    by_operator = incident(state="false_alarm", members=[member()], resolved_at=1100, resolved_by="amy")
    choice = choose(member(alert="a2", at=1200), "smoke", [by_operator], CFG)
    assert choice.action == "new" and choice.previous_id == 1


def test_two_cameras_cross_at_the_smoke():
    smoke = (22.60, 114.10)
    cams = {"e1/north": (22.65, 114.08), "e2/east": (22.58, 114.16)}
    sightings = []
    for key, (lat, lon) in cams.items():
        import math

        dy = (smoke[0] - lat) * 111.2
        dx = (smoke[1] - lon) * 111.2 * math.cos(math.radians(lat))
        azimuth = math.degrees(math.atan2(dx, dy)) % 360
        bearing = (azimuth + 10) % 360  # the camera points 10 degrees right of the smoke
        x = 0.5 - 10 / 60  # so the smoke sits left of centre in a 60-degree view
        sightings.append(sighting(key, lat, lon, bearing, 60, x - 0.02, x + 0.02))
    est = estimate_location(sightings)
    assert est is not None
    assert haversine_km(*est, *smoke) < 0.2
    # rays that diverge, or cross behind a camera, give nothing
    assert (
        intersect(sightings[0], sighting("x", 22.58, 114.16, (sightings[1].azimuth_deg + 180) % 360, 60, 0.48, 0.52))
        is None
    )
    assert estimate_location(sightings[:1]) is None
