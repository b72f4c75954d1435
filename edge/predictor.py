"""The network-free predictor: inference plus temporal state, nothing else.

It takes frames and returns alert events; it never touches a socket, a file or a clock of its own,
so it runs the same on a live edge, on a folder of frames offline, and in tests.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hazardwatch.contract import AlertState, Hazard
from hazardwatch.contract.messages import NormalPhase
from hazardwatch.edge.config import CameraConfig, ConfirmConfig
from hazardwatch.edge.confirm.lifecycle import AlertLifecycle, LifecycleEvent
from hazardwatch.edge.confirm.vote import SlidingVote
from hazardwatch.edge.detect import Detection, Detector, ImageResult, LookContext, ReferenceInput
from hazardwatch.edge.detect.regions import RegionFilter
from hazardwatch.edge.detect.zoom import Crop, band_crops, merge, quiet_part
from hazardwatch.edge.reference import ReferenceBank, ReferencePolicy, embedding_mask, part_id
from hazardwatch.manifest import ReferenceSpec, ZoomSpec


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
    """One frame to look at. `mode` (day / ir) and `view` (bumped when the diagnosis adopts a re-aimed
    view) pick the camera's reference; `healthy` False (a degraded camera) means learn nothing from it."""

    camera_id: str
    frame: np.ndarray
    at: float
    hazards: frozenset[Hazard]
    mode: str = "day"
    view: int = 0
    healthy: bool = True


@dataclass
class LookOutcome:
    camera_id: str
    events: list[AlertEvent] = field(default_factory=list)
    scores: dict[Hazard, float] = field(default_factory=dict)
    # Hazards that saw a candidate region but are not alerting yet: re-check this camera soon.
    candidates: set[Hazard] = field(default_factory=set)
    # The regions each model found in this look (the evidence clip draws every frame's own boxes).
    regions: dict[Hazard, list[Detection]] = field(default_factory=dict)
    # How far the camera has learnt its normal, per hazard whose model uses one (contract NormalPhase).
    normal: dict[Hazard, NormalPhase] = field(default_factory=dict)


@dataclass
class _Track:
    """Temporal state of one camera, hazard and zone."""

    vote: SlidingVote
    lifecycle: AlertLifecycle
    burst_looks: int = 0


@dataclass(frozen=True)
class _AlertLook:
    """The embedding behind an alert's latest event, kept so an operator's false-alarm label can teach it."""

    camera_id: str
    hazard: Hazard
    mode: str
    view: int
    model_key: str
    embedding: np.ndarray
    boxes: tuple[Detection, ...]
    scales: tuple[tuple[int, tuple[int, int]], ...]  # the embedding's layout (manifest reference.scales)
    parts: tuple[_PartLook, ...] = ()  # the zoom crops' embeddings of the same look


@dataclass(frozen=True)
class _PartLook:
    """One zoom crop of a look: its reference key, where it lies and what the model saw in it."""

    key: str
    crop: Crop
    result: ImageResult

    def kept(self) -> _PartLook:
        """A copy that holds its own embedding, not a view of the batch's output."""
        emb = self.result.embedding
        return replace(self, result=replace(self.result, embedding=None if emb is None else emb.copy()))


@dataclass(frozen=True)
class _Judged:
    """One look at one hazard: the merged result, and the parts it was merged from. `key`: the model's
    reference key, empty when no reference is learnt for it."""

    index: int
    hazard: Hazard
    detector: Detector
    key: str
    result: ImageResult
    parts: tuple[_PartLook, ...]
    spec: ReferenceSpec | None = None  # the model's reference section, read once per batch
    phase: NormalPhase | None = None  # the view's reference (None: the model learns none)


MAX_ALERT_LOOKS = 32  # bounded: about 115 KB each for the shipped smoke model (3.7 MB; x4 with zoom crops)


def model_key(detector: Detector) -> str:
    """What a reference is learnt for: the model's name, version and file digest."""
    manifest = getattr(detector, "manifest", None)
    return f"{detector.name}@{detector.version}#{getattr(manifest, 'sha256', '')[:16]}"


class Predictor:
    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        detectors: Mapping[Hazard, Detector],
        confirm_for: Mapping[tuple[str, Hazard], ConfirmConfig],
        references: ReferenceBank | None = None,
        learn_below: float = 0.9,
        learn: bool = True,
        on_inference: Callable[[str, float], None] | None = None,
    ) -> None:
        """`learn_below`: a look is learnt as the camera's normal only when its score stays under this
        share of the operating threshold (and nothing is voting or alerting on that camera and hazard).
        `on_inference(model, seconds)` hears each model's own share of a batch (for metrics)."""
        self.cameras = {c.id: c for c in cameras}
        self.detectors = dict(detectors)
        self._confirm = dict(confirm_for)
        self._regions = {(c.id, h): self._region_filter(c, h) for c in cameras for h in c.hazards}
        self._bands = {(c.id, h): s.zoom.band for c in cameras for h, s in c.hazards.items() if s.zoom is not None}
        self._tracks: dict[tuple[str, Hazard, str | None], _Track] = {}
        self.references = references if references is not None else ReferenceBank(ReferencePolicy())
        self.learn_below = learn_below
        self.learn = learn  # False: no camera learns or uses a reference; reference models run cold
        self._alert_looks: OrderedDict[str, _AlertLook] = OrderedDict()
        self.on_inference = on_inference

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
        """Run every requested hazard on its frames (and their zoom crops), batched per model, and update
        temporal state."""
        outcomes = [LookOutcome(r.camera_id) for r in requests]
        for j in self._judge(requests):
            req, out = requests[j.index], outcomes[j.index]
            self._apply(req, j.hazard, j.detector, j.result, out)
            if j.phase is not None:
                out.normal[j.hazard] = j.phase
            if j.key and j.result.embedding is not None:
                self._learn(req, j, out)
        return outcomes

    def judge(self, requests: Sequence[LookRequest]) -> list[dict[Hazard, ImageResult]]:
        """What each look's models decide, zoom crops merged in, against the references as they stand:
        nothing votes, alerts or learns (`models eval --cameras` scores held-out frames with it)."""
        out: list[dict[Hazard, ImageResult]] = [{} for _ in requests]
        for j in self._judge(requests):
            out[j.index][j.hazard] = j.result
        return out

    def _judge(self, requests: Sequence[LookRequest]) -> list[_Judged]:
        judged: list[_Judged] = []
        for hazard, detector in self.detectors.items():
            idx = [k for k, r in enumerate(requests) if hazard in r.hazards]
            if not idx:
                continue
            spec = getattr(detector, "reference", None) if self.learn else None
            key = model_key(detector) if spec is not None else ""
            first = spec.first_looks if spec is not None else None
            zoom = spec.zoom if spec is not None else None
            frames: list[np.ndarray] = []
            contexts: list[LookContext] = []
            crops: list[list[tuple[str, Crop]]] = []
            phases: list[NormalPhase | None] = []
            for k in idx:
                r = requests[k]
                ref = self.references.reference(r.camera_id, hazard, r.mode, key, r.view, first) if key else None
                phases.append(self._phase(key, ref))
                frames.append(r.frame)
                contexts.append(LookContext(r.camera_id, r.at, self._regions[(r.camera_id, hazard)], ref))
                crops.append(self._crops(r.camera_id, hazard, zoom))
                for part, crop in crops[-1]:
                    frames.append(crop.cut(r.frame, detector.manifest.input.size))  # type: ignore[attr-defined]
                    part_ref = self.references.reference(part, hazard, r.mode, key, r.view, first)
                    contexts.append(LookContext(part, r.at, RegionFilter(), part_ref))
            started = time.perf_counter()
            results = iter(detector.detect(frames, contexts))
            if self.on_inference is not None:
                self.on_inference(detector.name, time.perf_counter() - started)
            for k, look_crops, phase in zip(idx, crops, phases, strict=True):
                full = next(results)
                parts = tuple(_PartLook(part, crop, next(results)) for part, crop in look_crops)
                result = full
                if parts and zoom is not None:
                    region = self._regions[(requests[k].camera_id, hazard)]
                    result = merge(full, [(p.crop, p.result) for p in parts], zoom.threshold, region)
                judged.append(_Judged(k, hazard, detector, key, result, parts, spec, phase))
        return judged

    def _phase(self, key: str, ref: ReferenceInput | None) -> NormalPhase | None:
        """Where the camera's own reference stands for this look (shown to the duty officer: a camera still
        learning finds fewer small plumes)."""
        if not key:
            return None
        if ref is None:
            return "learning"
        return "ready" if ref.looks >= self.references.policy.min_looks else "warming"

    def _crops(self, camera_id: str, hazard: Hazard, zoom: ZoomSpec | None) -> list[tuple[str, Crop]]:
        """The zoom crops of this camera's looks for this model (none unless both ask for them)."""
        band = self._bands.get((camera_id, hazard))
        if band is None or zoom is None:
            return []
        return [(part_id(camera_id, n), c) for n, c in enumerate(band_crops(band, zoom.crops, zoom.width))]

    def _learn(self, req: LookRequest, j: _Judged, out: LookOutcome) -> None:
        """Keep the embeddings of an alerting look; fold a quiet look into the camera's references (the
        whole view's and each zoom crop's: a look is quiet only when every part of it is)."""
        hazard, key, result, parts, spec = j.hazard, j.key, j.result, j.parts, j.spec
        assert result.embedding is not None and spec is not None
        for event in out.events:
            if event.hazard == hazard and event.state != AlertState.END:
                self._alert_looks[event.alert_id] = _AlertLook(
                    req.camera_id,
                    hazard,
                    req.mode,
                    req.view,
                    key,
                    result.embedding.copy(),
                    event.boxes,
                    tuple((sc.dim, sc.grid) for sc in spec.scales),
                    tuple(p.kept() for p in parts),
                )
                self._alert_looks.move_to_end(event.alert_id)
                while len(self._alert_looks) > MAX_ALERT_LOOKS:
                    self._alert_looks.popitem(last=False)
        threshold = self._quiet_bar(j.detector, result, spec)
        busy = any(
            t.lifecycle.ongoing or t.burst_looks
            for (cam, h, _), t in self._tracks.items()
            if cam == req.camera_id and h == hazard
        )
        quiet = not result.detections and result.score < self.learn_below * threshold
        if parts and spec.zoom is not None:
            quiet = quiet and all(quiet_part(p.result, spec.zoom.threshold, self.learn_below) for p in parts)
        if req.healthy and quiet and not busy:
            self.references.learn(req.camera_id, hazard, req.mode, key, req.view, result.embedding, req.at)
            for p in parts:
                if p.result.embedding is not None:
                    self.references.learn(p.key, hazard, req.mode, key, req.view, p.result.embedding, req.at)
        elif not quiet or busy:  # something stirs: the quiet looks still waiting may hold its beginning
            self.references.unsettle(req.camera_id, hazard)
            for p in parts:
                self.references.unsettle(p.key, hazard)

    def _quiet_bar(self, detector: Detector, result: ImageResult, spec: ReferenceSpec) -> float:
        """The threshold a look's score must stay well under (`learn_below`) to be learnt as normal.

        Against a reference still warming up, a look is decided at that step's stricter threshold; learnt
        under that bar too, the first minutes of a fire that starts while a camera learns became its normal
        (5 fires of the validation cameras starting after 6 quiet looks: 18 fire looks learnt, 2 fires
        alerted; docs/models.md). So the bar sits `warming_learn_share` of the way from the ready
        reference's threshold up to the step's."""
        if result.threshold is None:  # the cold path
            return detector.threshold
        if result.threshold <= spec.threshold:  # a ready reference
            return result.threshold
        return spec.threshold + self.references.policy.warming_learn_share * (result.threshold - spec.threshold)

    def absorb_false_alarm(self, alert_id: str, at: float, box: Detection | None = None) -> bool:
        """An operator marked this alert a false alarm: teach its camera that what it saw there is normal.

        The cells of `box` (default: the alert's own regions) of the alert's latest embedding widen the
        camera's reference. False when this edge no longer holds that alert's look (restarted, or more
        than MAX_ALERT_LOOKS alerts since)."""
        look = self._alert_looks.get(alert_id)
        if look is None:
            return False
        boxes = (box,) if box is not None else look.boxes
        taught = False
        cells = embedding_mask(boxes, look.scales)
        if cells.any():
            self.references.absorb(
                look.camera_id, look.hazard, look.mode, look.model_key, look.view, look.embedding, cells, at
            )
            taught = True
        for part in look.parts:  # each zoom crop the region falls in learns it too, in the crop's coordinates
            inside = [d for d in (part.crop.from_frame(b) for b in boxes) if d is not None]
            part_cells = embedding_mask(inside, look.scales)
            if part.result.embedding is not None and part_cells.any():
                self.references.absorb(
                    part.key, look.hazard, look.mode, look.model_key, look.view, part.result.embedding, part_cells, at
                )
                taught = True
        return taught

    def _apply(
        self, req: LookRequest, hazard: Hazard, detector: Detector, result: ImageResult, out: LookOutcome
    ) -> None:
        out.scores[hazard] = result.score
        out.regions[hazard] = list(result.detections)
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
        """End alerts whose camera has not confirmed them for their clear period (even unseen), and learn
        the quiet looks whose cameras stayed quiet long enough after them."""
        self.references.settle(now)
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
