"""An incident's place reaches the command platform: a real central with the demo's named areas, a real
Mosquitto and the real receiver. The webhook carries `incident.place` (named area, and for one camera the
stretch along its view) and the CAP alert names the area and the stretch in `<areaDesc>`; an incident
outside every named area says so (area null), and its CAP area names only who saw it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hazardwatch.central.notify.cap import CAP_NS
from hazardwatch.demo import district
from hazardwatch.harness.central_proc import CentralProcess, Publisher, alert_payload, alert_topic, write_central_config
from hazardwatch.harness.edge_proc import wait_until
from hazardwatch.harness.receiver import Receiver

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
XSD = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "cap12.xsd"
NS = {"cap": CAP_NS}
EDGE = "demo-edge"
# The reservoir camera stands 40 m up, 4 degrees down, looking east into the Shenzhen Reservoir area;
# the harbour camera stands outside every named area.
RESERVOIR = {"lat": 22.56, "lon": 114.13, "bearing_deg": 90.0, "fov_deg": 60.0, "height_m": 40.0, "tilt_deg": 4.0}
HARBOUR = {"lat": 22.45, "lon": 113.80, "bearing_deg": 300.0, "fov_deg": 60.0}


def _status(cam: str, placement: dict[str, float]) -> dict:
    import time

    now = time.time()
    return {"schema_version": 1, "kind": "camera_status", "edge_id": EDGE, "sent_at": now, "camera_id": cam,
            "camera_name": cam.title(), "state": "online", "reason": "", "since": now, "last_frame_at": now,
            **placement}


def _alert(seq: int, cam: str, placement: dict[str, float]) -> dict:
    doc = alert_payload(seq, edge=EDGE, cam=cam, alert_id=f"alert-{cam}-0001", hazard="fire", lat=placement["lat"],
                        lon=placement["lon"], bearing=placement["bearing_deg"], fov=placement["fov_deg"])
    doc["boxes"] = [{"x1": 0.55, "y1": 0.45, "x2": 0.65, "y2": 0.55, "score": 0.8}]
    return doc


def test_webhook_and_cap_carry_the_incidents_place(tmp_path: Path, mosquitto, database_url) -> None:
    with Receiver(secret="s3cret") as receiver:
        hook = {"secret": {"value": "s3cret"}, "timeout_s": 2, "backoff": {"initial_s": 0.2, "max_s": 1}}
        cfg = write_central_config(
            tmp_path / "central.yaml", broker_port=mosquitto.port, database_url=database_url,
            timers={"group_wait_s": 0, "group_interval_s": 2, "repeat_interval_s": 3600},
            map=district.map_section(),
            receivers=[{"name": "cmd", "kind": "webhook", "url": receiver.url("/hook"), **hook},
                       {"name": "platform", "kind": "cap", "url": receiver.url("/cap"), **hook}],
        )
        central = CentralProcess(cfg, tmp_path / "central.log").start()
        pub = Publisher(mosquitto.port)
        try:
            for cam, placement in (("reservoir", RESERVOIR), ("harbour", HARBOUR)):
                pub.send(f"hazardwatch/v1/{EDGE}/cameras/{cam}/status", _status(cam, placement), retain=True)
            wait_until(lambda: sum(c["height_m"] is not None or c["lat"] is not None
                                   for c in central.get("/api/v1/cameras")["items"]) == 2, 15, "both placements")
            pub.send(alert_topic(EDGE, "reservoir"), _alert(0, "reservoir", RESERVOIR))
            pub.send(alert_topic(EDGE, "harbour"), _alert(1, "harbour", HARBOUR))
            wait_until(lambda: len(receiver.accepted("/hook")) == 2 and len(receiver.accepted("/cap")) == 2, 20,
                       "both incidents at both receivers")
        finally:
            pub.close()
            central.stop()
    notes = {json.loads(r.body)["incident"]["cameras"][0]["camera_id"]: json.loads(r.body)
             for r in receiver.accepted("/hook")}
    place = notes["reservoir"]["incident"]["place"]
    near, far = place["range_m"]
    assert place["area"] == "Shenzhen Reservoir" and 300 < near < far < 1200, place
    assert 90 < place["bearing_deg"] < 100, place
    (lat0, lon0), (_, lon1) = place["segment"]
    assert 114.13 < lon0 < lon1 and abs(lat0 - 22.56) < 0.01, place
    outside = notes["harbour"]["incident"]["place"]
    assert outside["area"] is None and "range_m" not in outside, outside  # no height, no view-range hint

    descs = []
    for r in receiver.accepted("/cap"):
        descs.append(ET.fromstring(r.body).findtext("cap:info/cap:area/cap:areaDesc", namespaces=NS))
        if XSD.is_file():
            xmlschema = pytest.importorskip("xmlschema")
            xmlschema.XMLSchema(str(XSD)).validate(r.body.decode())
    inside = next(d for d in descs if d and d.startswith("Shenzhen Reservoir"))
    assert f"{near:.0f}-{far:.0f} m from the camera, bearing 9" in inside, inside
    assert inside.endswith("; Test district: Reservoir"), inside
    assert "Test district: Harbour" in descs, descs
