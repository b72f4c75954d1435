"""Grouped notifications end to end (docs/webhook.md, `group_by`): a real central, real Mosquitto, the real
receiver. Five incidents reach a grouping receiver as one message per group, a later Cancel goes in its
group's next message, and the CAP receiver's grouped alerts are valid CAP 1.2 with one <info> per incident."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hazardwatch.central.notify.cap import CAP_NS
from hazardwatch.harness.central_proc import CentralProcess, Publisher, alert_payload, alert_topic, write_central_config
from hazardwatch.harness.databases import postgres_unavailable_reason, temporary_database
from hazardwatch.harness.edge_proc import wait_until
from hazardwatch.harness.receiver import Receiver

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
XSD = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "cap12.xsd"
NS = {"cap": CAP_NS}
# Three waterlogging cameras ~22 km apart (separate incidents) inside one 100 km square, one far away, and
# a fallen tree next to the first.
PLACES = [
    ("w1", "waterlogging", 21.70, 114.0),
    ("w2", "waterlogging", 21.90, 114.0),
    ("w3", "waterlogging", 22.10, 114.0),
    ("w4", "waterlogging", 30.00, 100.0),
    ("t1", "fallen_tree", 21.70, 114.0),
]


def _bodies(receiver: Receiver, path: str) -> list[bytes]:
    return [r.body for r in receiver.accepted(path)]


def test_a_grouping_receiver_gets_one_message_per_group_in_order_and_valid_cap(tmp_path, mosquitto):
    kind = "sqlite" if postgres_unavailable_reason() else "postgres"
    with temporary_database(kind, tmp_path) as url, Receiver(secret="s3cret") as receiver:
        hook = {"secret": {"value": "s3cret"}, "timeout_s": 2, "backoff": {"initial_s": 0.2, "max_s": 1}}
        cfg = write_central_config(
            tmp_path / "central.yaml",
            broker_port=mosquitto.port,
            database_url=url,
            timers={"group_wait_s": 0, "group_interval_s": 0, "repeat_interval_s": 3600},
            receivers=[
                {"name": "solo", "kind": "webhook", "url": receiver.url("/solo"), **hook},
                {"name": "ops", "kind": "webhook", "url": receiver.url("/ops"), **hook, "group_by": ["hazard", "area"],
                 "group_wait_s": 4, "group_interval_s": 2, "group_area_km": 100},
                {"name": "platform", "kind": "cap", "url": receiver.url("/cap"), **hook, "group_by": ["hazard"],
                 "group_wait_s": 4, "group_interval_s": 2},
            ],
        )
        central = CentralProcess(cfg, tmp_path / "central.log").start()
        pub = Publisher(mosquitto.port)
        try:
            for k, (edge, hazard, lat, lon) in enumerate(PLACES):
                pub.send(alert_topic(edge, "c"), alert_payload(
                    0, edge=edge, cam="c", alert_id=f"alert-{edge}-1", hazard=hazard, lat=lat, lon=lon))
                time.sleep(0.1 * k)
            wait_until(lambda: len(_bodies(receiver, "/solo")) >= 5, 30, "one message per incident to solo")
            wait_until(lambda: len(_bodies(receiver, "/ops")) >= 3 and len(_bodies(receiver, "/cap")) >= 2, 30,
                       "the grouped messages")
            time.sleep(2.5)  # nothing more comes: every incident was in the first message of its group
            ops = [json.loads(b) for b in _bodies(receiver, "/ops")]
            assert len(ops) == 3 and {m["msg_type"] for m in ops} == {"Group"}
            by_labels = {(m["group"]["labels"]["hazard"], len(m["notifications"])) for m in ops}
            assert by_labels == {("waterlogging", 3), ("waterlogging", 1), ("fallen_tree", 1)}
            cameras = sorted(n["incident"]["cameras"][0]["edge_id"] for m in ops for n in m["notifications"])
            assert cameras == sorted(p[0] for p in PLACES)  # every incident once, none lost
            assert all(n["msg_type"] == "Alert" for m in ops for n in m["notifications"])

            # An operator closes one incident: its Cancel goes in its group's second message.
            w1 = next(n["incident"]["id"] for m in ops for n in m["notifications"]
                      if n["incident"]["cameras"][0]["edge_id"] == "w1")
            assert central.request("POST", f"/api/v1/incidents/{w1}/resolve", {"note": "pumped out"})[0] == 200
            wait_until(lambda: len(_bodies(receiver, "/ops")) >= 4 and len(_bodies(receiver, "/cap")) >= 3, 30,
                       "the Cancel in the group's next message")
            second = json.loads(_bodies(receiver, "/ops")[3])
            first = next(m for m in ops if m["group"]["key"] == second["group"]["key"])
            assert second["group"]["number"] == first["group"]["number"] + 1 == 2
            assert [(n["msg_type"], n["incident"]["id"]) for n in second["notifications"]] == [("Cancel", w1)]
            keys = [r.key for r in receiver.accepted()]
            assert len(keys) == len(set(keys)), "an idempotency key was sent twice"
        finally:
            pub.close()
            central.stop()

    caps = [ET.fromstring(b) for b in _bodies(receiver, "/cap")]
    assert [c.findtext("cap:msgType", namespaces=NS) for c in caps] == ["Alert", "Alert", "Update"]
    infos = sorted(len(c.findall("cap:info", NS)) for c in caps[:2])
    assert infos == [1, 4]  # fallen tree alone; the four waterlogging incidents in one alert
    update = caps[2]
    assert update.findtext("cap:info/cap:responseType", namespaces=NS) == "AllClear"
    water = next(c for c in caps[:2] if len(c.findall("cap:info", NS)) == 4)
    assert water.findtext("cap:identifier", namespaces=NS) in update.findtext("cap:references", namespaces=NS)
    assert all(len(info.findall("cap:area/cap:circle", NS)) >= 1 for c in caps for info in c.findall("cap:info", NS))
    if XSD.is_file():
        xmlschema = pytest.importorskip("xmlschema")
        schema = xmlschema.XMLSchema(str(XSD))
        for body in _bodies(receiver, "/cap"):
            schema.validate(body.decode())
