"""Prometheus metrics of one edge, in a registry of its own (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EdgeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.frames = Counter("hazardwatch_edge_frames_total", "Frames looked at", ["camera"], registry=r)
        self.visit_failures = Counter(
            "hazardwatch_edge_visit_failures_total", "Looks that got no frame", ["camera"], registry=r
        )
        self.connect_cpu = Counter(
            "hazardwatch_edge_connect_cpu_seconds_total", "CPU spent connecting to cameras", registry=r
        )
        self.decode_cpu = Counter("hazardwatch_edge_decode_cpu_seconds_total", "CPU spent decoding", registry=r)
        self.inference = Histogram(
            "hazardwatch_edge_inference_seconds",
            "Wall time of one model on its frames of a batch",
            ["model"],
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
            registry=r,
        )
        self.batch_size = Histogram(
            "hazardwatch_edge_inference_batch_size",
            "Frames per inference",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=r,
        )
        self.alerts = Counter("hazardwatch_edge_alerts_total", "Alert events", ["hazard", "state"], registry=r)
        self.last_frame_age = Gauge(
            "hazardwatch_edge_camera_last_frame_age_seconds",
            "Seconds since the last frame",
            ["camera"],
            registry=r,
        )
        self.camera_state = Gauge(
            "hazardwatch_edge_camera_state",
            "1 for the camera's current state",
            ["camera", "state"],
            registry=r,
        )
        self.interval = Gauge(
            "hazardwatch_edge_patrol_interval_seconds",
            "Current revisit interval",
            ["camera", "hazard"],
            registry=r,
        )
        self.risk = Gauge(
            "hazardwatch_edge_risk_level", "0 normal, 1 elevated, 2 high", ["camera", "hazard"], registry=r
        )
        self.outbox_depth = Gauge("hazardwatch_edge_outbox_depth", "Messages waiting in the outbox", registry=r)
        self.outbox_dropped = Gauge(
            "hazardwatch_edge_outbox_dropped_total",
            "Messages dropped because the outbox was full",
            ["kind"],
            registry=r,
        )
        self.outbox_errors = Counter(
            "hazardwatch_edge_outbox_write_errors_total",
            "Messages that could not be stored",
            ["kind"],
            registry=r,
        )
        self.mqtt_connected = Gauge("hazardwatch_edge_mqtt_connected", "1 when connected to the broker", registry=r)
        self.mqtt_published = Gauge(
            "hazardwatch_edge_mqtt_published_total", "Messages acknowledged by the broker", registry=r
        )
        self.commands = Counter("hazardwatch_edge_commands_total", "Commands received", ["result"], registry=r)
        self.diagnose_cpu = Counter(
            "hazardwatch_edge_diagnose_cpu_seconds_total", "CPU spent diagnosing camera frames", registry=r
        )
        self.diagnosis = Gauge(
            "hazardwatch_edge_camera_diagnosis",
            "Confidence (0..1) of each camera diagnosis at the last look",
            ["camera", "diagnosis"],
            registry=r,
        )
        self.diagnosis_active = Gauge(
            "hazardwatch_edge_camera_diagnosis_active",
            "1 while a diagnosis is in effect (after hysteresis)",
            ["camera", "diagnosis"],
            registry=r,
        )
        self.online_seconds = Counter(
            "hazardwatch_edge_camera_online_seconds_total", "Seconds the camera was online", ["camera"], registry=r
        )
        self.availability_today = Gauge(
            "hazardwatch_edge_camera_availability_ratio",
            "Share of today's (UTC) observed time the camera was online",
            ["camera"],
            registry=r,
        )
        self.reference_looks = Gauge(
            "hazardwatch_edge_reference_looks",
            "Quiet looks learnt into a camera's reference (per hazard and light mode)",
            ["camera", "hazard", "mode"],
            registry=r,
        )
        self.reference_ready = Gauge(
            "hazardwatch_edge_reference_ready",
            "1 once the camera's reference has its min_looks for the hazard in that light mode",
            ["camera", "hazard", "mode"],
            registry=r,
        )
        self.reference_in_use = Gauge(
            "hazardwatch_edge_reference_in_use",
            "1 when looks are compared with the camera's reference (ready, or still learning at the model's "
            "stricter warm-up threshold), 0 while the camera runs cold",
            ["camera", "hazard", "mode"],
            registry=r,
        )
        self.reference_bytes = Gauge(
            "hazardwatch_edge_reference_bytes", "Memory held by a camera's references", ["camera"], registry=r
        )
