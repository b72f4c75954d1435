"""Run a real `hazardwatch central` process for integration tests, and publish contract messages."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from .service import ServiceProcess

OPERATOR = "op-token-0123456789"
VIEWER = "viewer-token-0123456789"
ADMIN = "admin-token-0123456789"


def write_central_config(
    path: Path,
    *,
    broker_port: int | None,
    database_url: str,
    receiver_url: str | None = None,
    instance_id: str = "central-1",
    **extra: Any,
) -> Path:
    doc: dict[str, Any] = {
        "instance_id": instance_id,
        "site": "Test district",
        "timezone": "Asia/Shanghai",
        "broker": None if broker_port is None else {"host": "127.0.0.1", "port": broker_port},
        "database": {"url": database_url},
        "http": {"host": "127.0.0.1", "port": 0},
        "auth": {
            "tokens": [
                {"name": "amy", "role": "operator", "token": {"value": OPERATOR}},
                {"name": "wall", "role": "viewer", "token": {"value": VIEWER}},
                {"name": "root", "role": "admin", "token": {"value": ADMIN}},
            ]
        },
        "timers": {"group_wait_s": 1, "group_interval_s": 2, "repeat_interval_s": 3600},
        "receivers": []
        if receiver_url is None
        else [
            {
                "name": "cmd",
                "kind": "webhook",
                "url": receiver_url,
                "secret": {"value": "s3cret"},
                "timeout_s": 2,
                "backoff": {"initial_s": 0.2, "max_s": 1, "jitter": 0.1},
            }
        ],
    }
    doc.update(extra)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class CentralProcess(ServiceProcess):
    """`hazardwatch central --config FILE` as a child process, with an authenticated HTTP client."""

    role = "central"

    def request(self, method: str, path: str, body: Any = None, token: str | None = OPERATOR) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str, token: str | None = OPERATOR) -> Any:
        status, body = self.request("GET", path, token=token)
        assert status == 200, (status, body)
        return body


class Publisher:
    """A real MQTT publisher sending contract messages as an edge would (QoS 1, waits for PUBACK)."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: dict[str, Any] | bytes, retain: bool = False, wait: bool = True) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(topic, raw, qos=1, retain=retain)
        if wait:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def alert_payload(
    seq: int,
    *,
    edge: str = "e1",
    cam: str = "north",
    alert_id: str = "alert-north-0001",
    state: str = "new",
    at: float | None = None,
    hazard: str = "smoke",
    x: tuple[float, float] = (0.45, 0.55),
    lat: float = 22.65,
    lon: float = 114.08,
    bearing: float = 150.0,
    fov: float = 60.0,
    score: float = 0.8,
    snapshot: str | None = None,
) -> dict[str, Any]:
    at = time.time() if at is None else at
    doc = {
        "schema_version": 1,
        "kind": "alert",
        "edge_id": edge,
        "sent_at": at,
        "alert_id": alert_id,
        "seq": seq,
        "state": state,
        "camera_id": cam,
        "camera_name": cam.title(),
        "site": "test",
        "hazard": hazard,
        "score": score,
        "boxes": [{"x1": x[0], "y1": 0.4, "x2": x[1], "y2": 0.5, "score": score}],
        "first_frame_at": at - 3,
        "last_frame_at": at,
        "model_name": "m",
        "model_version": "1",
        "lat": lat,
        "lon": lon,
        "bearing_deg": bearing,
        "fov_deg": fov,
    }
    if snapshot:
        doc["snapshot_jpeg_b64"] = snapshot
    return doc


def alert_topic(edge: str = "e1", cam: str = "north") -> str:
    return f"hazardwatch/v1/{edge}/alerts/{cam}"
