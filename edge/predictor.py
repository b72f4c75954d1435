"""The network-free predictor: inference plus temporal state, nothing else.

It takes frames and returns alert events; it never touches a socket, a file or a clock of its own,
so it runs the same on a live edge, on a folder of frames offline, and in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from hazardwatch.edge.config import CameraConfig, ConfirmConfig
from hazardwatch.edge.confirm.lifecycle import AlertLifecycle, LifecycleEvent
from hazardwatch.edge.confirm.vote import SlidingVote
from hazardwatch.edge.detect import Detection, Detector, ImageResult, LookContext
from hazardwatch.edge.detect.regions import RegionFilter

from hazardwatch.contract import AlertState, Hazard


@dataclass(frozen=True)
class AlertEvent:
    """One lifecycle step of one alert, with the frame that supports it."""

    alert_id: str
    state: AlertState
    camera_id: str
    hazard: Hazard
    zone: str | None
    score: float
    boxes: tuple[Detection, ...]
    first_frame_at: float
    last_frame_at: float
    model_name: str
    model_version: str
    frame: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LookRequest:
    camera_id: str
    frame: np.ndarray
    at: float
    hazards: frozenset[Hazard]


@dataclass
class LookOutcome:
    camera_id: str
    events: list[AlertEvent] = field(default_factory=list)
    scores: dict[Hazard, float] = field(default_factory=dict)
    # Hazards that saw a candidate region but are not alerting yet: re-check this camera soon.
    candidates: set[Hazard] = field(default_factory=set)


@dataclass
class _Track:
    """Temporal state of one camera, hazard and zone."""

    vote: SlidingVote
    lifecycle: AlertLifecycle
    burst_looks: int = 0


class Predictor:
    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        detectors: Mapping[Hazard, Detector],
        confirm_for: Mapping[tuple[str, Hazard], ConfirmConfig],
    ) -> None:
        self.cameras = {c.id: c for c in cameras}
        self.detectors = dict(detectors)
        self._confirm = dict(confirm_for)
        self._regions = {(c.id, h): self._region_filter(c, h) for c in cameras for h in c.hazards}
        self._tracks: dict[tuple[str, Hazard, str | None], _Track] = {}

    @staticmethod
    def _region_filter(camera: CameraConfig, hazard: Hazard) -> RegionFilter:
        allowed = camera.hazards[hazard].zones
        zones = tuple((z.id, tuple(z.polygon)) for z in camera.zones if allowed is not None and z.id in allowed)
        return RegionFilter(masks=tuple(tuple(m) for m in camera.masks), zones=zones)

    def _track(self, camera_id: str, hazard: Hazard, zone: str | None) -> _Track:
        key = (camera_id, hazard, zone)
        track = self._tracks.get(key)
        if track is None:
            cfg = self._confirm[(camera_id, hazard)]
            track = self._tracks[key] = _Track(SlidingVote(cfg), AlertLifecycle(cfg))
        return track

    def process(self, requests: Sequence[LookRequest]) -> list[LookOutcome]:
        """Run every requested hazard on its frames, batched per model, and update temporal state."""
        outcomes = [LookOutcome(r.camera_id) for r in requests]
        for hazard, detector in self.detectors.items():
            idx = [k for k, r in enumerate(requests) if hazard in r.hazards]
            if not idx:
                continue
            results = detector.detect(
                [requests[k].frame for k in idx],
                [
                    LookContext(requests[k].camera_id, requests[k].at, self._regions[(requests[k].camera_id, hazard)])
                    for k in idx
                ],
            )
            for k, result in zip(idx, results, strict=True):
                self._apply(requests[k], hazard, detector, result, outcomes[k])
        return outcomes

    def _apply(
        self, req: LookRequest, hazard: Hazard, detector: Detector, result: ImageResult, out: LookOutcome
    ) -> None:
        out.scores[hazard] = result.score
        zones = {d.zone for d in result.detections}
        # Zones with no region in this look still vote "nothing", so an open alert can end.
        zones |= {z for (cam, h, z) in self._tracks if cam == req.camera_id and h == hazard}
        if not zones:
            zones = {None}
        for zone in zones:
            track = self._track(req.camera_id, hazard, zone)
            dets = [d for d in result.detections if d.zone == zone]
            confirmation = track.vote.add(req.at, dets, track.lifecycle.ongoing)
            step = track.lifecycle.observe(req.at, confirmation)
            if step is not None:
                out.events.append(self._event(req.camera_id, hazard, zone, detector, step, req.frame))
            track.burst_looks = track.burst_looks + 1 if dets and not track.lifecycle.ongoing else 0
            # Burst until confirmed or dropped; give up after a full window of unconfirmed looks.
            if dets and not track.lifecycle.ongoing and track.burst_looks <= track.vote.cfg.window:
                out.candidates.add(hazard)

    def expire(self, now: float) -> list[AlertEvent]:
        """End alerts whose camera has not confirmed them for their clear period (even unseen)."""
        events = []
        for (camera_id, hazard, zone), track in self._tracks.items():
            step = track.lifecycle.expire(now)
            if step is not None:
                events.append(self._event(camera_id, hazard, zone, self.detectors[hazard], step, None))
        return events

    @staticmethod
    def _event(
        camera_id: str,
        hazard: Hazard,
        zone: str | None,
        detector: Detector,
        step: LifecycleEvent,
        frame: np.ndarray | None,
    ) -> AlertEvent:
        return AlertEvent(
            alert_id=step.alert_id,
            state=step.state,
            camera_id=camera_id,
            hazard=hazard,
            zone=zone,
            score=step.score,
            boxes=step.boxes,
            first_frame_at=step.first_frame_at,
            last_frame_at=step.last_frame_at,
            model_name=detector.name,
            model_version=detector.version,
            frame=frame,
        )
