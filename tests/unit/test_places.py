"""Where an incident is: named areas (point in polygon, holes) and the distance range along a camera's
line of sight from flat-ground geometry and terrain hints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.services import places
from hazardwatch.central.services.places import Placement

SQUARE = [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6], [114.0, 22.6], [114.0, 22.5]]
HOLE = [[114.04, 22.54], [114.06, 22.54], [114.06, 22.56], [114.04, 22.56], [114.04, 22.54]]


def write_areas(tmp_path: Path) -> CentralConfig:
    features = [
        {"type": "Feature", "properties": {"name": "Ring Town"},
         "geometry": {"type": "Polygon", "coordinates": [SQUARE, HOLE]}},
        {"type": "Feature", "properties": {"name": "Lake"},
         "geometry": {"type": "Polygon", "coordinates": [HOLE]}},
        {"type": "Feature", "properties": {"name": "Islands"},
         "geometry": {"type": "MultiPolygon", "coordinates": [
             [[[115.0, 23.0], [115.1, 23.0], [115.1, 23.1], [115.0, 23.0]]],
             [[[116.0, 23.0], [116.1, 23.0], [116.1, 23.1], [116.0, 23.0]]]]}},
    ]
    (tmp_path / "areas.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return CentralConfig.model_validate({"map": {"areas": [{"file": "areas.geojson"}]}},
                                        context={"config_dir": tmp_path})


def test_a_point_is_named_after_the_area_containing_it_holes_excluded(tmp_path: Path) -> None:
    areas = places.named_areas(write_areas(tmp_path).map)
    assert places.area_name(areas, 22.52, 114.02) == "Ring Town"
    assert places.area_name(areas, 22.55, 114.05) == "Lake"  # in the hole: Ring Town does not contain it
    assert places.area_name(areas, 23.02, 116.08) == "Islands"
    assert places.area_name(areas, 22.7, 114.05) is None


def test_destination_moves_along_the_bearing() -> None:
    lat, lon = places.destination(22.5, 114.0, 90.0, 1000.0)
    assert lat == pytest.approx(22.5, abs=1e-5)
    assert (lon - 114.0) * 111_320 * math.cos(math.radians(22.5)) == pytest.approx(1000.0, rel=2e-3)
    lat, _ = places.destination(22.5, 114.0, 0.0, 1000.0)
    assert (lat - 22.5) * 111_195 == pytest.approx(1000.0, rel=2e-3)


def test_flat_ground_distance_from_the_box_bottom() -> None:
    cam = Placement(22.5, 114.0, 0.0, 60.0, height_m=20.0, tilt_deg=10.0)
    assert places.ground_distance(cam, 0.5) == pytest.approx(20 / math.tan(math.radians(10)), rel=1e-6)
    lower, higher = places.ground_distance(cam, 0.9), places.ground_distance(cam, 0.6)
    assert lower is not None and higher is not None and lower < higher  # lower in the frame is nearer
    assert places.ground_distance(cam, 0.0) is None  # above the horizon
    near, far = places.distance_range(cam, {"x1": 0.4, "y1": 0.5, "x2": 0.6, "y2": 0.7})
    assert near == pytest.approx(places.ground_distance(cam, 0.7), abs=0.1)
    assert far == pytest.approx(places.ground_distance(cam, 0.6), abs=0.1) and near < far


def test_terrain_hint_bounds_the_range_and_serves_cameras_without_height() -> None:
    level = Placement(22.5, 114.0, 0.0, 60.0, height_m=10.0, tilt_deg=0.0, view_range_m=(500.0, 4000.0))
    # The box's middle is above the horizon: the far end is the hint's.
    assert places.distance_range(level, {"x1": 0.4, "y1": 0.3, "x2": 0.6, "y2": 0.55}) == (500.0, 4000.0)
    no_height = Placement(22.5, 114.0, 0.0, 60.0, view_range_m=(800.0, 3000.0))
    assert places.distance_range(no_height, {"x1": 0, "y1": 0, "x2": 1, "y2": 1}) == (800.0, 3000.0)
    assert places.distance_range(Placement(22.5, 114.0, 0.0, 60.0), {"x1": 0, "y1": 0, "x2": 1, "y2": 1}) is None


def test_the_segment_lies_along_the_box_bearing() -> None:
    cam = Placement(22.5, 114.0, 90.0, 60.0, height_m=30.0, tilt_deg=5.0)
    right = places.sight_segment(cam, [{"x1": 0.8, "y1": 0.5, "x2": 1.0, "y2": 0.8}])
    assert right is not None and 90.0 < right["bearing_deg"] < 120.0  # right of centre: south of east
    (lat0, lon0), (lat1, lon1) = right["segment"]
    assert lon1 > lon0 > 114.0 and lat1 < lat0 < 22.5
    assert places.sight_segment(cam, []) is None


def test_a_bad_areas_file_is_refused_with_its_path_and_the_feature(tmp_path: Path) -> None:
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"title": "x"}, "geometry": {"type": "Polygon", "coordinates": [SQUARE]}}]}
    (tmp_path / "bad.geojson").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"bad\.geojson: features\[0\]: property 'name'"):
        CentralConfig.model_validate({"map": {"areas": [{"file": "bad.geojson"}]}}, context={"config_dir": tmp_path})
    line = {"type": "LineString", "coordinates": [[22.5, 114.0], [22.6, 114.1]]}  # lat, lon: wrong order
    latlon = {"type": "Feature", "properties": {}, "geometry": line}
    (tmp_path / "road.geojson").write_text(json.dumps(latlon))
    with pytest.raises(ValueError, match=r"road\.geojson.*outside.*GeoJSON is lon, lat"):
        CentralConfig.model_validate({"map": {"layers": [{"name": "roads", "file": "road.geojson"}]}},
                                     context={"config_dir": tmp_path})
    with pytest.raises(ValueError, match=r"missing\.geojson: no such GeoJSON file"):
        CentralConfig.model_validate({"map": {"layers": [{"name": "r", "file": "missing.geojson"}]}},
                                     context={"config_dir": tmp_path})
