"""The one polygon test and distance both sides use, and the one downscale size rule of the edge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hazardwatch.central.warnings.areas import CameraPlace, cameras_in_area
from hazardwatch.central.warnings.cap_model import Area
from hazardwatch.edge.detect import Detection
from hazardwatch.edge.detect.regions import RegionFilter
from hazardwatch.edge.snapshot import downscale, fit_within
from hazardwatch.kernel.geo import haversine_km, point_in_polygon

pytestmark = pytest.mark.quick

SQUARE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
TRIANGLE = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)]


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [
        (0.5, 0.5, True),
        (1.5, 0.5, False),
        (-1e-9, 0.5, False),
        (0.0, 0.5, True),  # on the left side
        (1.0, 0.5, True),  # on the right side: the ray test alone says outside
        (0.5, 1.0, True),  # on the top side
        (1.0, 1.0, True),  # a vertex
        (1.0 + 1e-9, 1.0, False),
    ],
)
def test_a_point_on_a_side_or_vertex_is_inside(x: float, y: float, inside: bool) -> None:
    assert point_in_polygon(x, y, SQUARE) is inside


def test_the_axes_are_interchangeable_so_lat_lon_and_x_y_agree() -> None:
    rng = np.random.default_rng(3)
    for x, y in rng.uniform(-0.5, 4.5, (500, 2)):
        swapped = [(b, a) for a, b in TRIANGLE]
        assert point_in_polygon(x, y, TRIANGLE) == point_in_polygon(y, x, swapped)
    assert point_in_polygon(2.0, 2.0, TRIANGLE)  # on the hypotenuse


def test_edge_zones_and_central_warning_areas_share_the_border_rule() -> None:
    """A detection centred on a zone's side counts on the edge, as a camera on a warning polygon does centrally."""
    zone = RegionFilter(zones=(("road", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0))),))
    on_border = Detection(0.4, 0.4, 0.6, 0.6, 0.9)  # centre (0.5, 0.5): on the zone's top side
    assert zone.apply([on_border])[0].zone == "road"
    area = Area("test", polygons=(((22.0, 114.0), (22.0, 115.0), (23.0, 115.0), (23.0, 114.0)),))
    cams = [CameraPlace("e", "on-side", 22.5, 114.0), CameraPlace("e", "out", 22.5, 113.99)]
    assert cameras_in_area(area, cams, {}) == {("e", "on-side")}


def test_haversine_matches_known_distances() -> None:
    assert haversine_km(0, 0, 0, 1) == pytest.approx(2 * math.pi * 6371.0088 / 360, rel=1e-9)
    assert haversine_km(22.54, 114.06, 22.54, 114.06) == 0.0
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * 6371.0088)  # antipodes: a clamped asin


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1920, 1080), 480, (480, 270)),
        ((1000, 333), 480, (480, 160)),  # 159.84 rounds up, not down
        ((1001, 500), 100, (100, 50)),  # 49.95 rounds to 50
        ((640, 480), 640, (640, 480)),  # already fits: untouched
        ((320, 200), 640, (320, 200)),  # never upscaled
        ((5000, 3), 480, (480, 2)),  # a sliver keeps two rows for the MP4 encoder
    ],
)
def test_downscale_rounds_to_the_nearest_pixel(size: tuple[int, int], max_side: int, expected: tuple[int, int]):
    assert fit_within(*size, max_side) == expected
    w, h = size
    out = downscale(np.zeros((h, w, 3), np.uint8), max_side)
    assert (out.shape[1], out.shape[0]) == expected
