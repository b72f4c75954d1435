"""MQTT ingest: receive, validate, store in batches, then acknowledge.

paho runs with manual acknowledgement and a persistent MQTT 5 session, so a message is PUBACKed
only after the transaction that stored it committed. A crash before that makes the broker redeliver
it, and the store recognises the redelivery by (edge, alert, seq).

Alerts and heartbeats arrive on a shared subscription (`$share/<group>/...`): instances in one
group split the load. Camera status, availability and model status are retained state: their live
changes come through the shared subscription too, so each is stored once by one instance, while a
direct subscription replays the retained state when an instance subscribes. The two are told apart by
subscription identifier: from the direct one only the replay (retain flag set) is taken, from the
shared one only live changes (it asks for no retained replay, MQTT 5 retain handling 2; a broker that
replays anyway has that copy dropped); the other copies are acknowledged and dropped. Once the replay
has been quiet for `REPLAY_QUIET_S` the direct subscription is taken down, so an instance receives each
live change once, not twice; a reconnect opens it again. Applying state is idempotent (a newer `since`
wins), so the replay and a live change crossing it, or two instances applying one camera's changes in
either order, end in the same row.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from hazardwatch.central.config import BrokerConfig, CentralConfig
from hazardwatch.central.incidents.places import lock_keys
from hazardwatch.central.ingest.clock import bound_times
from hazardwatch.central.ingest.messages import (
    Incoming,
    Message,
    Rejected,
    Valid,
    default_client_id,
    topic_kind,
    validate,
)
from hazardwatch.central.metrics import CentralMetrics
from hazardwatch.central.services import health, registry
from hazardwatch.central.services.correlation import AlertBatch, apply_alert
from hazardwatch.central.store import Database, Tx
from hazardwatch.contract import Alert, Availability, CameraStatus, ModelStatus
from hazardwatch.kernel.mqtt import broker_password, make_client

log = logging.getLogger(__name__)

MAX_BATCH = 500
LIVE_STATE, REPLAY_STATE = 1, 2  # subscription identifiers of the retained-state topics
BATCH_WAIT_S = 0.02
# The direct subscription exists only for the retained replay: once the broker granted it and no replayed
# message came for this long, it is taken down. Mosquitto queues the whole replay when it grants the
# subscription (and keeps delivering what it queued after an UNSUBSCRIBE), so the wait is a margin for
# brokers that deliver retained messages lazily; until then the direct copies of live changes are dropped.
REPLAY_QUIET_S = 5.0
# A deadlock or serialisation failure says nothing about the messages: PostgreSQL chose this transaction
# to give way to another instance's, so the same batch is simply run again.
TRANSIENT_SQLSTATES = ("40P01", "40001")


@functools.lru_cache(maxsize=1 << 14)
def place_locks(
    hazard: str, edge_id: str, camera_id: str, lat: float | None, lon: float | None, distance_km: float
) -> tuple[str, ...]:
    """An alert's correlation lock keys (`incidents/places.py`): a camera sends the same ones each time."""
    return tuple(lock_keys(hazard, edge_id, camera_id, lat, lon, distance_km))


@dataclass
class ReplayWindow:
    """The direct subscription that replays retained state, from SUBSCRIBE until it is taken down."""

    topics: list[str]
    mid: int | None  # the SUBSCRIBE's packet id, to recognise its SUBACK
    granted_at: float | None = None  # monotonic time of the SUBACK
    last_at: float = 0.0  # monotonic time of the last replayed message

    def quiet(self, now: float) -> bool:
        return self.granted_at is not None and now - max(self.granted_at, self.last_at) >= REPLAY_QUIET_S


class MqttIngest:
    def __init__(
        self,
        cfg: CentralConfig,
        db: Database,
        metrics: CentralMetrics,
        on_stored: Callable[[int], None],
    ) -> None:
        assert cfg.broker is not None
        self.cfg = cfg
        self.broker: BrokerConfig = cfg.broker
        self.db = db
        self.metrics = metrics
        self._on_stored = on_stored
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=20_000)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.subscribed = threading.Event()  # set once the broker granted the subscriptions
        self._subscribing: set[int] = set()  # mids of SUBSCRIBEs not yet granted
        self.replay_only = False  # state topics: live changes come through the shared subscription
        self._replay: ReplayWindow | None = None  # set from paho's thread, closed from the ingest thread
        self._replay_lock = threading.Lock()
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)

    def _make_client(self) -> mqtt.Client:
        b = self.broker
        password = broker_password(b) if b.username else None
        # MQTT 3.1.1: a persistent session keeps unacknowledged messages across a restart.
        client_id = b.client_id or default_client_id(self.cfg.instance_id, password)
        client = make_client(b, client_id, password, clean_session=False)
        client.manual_ack_set(True)
        client.reconnect_delay_set(1, 10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self.broker.protocol == "5":
            props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
            props.SessionExpiryInterval = 24 * 3600  # unacknowledged messages wait for us across a restart
            self._client.connect_async(
                self.broker.host,
                self.broker.port,
                keepalive=self.broker.keepalive_s,
                clean_start=False,
                properties=props,
            )
        else:
            self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()

    def publish_command(self, edge_id: str, payload: bytes, timeout_s: float = 5.0) -> bool:
        """Send a command to one edge (QoS 1, not retained); True once the broker acknowledged it.

        Call from a worker thread: it waits for the PUBACK. Commands are never retained, so a stale level
        cannot reach an edge that connects later; central resends current levels when an edge comes back.
        """
        if not self._connected.is_set():
            return False
        topic = f"{self.broker.topic_prefix}/v1/{edge_id}/commands"
        try:
            info = self._client.publish(topic, payload, qos=1, retain=False)
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            log.warning("command to %s not sent: %s", edge_id, exc)
            return False
        return info.is_published()

    # -- paho callbacks ---------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused central: %s", reason)
            return
        p = f"{self.broker.topic_prefix}/v1"
        shared = f"$share/{self.broker.share_group}/" if self.broker.shared_subscription else ""
        state = [f"{p}/+/cameras/+/status", f"{p}/+/availability", f"{p}/+/models/+/status"]
        # State through the shared subscription needs MQTT 5 subscription identifiers to tell its live
        # changes from the direct subscription's copies; without them every instance takes every change.
        ids = getattr(props, "SubscriptionIdentifierAvailable", 1) != 0
        self.replay_only = bool(shared) and self.broker.protocol == "5" and ids
        self._subscribing.clear()
        self._subscribe(client, [f"{shared}{p}/+/alerts/+", f"{shared}{p}/+/heartbeat"])
        if self.replay_only:
            self._subscribe(client, [f"{shared}{t}" for t in state], LIVE_STATE, live_only=True)
            with self._replay_lock:
                self._replay = ReplayWindow(state, self._subscribe(client, state, REPLAY_STATE))
            self.metrics.state_replay.set(1)
        else:
            with self._replay_lock:  # a window left from a connection that had identifiers must not close this one
                self._replay = None
            self.metrics.state_replay.set(0)
            self._subscribe(client, state)  # retained: direct, idempotent
        self._connected.set()
        self.metrics.mqtt_connected.set(1)
        log.info("central %s subscribed on %s:%d", self.cfg.instance_id, self.broker.host, self.broker.port)

    def _subscribe(
        self, client: mqtt.Client, topics: list[str], ident: int | None = None, live_only: bool = False
    ) -> int | None:
        """SUBSCRIBE at QoS 1; `live_only` (MQTT 5 retain handling 2): the broker replays no retained message
        on it, so the shared state subscription does not repeat the direct one's replay."""
        props = None
        if ident is not None:
            props = mqtt.Properties(mqtt.PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = ident
        if live_only:
            options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            _rc, mid = client.subscribe([(t, options) for t in topics], properties=props)
        else:
            _rc, mid = client.subscribe([(t, 1) for t in topics], properties=props)
        if mid is not None:
            self._subscribing.add(mid)
        return mid

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list, props: object) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            log.error("broker refused %d of central's subscriptions: %s", len(refused), refused)
        self._subscribing.discard(mid)
        with self._replay_lock:
            if self._replay is not None and self._replay.mid == mid:
                self._replay.granted_at = time.monotonic()
        if not self._subscribing:
            self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._connected.clear()
        self.metrics.mqtt_connected.set(0)
        log.warning("central disconnected from broker: %s", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        ids = getattr(message.properties, "SubscriptionIdentifier", None) or [] if self.replay_only else []
        if message.retain and REPLAY_STATE in ids:
            with self._replay_lock:
                if self._replay is not None:
                    self._replay.last_at = time.monotonic()
        if ids and (REPLAY_STATE if message.retain else LIVE_STATE) not in ids:
            # The direct subscription's copy of a live change (the shared one brings it to one instance),
            # or a broker that also replays retained state to shared subscriptions (the direct one did).
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            self.metrics.messages.labels(self._kind(message.topic), "taken_once").inc()
            return
        # Blocks paho's thread when the store falls behind: back-pressure instead of unbounded memory.
        self._queue.put(Incoming(message.topic, bytes(message.payload), message.mid, message.qos))

    # -- the ingest thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._end_replay_when_quiet()
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            valid = []
            for msg in batch:
                try:
                    valid.append((msg, validate(msg, self.broker.topic_prefix)))
                except Rejected as exc:
                    self._reject(msg, str(exc))
                    self._ack([msg])
            if valid:
                self._store_with_retry(valid)

    def _end_replay_when_quiet(self) -> None:
        """Take the direct subscription down once its replay is over: live changes then arrive once.

        Only with the queue empty: while it is full, paho's thread waits to hand over a message and
        reads nothing, so a replay still in the socket would look quiet."""
        if self._replay is None:  # the common case, once per batch: no lock needed to see it
            return
        with self._replay_lock:
            window = self._replay
            if window is None or not window.quiet(time.monotonic()) or not self._queue.empty():
                return
            self._replay = None
        rc, _mid = self._client.unsubscribe(window.topics)
        if rc != mqtt.MQTT_ERR_SUCCESS:  # disconnected: the next connection opens a new replay window
            log.info("replay subscription not taken down (%s); a reconnect replays again", mqtt.error_string(rc))
            return
        self.metrics.state_replay.set(0)
        log.info("central %s: retained state replayed; live changes now come once", self.cfg.instance_id)

    def _store_with_retry(self, batch: list[Valid]) -> None:
        """Store, then acknowledge. A failing batch is retried message by message, so one message
        that cannot be applied while the database is healthy is rejected instead of stalling ingest."""
        delay = 0.5
        pending = [batch]
        while pending and not self._stop.is_set():
            part = pending[0]
            try:
                stored = self.store(part)
            except Exception as exc:
                self.metrics.ingest_errors.inc()
                if getattr(exc, "sqlstate", None) in TRANSIENT_SQLSTATES:
                    log.info("batch of %d met %s; retrying it whole", len(part), type(exc).__name__)
                    continue
                if len(part) > 1:
                    log.warning(
                        "batch of %d failed (%s: %s); retrying message by message",
                        len(part),
                        type(exc).__name__,
                        str(exc)[:300],
                    )
                    pending[0:1] = [[m] for m in part]
                    continue
                if self._database_ok():
                    log.exception("message on %s cannot be applied", part[0][0].topic)
                    self._reject(part[0][0], f"cannot be applied: {type(exc).__name__}: {exc}")
                    self._ack([part[0][0]])
                    pending.pop(0)
                    continue
                log.error("database unavailable (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30)
                continue
            self._ack([msg for msg, _ in part])
            if stored:
                self._on_stored(stored)
            pending.pop(0)
            delay = 0.5

    def _ack(self, part: list[Incoming]) -> None:
        for msg in part:
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)

    def _database_ok(self) -> bool:
        try:
            with self.db.tx() as tx:
                tx.execute("SELECT 1")
            return True
        except Exception:
            return False

    def store(self, batch: list[Valid]) -> int:
        """Store validated messages in one transaction; return how many alerts were new.

        Correlation locks only the places where the batch's alerts could merge (`incidents/places.py`),
        all at once and in a fixed order, so instances working on different places never wait for each
        other and two instances never split one incident."""
        started = time.perf_counter()
        now = time.time()
        distance = self.cfg.correlation.cross_camera_distance_km
        alerts = AlertBatch()
        counts: Tally[tuple[str, str]] = Tally()  # counted once committed, so a retried batch counts once
        with self.db.tx(pipeline=True) as tx:
            found = [p for _msg, p in batch if isinstance(p, Alert)]
            places = (place_locks(a.hazard.value, a.edge_id, a.camera_id, a.lat, a.lon, distance) for a in found)
            tx.lock_all(key for keys in places for key in keys)
            alerts.prefetch(tx, found, now)
            for _msg, parsed in batch:
                self._apply(tx, parsed, now, alerts, counts)
            alerts.flush(tx, self.cfg, now)
        for (kind, result), n in counts.items():
            if kind == "incident":
                self.metrics.incidents_created.inc(n)
            else:
                self.metrics.messages.labels(kind, result).inc(n)
        self.metrics.batch.observe(len(batch))
        self.metrics.ingest_seconds.observe(time.perf_counter() - started)
        return counts[("alert", "stored")]

    def _apply(self, tx: Tx, parsed: Message, now: float, alerts: AlertBatch, counts: Tally[tuple[str, str]]) -> None:
        parsed, clamped = bound_times(parsed, now, self.cfg.clock)
        for c in clamped:
            self.metrics.clock_clamped.labels(parsed.kind, c.field, c.direction).inc()
            log.warning(
                "%s from %s: %s %.6g is %s central's clock window; using the receive time",
                parsed.kind,
                parsed.edge_id,
                c.field,
                c.value,
                "ahead of" if c.direction == "future" else "behind",
            )
        if isinstance(parsed, Alert):
            outcome = apply_alert(tx, parsed, self.cfg, now, alerts)
            counts[("alert", "duplicate" if outcome.duplicate else "stored")] += 1
            counts[("incident", "created")] += outcome.created
            return
        if isinstance(parsed, CameraStatus):
            health.apply_camera_status(tx, parsed, now)
        elif isinstance(parsed, Availability):
            health.apply_availability(tx, parsed, now)
        elif isinstance(parsed, ModelStatus):
            registry.apply_model_status(tx, parsed, now)
        else:
            health.apply_heartbeat(tx, parsed, now)
        counts[(parsed.kind, "stored")] += 1

    def _kind(self, topic: str) -> str:
        try:
            return topic_kind(topic, self.broker.topic_prefix)[0]
        except Rejected:
            return "unknown"

    def _reject(self, msg: Incoming, reason: str) -> None:
        kind = self._kind(msg.topic)
        self.metrics.rejected.labels(kind).inc()
        self.metrics.messages.labels(kind, "rejected").inc()
        log.warning("rejected message on %s: %s", msg.topic[:200], reason[:300])
        try:
            with self.db.tx() as tx:
                tx.execute(
                    "INSERT INTO rejected_messages(topic, reason, received_at) VALUES (?, ?, ?)",
                    (msg.topic[:512], reason[:1000], time.time()),
                )
        except Exception:
            log.exception("could not record a rejected message")
