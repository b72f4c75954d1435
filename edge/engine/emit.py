"""Contract messages out of the edge: build them and hand them to the outbox the MQTT link drains.

Alerts, camera status and model status go through the persistent outbox so central hears them
after an outage; the heartbeat is published at once (qos 0), since a stale one means nothing. A
full or broken disk is reported through `storage_error`, which the health endpoint shows until the
next message is stored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hazardwatch.contract import Alert, Box, CameraStatus, Heartbeat, ModelStatus, Topics
from hazardwatch.edge.config import CameraConfig, EdgeConfig
from hazardwatch.edge.evidence import EvidenceStore
from hazardwatch.edge.health import HealthChange
from hazardwatch.edge.metrics import EdgeMetrics
from hazardwatch.edge.predictor import AlertEvent
from hazardwatch.edge.publish.mqtt_link import MqttLink
from hazardwatch.edge.publish.outbox import Outbox, OutboxError
from hazardwatch.edge.snapshot import snapshot_b64

log = logging.getLogger(__name__)


def placement(cfg: EdgeConfig, camera_id: str) -> dict[str, Any]:
    """What the camera's config says of where it stands and looks: every status carries it, so central
    puts the camera on its map before it ever alerts."""
    cam = next((c for c in cfg.cameras if c.id == camera_id), None)
    if cam is None:
        return {}
    return {
        "camera_name": cam.name[:256] or None,
        "lat": cam.location.lat if cam.location else None,
        "lon": cam.location.lon if cam.location else None,
        "bearing_deg": cam.bearing_deg,
        "fov_deg": cam.fov_deg,
        "height_m": cam.height_m,
        "tilt_deg": cam.tilt_deg,
        "view_range_m": cam.view_range_m,
    }


class Emitter:
    """Builds every message the edge sends; the only writer of the outbox."""

    def __init__(
        self,
        cfg: EdgeConfig,
        outbox: Outbox,
        metrics: EdgeMetrics,
        evidence: EvidenceStore | None,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.metrics = metrics
        self.evidence = evidence
        self.topics = Topics(cfg.broker.topic_prefix if cfg.broker else "hazardwatch", cfg.edge_id)
        self.link: MqttLink | None = None  # set once the link exists (it needs the engine's command handler)
        self.storage_error: str | None = None

    def _wake(self) -> None:
        if self.link:
            self.link.wake()

    def alert(self, event: AlertEvent, cam: CameraConfig) -> None:
        snapshot = snapshot_b64(event.frame, self.cfg.snapshot) if event.frame is not None else None

        def build(seq: int) -> bytes:
            return (
                Alert(
                    edge_id=self.cfg.edge_id,
                    sent_at=time.time(),
                    alert_id=event.alert_id,
                    seq=seq,
                    state=event.state,
                    camera_id=cam.id,
                    camera_name=cam.name,
                    site=self.cfg.site,
                    hazard=event.hazard,
                    score=round(event.score, 4),
                    boxes=[Box(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, score=round(b.score, 4)) for b in event.boxes],
                    zone=event.zone,
                    first_frame_at=event.first_frame_at,
                    last_frame_at=event.last_frame_at,
                    model_name=event.model_name,
                    model_version=event.model_version,
                    lat=cam.location.lat if cam.location else None,
                    lon=cam.location.lon if cam.location else None,
                    bearing_deg=cam.bearing_deg,
                    fov_deg=cam.fov_deg,
                    snapshot_jpeg_b64=snapshot,
                )
                .model_dump_json()
                .encode()
            )

        try:
            seq = self.outbox.put_alert(self.topics.alerts(cam.id), build)
        except OutboxError as exc:
            self.storage_error = str(exc)
            self.metrics.outbox_errors.labels("alert").inc()
            log.error("alert %s %s could not be stored: %s", event.alert_id, event.state.value, exc)
            return
        self.storage_error = None
        self.metrics.alerts.labels(event.hazard.value, event.state.value).inc()
        if self.evidence and event.state.value in ("new", "end"):
            self.evidence.on_alert(event, cam.id, self.cfg.edge_id)
        log.info(
            "alert %s %s camera=%s hazard=%s score=%.2f seq=%d",
            event.alert_id[:8],
            event.state.value,
            cam.id,
            event.hazard.value,
            event.score,
            seq,
        )
        self._wake()

    def camera_status(self, change: HealthChange | None) -> None:
        if change is None:
            return
        log.info("camera %s is %s %s", change.camera_id, change.state.value, change.reason)
        status = CameraStatus(
            edge_id=self.cfg.edge_id,
            sent_at=time.time(),
            camera_id=change.camera_id,
            state=change.state,
            reason=change.reason[:256],
            since=change.since,
            last_frame_at=change.last_frame_at,
            diagnoses=change.diagnoses,
            night=change.night,
            normal=change.normal,
            **placement(self.cfg, change.camera_id),
        )
        try:
            self.outbox.put_status(self.topics.camera_status(change.camera_id), status.wire_json().encode())
        except OutboxError as exc:
            self.storage_error = str(exc)
            self.metrics.outbox_errors.labels("status").inc()
            return
        self.storage_error = None
        self._wake()

    def model_status(self, status: ModelStatus) -> None:
        """Retained per hazard through the outbox, so central hears it after an outage."""
        try:
            self.outbox.put_status(self.topics.model_status(status.hazard.value), status.model_dump_json().encode())
        except OutboxError as exc:
            self.storage_error = str(exc)
            self.metrics.outbox_errors.labels("model").inc()
            log.error("model status for %s could not be stored: %s", status.hazard.value, exc)
            return
        self.storage_error = None
        self._wake()

    def heartbeat(self, beat: Heartbeat) -> None:
        if self.link:
            self.link.publish_now(self.topics.heartbeat, beat.model_dump_json().encode(), qos=0)
