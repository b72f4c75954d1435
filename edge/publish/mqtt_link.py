"""The edge's MQTT link (paho-mqtt 2.x): drains the outbox in order with QoS 1, keeps the
availability topic honest with a last will, and hands incoming commands to the engine.

A message leaves the outbox only once the broker acknowledged it (PUBACK). paho keeps
unacknowledged messages and resends them itself after a reconnect, so the pump never hands the
same outbox row to paho twice within one process; after a restart everything left is sent again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

import paho.mqtt.client as mqtt

from hazardwatch.contract import Availability, Topics
from hazardwatch.edge.config import BrokerConfig
from hazardwatch.edge.publish.outbox import Outbox
from hazardwatch.kernel.mqtt import broker_password, make_client

log = logging.getLogger(__name__)


class MqttLink:
    def __init__(
        self,
        cfg: BrokerConfig,
        edge_id: str,
        outbox: Outbox,
        on_command: Callable[[bytes], None],
    ) -> None:
        self.cfg = cfg
        self.edge_id = edge_id
        self.topics = Topics(cfg.topic_prefix, edge_id)
        self.outbox = outbox
        self._on_command = on_command
        self._lock = threading.Lock()
        self._inflight: dict[int, mqtt.MQTTMessageInfo] = {}  # outbox id -> paho's info (pump thread only)
        self._refused: dict[int, str] = {}  # mid -> broker's refusal reason (MQTT 5)
        self._last_handed = 0  # highest outbox id handed to paho in this process
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.published = 0
        self.rejected = 0
        self._client = self._make_client()
        self._pump_thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client = make_client(
            cfg,
            cfg.client_id or f"hazardwatch-edge-{self.edge_id}",
            broker_password(cfg),
            clean_session=True,
            insecure_skip_hostname_check=bool(cfg.tls and cfg.tls.insecure_skip_hostname_check),
        )
        client.will_set(self.topics.availability, self._availability("offline"), qos=1, retain=True)
        client.reconnect_delay_set(int(max(1, cfg.reconnect_min_s)), int(max(1, cfg.reconnect_max_s)))
        client.max_inflight_messages_set(cfg.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        return client

    def _availability(self, state: Literal["online", "offline"]) -> bytes:
        return Availability(edge_id=self.edge_id, sent_at=time.time(), state=state).model_dump_json().encode()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self._client.loop_start()
        self._pump_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (availability offline) and disconnect; unsent rows stay in the outbox."""
        self._stop.set()
        self._wake.set()
        self._pump_thread.join(timeout)
        if self._connected.is_set():
            info = self._client.publish(self.topics.availability, self._availability("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wake(self) -> None:
        """Something new is in the outbox."""
        self._wake.set()

    def publish_now(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Fire-and-forget for messages that are useless when stale (heartbeats)."""
        if self._connected.is_set():
            self._client.publish(topic, payload, qos=qos, retain=retain)

    # -- paho callbacks (network thread) ----------------------------------------------------------
    def _handle_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, reason)
            return
        log.info("connected to broker %s:%d", self.cfg.host, self.cfg.port)
        client.publish(self.topics.availability, self._availability("online"), qos=1, retain=True)
        client.subscribe(self.topics.commands, qos=1)
        self._connected.set()
        self._wake.set()

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if self._connected.is_set():
            log.warning("disconnected from broker %s:%d: %s", self.cfg.host, self.cfg.port, reason)
        self._connected.clear()

    def _handle_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        # paho marks the message info as published right after this callback returns; the pump
        # settles rows by polling their info objects, which avoids racing paho's mid assignment.
        if getattr(reason, "is_failure", False):
            with self._lock:
                self._refused[mid] = str(reason)
        self._wake.set()

    def _handle_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self._on_command(bytes(message.payload))
        except Exception:  # a bad command must never kill the network thread
            log.exception("command on %s could not be handled", message.topic)

    # -- the pump ---------------------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.05 if self._inflight else 1.0)
            self._wake.clear()
            self._settle_acknowledged()
            while self._connected.is_set() and not self._stop.is_set():
                room = self.cfg.max_inflight - len(self._inflight)
                batch = self.outbox.pending(self._last_handed, room) if room > 0 else []
                if not batch:
                    break
                for msg in batch:
                    info = self._client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
                    self._inflight[msg.id] = info
                    self._last_handed = msg.id

    def _settle_acknowledged(self) -> None:
        for row, info in list(self._inflight.items()):
            if not info.is_published():
                continue
            del self._inflight[row]
            with self._lock:
                refused = self._refused.pop(info.mid, None)
            if refused:
                # The broker answered and said no (not authorised, quota); resending cannot help.
                self.rejected += 1
                log.error("broker refused outbox message %d on %s: %s; dropped", row, info.mid, refused)
            else:
                self.published += 1
            self.outbox.ack(row)

    def inflight(self) -> int:
        return len(self._inflight)
