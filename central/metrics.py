"""Prometheus metrics of one central instance, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CentralMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter(
            "hazardwatch_central_messages_total",
            "MQTT messages by kind and result",
            ["kind", "result"],
            registry=r,
        )
        self.rejected = Counter(
            "hazardwatch_central_rejected_messages_total",
            "Messages rejected by validation",
            ["topic_kind"],
            registry=r,
        )
        self.batch = Histogram(
            "hazardwatch_central_ingest_batch_size",
            "Messages per durable write",
            buckets=(1, 10, 50, 200, 1000),
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "hazardwatch_central_ingest_seconds",
            "Time to store one batch",
            registry=r,
            buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.5, 1, 5),
        )
        self.ingest_errors = Counter(
            "hazardwatch_central_ingest_errors_total",
            "Batches that could not be stored (retried)",
            registry=r,
        )
        self.incidents_created = Counter("hazardwatch_central_incidents_created_total", "New incidents", registry=r)
        self.clock_clamped = Counter(
            "hazardwatch_central_clock_clamped_total",
            "Edge timestamps outside the trusted window, replaced by the receive time (central/ingest/clock.py)",
            ["kind", "field", "direction"],
            registry=r,
        )
        self.notifications_planned = Counter(
            "hazardwatch_central_notifications_planned_total",
            "Notifications enqueued",
            ["msg_type"],
            registry=r,
        )
        self.suppressed = Counter(
            "hazardwatch_central_notifications_suppressed_total", "Silenced or inhibited plans", registry=r
        )
        self.learn_normal = Counter(
            "hazardwatch_central_learn_normal_commands_total",
            "learn_normal commands to edges after a false alarm, by result (sent, not_sent)",
            ["result"],
            registry=r,
        )
        self.incidents = Gauge("hazardwatch_central_incidents", "Incidents by state", ["state"], registry=r)
        self.mqtt_connected = Gauge("hazardwatch_central_mqtt_connected", "1 when connected", registry=r)
        self.state_replay = Gauge(
            "hazardwatch_central_state_replay",
            "1 while the direct subscription that replays retained state is open (live changes arrive twice)",
            registry=r,
        )
