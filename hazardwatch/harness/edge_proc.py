"""Run a real `hazardwatch edge` process for integration tests, and watch its MQTT traffic."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from .service import ServiceProcess


def write_edge_config(
    path: Path,
    *,
    broker_port: int | None,
    cameras: list[dict[str, Any]],
    manifest: Path,
    confirm: dict[str, Any] | None = None,
    edge_id: str = "edge-test",
    hazard: str = "fire",
    **extra: Any,
) -> Path:
    """A complete edge config for tests; `extra` overrides top-level sections; `confirm` is `hazard`'s."""
    doc: dict[str, Any] = {
        "edge_id": edge_id,
        "site": "test site",
        "broker": None
        if broker_port is None
        else {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 1, "reconnect_max_s": 2},
        "patrol": {
            "intervals_s": {"fire": 0.5},
            "burst_interval_s": 0.3,
            "offline_after_s": 4,
            "open_timeout_s": 3,
            "read_timeout_s": 3,
            "backoff": {"initial_s": 0.5, "max_s": 2, "jitter": 0.1},
        },
        "confirm": {hazard: confirm or {"window": 3, "min_votes": 2, "threshold": 0.5, "end_after_s": 3}},
        "models": [{"manifest": str(manifest), "threads": 1}],
        "cameras": cameras,
        "outbox": {"path": str(path.parent / "outbox.db")},
        "http": {"host": "127.0.0.1", "port": 0},
        "heartbeat_s": 2,
    }
    doc.update(extra)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class EdgeProcess(ServiceProcess):
    """`hazardwatch edge --config FILE` as a child process, with its HTTP URL and log."""

    role = "edge"

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return resp.read().decode()

    def camera(self, camera_id: str) -> dict[str, Any]:
        return next(c for c in self.get_json("/api/cameras")["cameras"] if c["id"] == camera_id)


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool
    at: float


@dataclass
class MqttWatcher:
    """A separate subscriber (MQTT 5, persistent session so it misses nothing across broker restarts)."""

    port: int
    topic: str = "hazardwatch/#"
    client_id: str = "test-watcher"
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.reconnect_delay_set(1, 1)

    def start(self) -> MqttWatcher:
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("watcher did not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"raw": msg.payload.decode(errors="replace")}
        with self._lock:
            self.messages.append(Received(msg.topic, payload, bool(msg.retain), time.time()))

    def of_kind(self, kind: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.payload.get("kind") == kind]

    def wait_for(self, predicate: Callable[[MqttWatcher], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self)
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # the process may not answer yet
            last_exc = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_exc})")


def patrol(
    interval_s: float, hazard: str = "fire", offline_after_s: float = 30, timeout_s: float = 5
) -> dict[str, Any]:
    """A `patrol` section with one revisit interval, for tests that measure "within one patrol interval"."""
    return {
        "intervals_s": {hazard: interval_s},
        "burst_interval_s": 1,
        "offline_after_s": offline_after_s,
        "open_timeout_s": timeout_s,
        "read_timeout_s": timeout_s,
        "backoff": {"initial_s": 0.5, "max_s": 2, "jitter": 0.1},
    }
