"""A CAP warning drawn over the whole world raises no camera (issue 17, point 6; docs/weather.md)."""

from __future__ import annotations

import time

import pytest
from support.cap_samples import rewrite, sample

from hazardwatch.central.warnings.cap_model import CapError
from hazardwatch.central.warnings.cap_parse import MAX_AREA_SPAN_DEG, parse_cap

pytestmark = pytest.mark.quick

WORLD = [(-90.0, -180.0), (90.0, -180.0), (90.0, 180.0), (-90.0, 180.0)]


def test_a_world_sized_polygon_is_refused_as_oversized():
    xml = rewrite(sample("canada.cap"), now=time.time(), polygon=WORLD)
    with pytest.raises(CapError, match=r"spans 180\.0 x 360\.0 degrees") as err:
        parse_cap(xml.encode())
    assert err.value.code == "oversized"


def test_a_province_sized_polygon_is_accepted_and_one_just_larger_refused():
    side = MAX_AREA_SPAN_DEG
    ok = rewrite(
        sample("canada.cap"), now=time.time(), polygon=[(20.0, 110.0), (20.0, 110.0 + side), (20.0 + side, 110.0)]
    )
    assert parse_cap(ok.encode()).infos[0].areas[0].polygons
    big = [(20.0, 110.0), (20.0, 110.1 + side), (20.0 + side, 110.0)]
    with pytest.raises(CapError, match=r"spans 10\.0 x 10\.1 degrees, more than 10") as err:
        parse_cap(rewrite(sample("canada.cap"), now=time.time(), polygon=big).encode())
    assert err.value.code == "oversized"


def test_a_continent_sized_circle_is_refused():
    xml = sample("australia.cap")
    assert parse_cap(rewrite(xml, now=time.time(), circle=(-35.4, 147.1, 25.0)).encode()).infos[0].areas[0].circles
    with pytest.raises(CapError, match=r"radius 5000 km") as err:
        parse_cap(rewrite(xml, now=time.time(), circle=(-35.4, 147.1, 5000.0)).encode())
    assert err.value.code == "oversized"
