"""Central end to end: a real Mosquitto, a real `hazardwatch central` process on SQLite and on
PostgreSQL, a real publisher speaking the contract, and a real HTTP receiver."""

from __future__ import annotations

import json
import time

import pytest

from hazardwatch.harness.central_proc import (
    ADMIN,
    VIEWER,
    CentralProcess,
    Publisher,
    alert_payload,
    alert_topic,
    write_central_config,
)
from hazardwatch.harness.edge_proc import wait_until
from hazardwatch.harness.receiver import Receiver

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def notifications(receiver: Receiver) -> list[dict]:
    return [json.loads(r.body) for r in receiver.accepted()]


@pytest.fixture
def receiver():
    with Receiver(secret="s3cret") as r:
        yield r


def start_central(tmp_path, mosquitto, database_url, receiver, name="central-1", **extra) -> CentralProcess:
    cfg = write_central_config(
        tmp_path / f"{name}.yaml",
        broker_port=mosquitto.port,
        database_url=database_url,
        receiver_url=receiver.url("/hook"),
        instance_id=name,
        **extra,
    )
    return CentralProcess(cfg, tmp_path / f"{name}.log").start()


def test_two_cameras_one_smoke_one_incident_and_one_notification(tmp_path, mosquitto, database_url, receiver):
    # the same severity at any hour: smoke starts moderate, and two cameras make it severe (the default
    # night window would add a level between 22:00 and 06:00 site time)
    central = start_central(tmp_path, mosquitto, database_url, receiver, severity_rules={"time_windows": []})
    pub = Publisher(mosquitto.port)
    try:
        pub.send(alert_topic(), alert_payload(0))
        pub.send(
            alert_topic("e2", "east"),
            alert_payload(
                0, edge="e2", cam="east", alert_id="alert-east-0001", lat=22.58, lon=114.16, bearing=290, x=(0.3, 0.4)
            ),
        )
        wait_until(lambda: notifications(receiver), 15, "the notification")
        time.sleep(1.5)
        (note,) = notifications(receiver)
        assert note["msg_type"] == "Alert" and all(r.signature_ok for r in receiver.requests)
        inc = note["incident"]
        assert inc["camera_count"] == 2 and inc["location"]["estimated"] and inc["severity"] == "severe"
        assert [r["code"] for r in inc["severity_reasons"]] == ["base", "multi_camera"]
        items = central.get("/api/v1/incidents")["items"]
        assert len(items) == 1 and items[0]["id"] == inc["id"]
        detail = central.get(f"/api/v1/incidents/{inc['id']}")
        assert [e["kind"] for e in detail["timeline"]][:3] == ["opened", "alert", "alert"]
        assert len(detail["sightings"]) == 2
        # viewer reads but cannot act; operator acknowledges; the receiver hears an Update
        assert central.request("POST", f"/api/v1/incidents/{inc['id']}/acknowledge", {}, token=VIEWER)[0] == 403
        status, body = central.request("POST", f"/api/v1/incidents/{inc['id']}/acknowledge", {})
        assert status == 200 and body["state"] == "acknowledged" and body["acknowledged_by"] == "amy"
        wait_until(lambda: len(notifications(receiver)) == 2, 15, "the update")
        assert notifications(receiver)[1]["msg_type"] == "Update"
        assert notifications(receiver)[1]["incident"]["acknowledged_by"] == "amy"
    finally:
        pub.close()
        central.stop()


def test_burst_of_duplicates_is_one_incident_and_one_notification(tmp_path, mosquitto, database_url, receiver):
    central = start_central(tmp_path, mosquitto, database_url, receiver)
    pub = Publisher(mosquitto.port)
    try:
        payload = alert_payload(5)
        for k in range(1000):
            pub.send(alert_topic(), payload, wait=k % 100 == 99)
        wait_until(
            lambda: (
                'hazardwatch_central_messages_total{kind="alert",result="duplicate"} 999.0'
                in central.request("GET", "/metrics")[1]
            ),
            60,
            "all 1000 messages processed",
        )
        time.sleep(2.5)  # past group_wait and group_interval
        assert central.get("/api/v1/incidents")["total"] == 1
        assert len(notifications(receiver)) == 1
    finally:
        pub.close()
        central.stop()


def test_receiver_down_then_up_gets_everything_once_in_order(tmp_path, mosquitto, database_url, receiver):
    receiver.stop()
    central = start_central(tmp_path, mosquitto, database_url, receiver)
    pub = Publisher(mosquitto.port)
    try:
        for k, (lat, lon) in enumerate([(22.1, 113.1), (22.9, 113.9), (23.5, 114.5)]):
            pub.send(
                alert_topic(f"e{k}", "c"),
                alert_payload(
                    0, edge=f"e{k}", cam="c", alert_id=f"alert-{k}-000001", lat=lat, lon=lon, hazard="waterlogging"
                ),
            )
        # The first notifications are queued (and failing) before the incidents are resolved.
        wait_until(lambda: central.get("/api/v1/deliveries")["counts"]["pending"] == 3, 30, "3 queued Alerts")
        for item in central.get("/api/v1/incidents")["items"]:
            central.request("POST", f"/api/v1/incidents/{item['id']}/resolve", {"note": "drained"})
        wait_until(lambda: central.get("/api/v1/deliveries")["counts"]["pending"] == 6, 30, "3 queued Cancels")
        assert central.get("/api/v1/deliveries")["counts"]["delivered"] == 0
        receiver.start()
        wait_until(lambda: len(notifications(receiver)) >= 6, 60, "all notifications after the outage")
        time.sleep(1)
        notes = notifications(receiver)
        keys = [n["idempotency_key"] for n in notes]
        assert len(keys) == len(set(keys)) == 6
        by_incident: dict[int, list[str]] = {}
        for n in notes:
            by_incident.setdefault(n["incident"]["id"], []).append(n["msg_type"])
        assert sorted(by_incident.values()) == [["Alert", "Cancel"]] * 3
        assert central.get("/api/v1/deliveries?state=dead")["items"] == []
    finally:
        pub.close()
        central.stop()


def test_kill9_mid_burst_loses_and_duplicates_nothing(tmp_path, mosquitto, database_url, receiver):
    central = start_central(tmp_path, mosquitto, database_url, receiver)
    pub = Publisher(mosquitto.port)
    cameras = 20
    try:
        for k in range(200):
            cam = k % cameras
            seq = k // cameras
            pub.send(
                alert_topic(f"edge{cam}", "c"),
                alert_payload(
                    seq,
                    edge=f"edge{cam}",
                    cam="c",
                    alert_id=f"alert-{cam}-00000",
                    state="new" if seq == 0 else "update",
                    lat=20 + cam,
                    lon=110 + cam,
                    score=0.5 + seq * 0.04,
                ),
                wait=False,
            )
            if k == 90:
                central.kill()
        central = CentralProcess(central.config, tmp_path / "central-1b.log").start()
        wait_until(
            lambda: (
                central.get("/api/v1/incidents")["total"] == cameras
                and sum(1 for n in notifications(receiver) if n["msg_type"] == "Alert") >= cameras
            ),
            60,
            "every incident stored and notified",
        )
        time.sleep(3)
        incidents = central.get("/api/v1/incidents?limit=500")
        assert incidents["total"] == cameras
        alerts = [n for n in notifications(receiver) if n["msg_type"] == "Alert"]
        assert len({n["incident"]["id"] for n in alerts}) == cameras
        # a receiver may see a repeat only with the same idempotency key
        per_key: dict[str, set[str]] = {}
        for n in notifications(receiver):
            per_key.setdefault(n["idempotency_key"], set()).add(json.dumps(n["incident"]["id"]))
        assert all(len(v) == 1 for v in per_key.values())
        # every one of the 200 alert events is stored exactly once
        for item in incidents["items"]:
            detail = central.get(f"/api/v1/incidents/{item['id']}")
            seqs = sorted(e["detail"]["seq"] for e in detail["timeline"] if e["kind"] == "alert")
            assert seqs == list(range(10)), (item["id"], seqs)
    finally:
        pub.close()
        central.stop()


def test_malformed_and_hostile_messages_are_rejected_and_counted(tmp_path, mosquitto, database_url, receiver):
    central = start_central(tmp_path, mosquitto, database_url, receiver)
    pub = Publisher(mosquitto.port)
    try:
        good = alert_payload(0)
        bad = [
            (alert_topic(), b"not json at all"),
            (alert_topic(), json.dumps({**good, "schema_version": 9}).encode()),
            (alert_topic(), json.dumps({**good, "edge_id": "someone-else"}).encode()),
            (alert_topic("e1", "other"), json.dumps(good).encode()),
            (alert_topic(), json.dumps({**good, "score": 7}).encode()),
            (alert_topic(), b"[" * 100_000 + b"]" * 100_000),
            (alert_topic(), b"{" + b" " * 600_000 + b"}"),
            ("hazardwatch/v1/e1/cameras/north/status", json.dumps(good).encode()),
            ("hazardwatch/v1/e1/heartbeat", b"\xff\xfe\x00"),
        ]
        for topic, payload in bad:
            pub.send(topic, payload)
        pub.send(alert_topic(), good)
        wait_until(lambda: central.get("/api/v1/incidents")["total"] == 1, 20, "the good alert after the bad ones")
        metrics = central.request("GET", "/metrics")[1]
        rejected = sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("hazardwatch_central_rejected_messages_total{")
        )
        assert rejected == len(bad)
        assert central.proc.poll() is None
        assert central.get("/healthz", token=None)["status"] == "ok"
        assert central.request("GET", "/api/v1/deliveries", token=ADMIN)[0] == 200
    finally:
        pub.close()
        central.stop()
