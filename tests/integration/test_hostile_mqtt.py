"""A hostile neighbour on the broker (issue 17, point 7): the issue's lax-parsing cases, malformed JSON, huge
numbers, oversize payloads and absurd clocks, published to a real Mosquitto and a real central process.

Central must stay up, count and record every rejection with a reason, open no incident from any message
the published schema rejects, bound the clocks it accepts, and keep storing valid alerts afterwards.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import jsonschema
import pytest

from hazardwatch.harness.central_proc import (
    ADMIN,
    CentralProcess,
    Publisher,
    alert_payload,
    alert_topic,
    write_central_config,
)
from hazardwatch.harness.edge_proc import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "configs" / "schemas" / "mqtt-contract.schema.json").read_text()
)


def hostile(now: float) -> list[tuple[str, bytes, str]]:
    """(topic, payload, what the rejection reason must mention)."""
    good = alert_payload(1, at=now)

    def alert(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    status = "hazardwatch/v1/e1/cameras/north/status"
    cam = {"schema_version": 1, "kind": "camera_status", "edge_id": "e1", "sent_at": now, "camera_id": "north"}
    return [
        (alert_topic(), alert(seq="77001"), "alert.seq"),
        (alert_topic(), alert(schema_version=True), "schema_version True"),
        (alert_topic(), alert(score=True), "alert.score"),
        (alert_topic(), alert(lat="31.5"), "alert.lat"),
        (alert_topic(), alert(seq=10**30), "alert.seq"),
        (alert_topic(), alert(seq=-1), "alert.seq"),
        (alert_topic(), json.dumps(good).replace('"score": 0.8', '"score": 1e400').encode(), "alert.score"),
        (alert_topic(), json.dumps(good).replace('"score": 0.8', '"score": NaN').encode(), "alert.score"),
        (alert_topic(), json.dumps(good).replace('"seq": 1', '"seq": ' + "9" * 5000).encode(), "not JSON"),
        (alert_topic(), alert(state="burning"), "alert.state"),
        (alert_topic(), alert(extra_field=1), "extra_field"),
        (alert_topic(), b"{not json", "not JSON"),
        (alert_topic(), b"", "not JSON"),
        (alert_topic(), b"\xff\xfe\x00", "not JSON"),
        (alert_topic(), b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (alert_topic(), alert(snapshot_jpeg_b64="A" * 600_000), "exceeds the limit"),
        (alert_topic(), alert(edge_id="e2"), "does not match the topic"),
        (status, json.dumps({**cam, "state": "broken", "since": now}).encode(), "camera_status.state"),
        (status, json.dumps({**cam, "state": "offline", "since": "yesterday"}).encode(), "camera_status.since"),
        (
            "hazardwatch/v1/e1/availability",
            json.dumps({**cam, "kind": "availability", "state": "maybe"}).encode(),
            "availability",
        ),
    ]


def schema_rejects(payload: bytes) -> bool:
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")  # RFC 8259 has no NaN or Infinity; Python's json reads them

    try:
        doc = json.loads(payload, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return True
    return not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)


def metric(central: CentralProcess, name: str) -> float:
    text = central.request("GET", "/metrics", token=None)[1]
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_hostile_messages_are_rejected_counted_and_open_no_incident(tmp_path: Path, mosquitto) -> None:
    db = tmp_path / "central.db"
    cfg = write_central_config(tmp_path / "central.yaml", broker_port=mosquitto.port, database_url=f"sqlite:///{db}")
    now = time.time()
    cases = hostile(now)
    with CentralProcess(cfg, tmp_path / "central.log") as central:
        wait_until(lambda: central.get("/healthz", token=None)["mqtt"] == "subscribed", 15, "central subscribed")
        pub = Publisher(mosquitto.port, client_id="hostile-neighbour")
        try:
            for topic, payload, _why in cases:
                assert schema_rejects(payload) or "does not match" in _why, payload[:200]
                pub.send(topic, payload)
            wait_until(
                lambda: metric(central, "hazardwatch_central_rejected_messages_total") >= len(cases), 20, "rejections"
            )
            assert central.get("/api/v1/incidents")["total"] == 0  # none of them opened an incident
            # clocks from the network: accepted, bounded and counted, not trusted
            far = {"schema_version": 1, "kind": "camera_status", "edge_id": "e1", "sent_at": now}
            pub.send(
                "hazardwatch/v1/e1/cameras/north/status",
                json.dumps({**far, "camera_id": "north", "state": "offline", "since": 1e18}).encode(),
                retain=True,
            )
            wait_until(lambda: metric(central, "hazardwatch_central_clock_clamped_total") >= 1, 10, "clock clamped")
            pub.send(alert_topic(), alert_payload(2, at=time.time(), alert_id="alert-after-0001"))
            wait_until(lambda: central.get("/api/v1/incidents")["total"] == 1, 15, "the valid alert after them")
        finally:
            pub.close()
        assert metric(central, "hazardwatch_central_rejected_messages_total") == len(cases)
        (cam,) = [c for c in central.get("/api/v1/cameras")["items"] if c["camera_id"] == "north"]
        assert cam["since"] <= time.time() + 1
        assert central.get("/healthz", token=None)["status"] == "ok"
        assert central.request("GET", "/api/v1/deliveries", token=ADMIN)[0] == 200
        assert not re.search(r'File "[^"]*/(central|hazardwatch)/', central.log())
    with sqlite3.connect(db) as conn:
        reasons = [r[0] for r in conn.execute("SELECT reason FROM rejected_messages ORDER BY id")]
    assert len(reasons) == len(cases)
    for (_topic, _payload, why), reason in zip(cases, reasons, strict=True):
        assert why in reason, (why, reason)
