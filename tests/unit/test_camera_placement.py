"""Camera placement in camera_status: optional, backward compatible, checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hazardwatch.contract import CameraStatus, parse_message

BASE = {"edge_id": "e1", "sent_at": 1.0, "camera_id": "c1", "state": "online", "since": 1.0}


def test_a_status_without_placement_is_the_old_payload() -> None:
    wire = json.loads(CameraStatus(**BASE).wire_json())
    assert set(wire) == {"schema_version", "edge_id", "sent_at", "kind", "camera_id", "state", "reason", "since",
                         "last_frame_at"}


def test_placement_round_trips_and_zero_is_a_position() -> None:
    msg = CameraStatus(**BASE, lat=0.0, lon=0.0, bearing_deg=0.0, fov_deg=60, height_m=12, tilt_deg=3,
                       view_range_m=(50, 4000))
    back = parse_message(msg.wire_json())
    assert isinstance(back, CameraStatus)
    assert (back.lat, back.lon, back.bearing_deg, back.height_m, back.view_range_m) == (0.0, 0.0, 0.0, 12, (50, 4000))


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [("view_range_m", (500, 100), "farthest > nearest"), ("lat", 91, "less than or equal"),
     ("height_m", 0, "greater than 0"), ("bearing_deg", 360, "less than 360")],
)
def test_bad_placement_is_refused_with_the_field(field: str, value: object, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as err:
        CameraStatus(**BASE, **{field: value})
    assert field in str(err.value)


def test_central_keeps_a_placement_that_a_status_without_one_does_not_erase(tmp_path: Path) -> None:
    from hazardwatch.central.services import health, views
    from hazardwatch.central.store import Database

    db = Database(f"sqlite:///{tmp_path}/central.db")
    db.migrate()
    placed = CameraStatus(**BASE, camera_name="Dam", lat=22.5, lon=114.0, bearing_deg=90, fov_deg=60, height_m=40,
                          tilt_deg=4, view_range_m=(100, 900))
    with db.tx() as tx:
        health.apply_camera_status(tx, placed, 1.0)
        health.apply_camera_status(tx, CameraStatus(**{**BASE, "since": 2.0, "state": "offline"}), 2.0)
        (cam,) = views.cameras(tx)
    assert cam["state"] == "offline"
    assert (cam["name"], cam["lat"], cam["lon"], cam["bearing_deg"], cam["height_m"], cam["tilt_deg"]) == (
        "Dam", 22.5, 114.0, 90.0, 40.0, 4.0)
    assert cam["view_range_m"] == [100.0, 900.0]
    db.close()
