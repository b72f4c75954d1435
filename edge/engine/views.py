"""What the edge's HTTP API reads from a running engine: health, Prometheus gauges, camera views.

Read-only: these run on the event loop between patrol steps and never change the engine's state.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from hazardwatch.contract import RiskLevel
from hazardwatch.edge.diagnose.availability import utc_day

if TYPE_CHECKING:
    from hazardwatch.edge.engine.core import EdgeEngine

RISK_CODES = {RiskLevel.NORMAL: 0, RiskLevel.ELEVATED: 1, RiskLevel.HIGH: 2}


def health(engine: EdgeEngine) -> tuple[dict[str, Any], int]:
    """The /healthz body and status: 503 while the outbox cannot store what the edge must send."""
    problems = []
    if engine.storage_error:
        problems.append(f"outbox: {engine.storage_error}")
    body = {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "edge_id": engine.cfg.edge_id,
        "mqtt_connected": bool(engine.link and engine.link.connected),
        "outbox_depth": engine.outbox.depth(),
        "models": {d.hazard.value: f"{d.name}@{d.version}" for d in engine.detectors.values()},
    }
    return body, 503 if problems else 200


def refresh_metrics(engine: EdgeEngine) -> None:
    """Set the gauges that are read rather than counted, just before /metrics is scraped."""
    now = time.time()
    m = engine.metrics
    for cam in engine.cameras.values():
        h = cam.health
        if h.last_frame_at is not None:
            m.last_frame_age.labels(cam.cfg.id).set(now - h.last_frame_at)
        for state in ("online", "degraded", "offline"):
            m.camera_state.labels(cam.cfg.id, state).set(1 if h.state and h.state.value == state else 0)
        if cam.diagnoser:
            d = cam.diagnoser.current
            for name, conf in d.raw.items():
                m.diagnosis.labels(cam.cfg.id, name).set(round(conf, 3))
                m.diagnosis_active.labels(cam.cfg.id, name).set(1 if name in d.active or name in d.info else 0)
        today = engine.availability.day(cam.cfg.id, utc_day(now))["availability"]
        if isinstance(today, float):
            m.availability_today.labels(cam.cfg.id).set(today)
        for ref in engine.references.states(cam.cfg.id, now):
            if ref.part:  # zoom crops: shown in /api/cameras, their bytes in reference_bytes
                continue
            m.reference_looks.labels(cam.cfg.id, ref.hazard.value, ref.mode).set(ref.looks)
            m.reference_ready.labels(cam.cfg.id, ref.hazard.value, ref.mode).set(1 if ref.ready else 0)
            m.reference_in_use.labels(cam.cfg.id, ref.hazard.value, ref.mode).set(1 if ref.in_use else 0)
        m.reference_bytes.labels(cam.cfg.id).set(engine.references.nbytes(cam.cfg.id))
    for (cam_id, hazard), interval in engine.scheduler.intervals(now).items():
        m.interval.labels(cam_id, hazard.value).set(interval)
        risk = engine.scheduler.risk(cam_id, hazard, now)
        m.risk.labels(cam_id, hazard.value).set(RISK_CODES[risk.level] if risk else 0)
    m.outbox_depth.set(engine.outbox.depth())
    for kind, count in engine.outbox.dropped().items():
        m.outbox_dropped.labels(kind).set(count)
    m.mqtt_connected.set(1 if engine.link and engine.link.connected else 0)
    m.mqtt_published.set(engine.link.published if engine.link else 0)


def camera_views(engine: EdgeEngine) -> list[dict[str, Any]]:
    """/api/cameras: each camera's state, diagnosis, availability, scores, references and patrol."""
    now = time.time()
    views = []
    for cam in engine.cameras.values():
        h = cam.health
        views.append(
            {
                "id": cam.cfg.id,
                "name": cam.cfg.name,
                "mode": cam.cfg.mode,
                "source": cam.source.safe_url,
                "state": h.state.value if h.state else "starting",
                "reason": h.reason,
                "since": h.since or None,
                "last_frame_at": h.last_frame_at,
                "last_frame_age_s": round(now - h.last_frame_at, 3) if h.last_frame_at else None,
                "frames": h.frames,
                "failures": h.failures,
                "diagnoses": h.diagnosis.all_confidences(),
                "night": h.diagnosis.night,
                "diagnosis_raw": (
                    {k: round(v, 3) for k, v in cam.diagnoser.current.raw.items()} if cam.diagnoser else {}
                ),
                "availability": {
                    "today": engine.availability.day(cam.cfg.id, utc_day(now)),
                    "recent_days": engine.availability.recent(cam.cfg.id, 7),
                },
                "scores": {k.value: round(v, 4) for k, v in cam.scores.items()},
                "references": [
                    {**asdict(ref), "hazard": ref.hazard.value} for ref in engine.references.states(cam.cfg.id, now)
                ],
                "hazards": {
                    hz.value: {
                        "interval_s": engine.scheduler.interval(cam.cfg.id, hz, now),
                        "risk": (r.level.value if (r := engine.scheduler.risk(cam.cfg.id, hz, now)) else "normal"),
                    }
                    for hz in cam.cfg.hazards
                    if cam.cfg.hazards[hz].enabled
                },
            }
        )
    return views
