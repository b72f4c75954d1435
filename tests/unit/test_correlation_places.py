"""Correlation locks by place (`incidents/places.py`): alerts that could merge always share a lock,
alerts far apart never do."""

from __future__ import annotations

import math
import random

import pytest

from hazardwatch.central.incidents.geo import haversine_km
from hazardwatch.central.incidents.places import camera_key, cell_keys, lock_keys

pytestmark = pytest.mark.quick


def _offset(lat: float, lon: float, km: float, bearing_deg: float) -> tuple[float, float]:
    """A point `km` away on the sphere (haversine's sphere), for building pairs at a known distance."""
    r = km / 6371.0
    p1, l1, b = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    p2 = math.asin(math.sin(p1) * math.cos(r) + math.cos(p1) * math.sin(r) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(r) * math.cos(p1), math.cos(r) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


@pytest.mark.parametrize("distance_km", [0.05, 1.0, 15.0, 300.0])
def test_two_alerts_within_the_distance_always_share_a_cell(distance_km):
    rng = random.Random(11)
    for _ in range(3000):
        lat, lon = rng.uniform(-80, 80), rng.uniform(-180, 180)
        if rng.random() < 0.1:
            lon = rng.choice([-179.999, 179.999])  # across the antimeridian
        lat2, lon2 = _offset(lat, lon, rng.uniform(0, distance_km), rng.uniform(0, 360))
        assert haversine_km(lat, lon, lat2, lon2) <= distance_km * 1.0001
        a, b = set(cell_keys("smoke", lat, lon, distance_km)), set(cell_keys("smoke", lat2, lon2, distance_km))
        assert a & b, f"{(lat, lon)} and {(lat2, lon2)} could merge but lock nothing in common"


def test_places_far_apart_and_other_hazards_lock_nothing_in_common():
    here = set(lock_keys("waterlogging", "e1", "c1", 22.5, 113.9, 0.05))
    # 1 km east at 150 m cells: disjoint, so two instances work on them side by side
    there = set(lock_keys("waterlogging", "e2", "c1", 22.5, 113.9 + 1 / 102.8, 0.05))
    assert not here & there
    assert not here & set(lock_keys("fallen_tree", "e1", "c1", 22.5, 113.9, 0.05))
    assert len(here) <= 1 + 4  # the camera and at most a 2x2 block of cells at this latitude


def test_a_camera_without_position_locks_its_camera_which_the_positioned_alerts_of_it_share():
    blind = lock_keys("smoke", "e1", "c1", None, None, 15.0)
    assert blind == [camera_key("smoke", "e1", "c1")]
    assert camera_key("smoke", "e1", "c1") in lock_keys("smoke", "e1", "c1", 22.5, 114.0, 15.0)
