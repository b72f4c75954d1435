"""`models eval HAZARD --cameras ROOT`: measure a model camera by camera, as an edge would run it.

Why per camera: every camera a bureau connects is one the model never saw, and a model that learns
each camera's normal (manifest `reference`) can only be judged after it has watched that camera for
a while. `ROOT/<camera>/reference/` holds quiet frames, read in name order as the edge would see
them over time; `positives/` and `negatives/` hold frames with and without the hazard.

For each camera, the edge's own `Predictor` (same reference bank, same quiet-look rule) watches
`reference/`; then every positive and negative is scored against the reference it learnt (per frame),
and again without one (the cold-start path, `cold`). Finally the predictor watches `negatives/` and
then `positives/` as patrol looks (`events`): alerts raised on quiet looks are false alerts, and the
looks it takes to alert on the hazard are what a duty officer waits. Each positive is also looked at
for one vote window on its own (`events.positives_alerted`): a hazard that stays in view that long is
alerted on or missed at the event level, whatever the other frames of its camera show.

When every frame of a camera's `negatives/` and `positives/` is named with the time it was taken
(`YYYYMMDD-HHMMSS...`, also `T`, `.` or `_` between; any one clock, only differences count), the event
replay is that camera's own timeline instead: its frames in time order, each looked at every patrol
interval until the next frame (at most `MAX_LOOKS_PER_FRAME` looks), so a fire's first faint minutes come
before its big plume as they did, and the figure a duty officer cares about is measured: minutes from a
fire's first frame to its alert (`events.fires`; a fire is a run of positives less than `FIRE_GAP_S`
apart). With `zoom`, every camera looks at its horizon band closer as an edge camera configured so would
(its crops learn references of their own, edge/detect/zoom.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hazardwatch.contract import AlertState, Hazard
from hazardwatch.edge.camera_config import ZoomConfig
from hazardwatch.edge.config import CameraConfig, ConfirmConfig
from hazardwatch.edge.detect import Detector, ImageResult, LookContext, ReferenceInput
from hazardwatch.edge.predictor import LookRequest, Predictor, model_key
from hazardwatch.edge.reference import ReferenceBank, ReferencePolicy
from hazardwatch.models.data import list_images, read_bgr
from hazardwatch.models.evaluate import confusion

PATROL_INTERVAL_S = 30.0  # the spacing of replayed patrol looks (the edge's default smoke interval)
FIRE_GAP_S = 1800.0  # positives of one camera further apart than this are separate fires
# A frame stands for at most this many patrol looks: when the next frame is later, what the camera saw in
# between is unknown, and looking at one frame longer would let its score vote more often than it did.
MAX_LOOKS_PER_FRAME = 4
_TIME_NAME = re.compile(r"^(\d{8})[T._-]?(\d{6})")


class LayoutError(ValueError):
    """A camera folder that cannot be evaluated; the text names the folder and why."""


@dataclass(frozen=True)
class CameraFolder:
    camera_id: str
    reference: list[Path]
    positives: list[Path]
    negatives: list[Path]


def read_layout(root: Path) -> list[CameraFolder]:
    """Every `ROOT/<camera>/` with reference/, positives/ and negatives/ (each may be empty but one must exist)."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder")
    cameras = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", folder.name):
            raise LayoutError(f"{folder}: a camera folder is named like a camera id (letters, digits, _ . -)")
        parts = {name: folder / name for name in ("reference", "positives", "negatives")}
        if not any(p.is_dir() for p in parts.values()):
            raise LayoutError(f"{folder}: expected reference/, positives/ and negatives/ inside")
        found = {name: list_images([p]) if p.is_dir() else [] for name, p in parts.items()}
        cameras.append(CameraFolder(folder.name, found["reference"], found["positives"], found["negatives"]))
    if not cameras:
        raise LayoutError(f"{root}: no camera folders (ROOT/<camera>/reference|positives|negatives)")
    if not any(c.positives or c.negatives for c in cameras):
        raise LayoutError(f"{root}: no images under any camera's positives/ or negatives/")
    return cameras


class _Watcher:
    """One camera's predictor with a clock of its own, so replayed looks are spaced as on an edge."""

    def __init__(
        self,
        detector: Detector,
        hazard: Hazard,
        camera_id: str,
        folder: Path,
        policy: ReferencePolicy,
        zoom: ZoomConfig | None = None,
    ) -> None:
        self.detector = detector
        self.hazard = hazard
        self.camera_id = camera_id
        self.bank = ReferenceBank(policy)
        settings = {"zoom": zoom.model_dump()} if zoom is not None else {}
        camera = CameraConfig.model_validate({"id": camera_id, "source": str(folder), "hazards": {hazard: settings}})
        confirm = {(camera_id, hazard): ConfirmConfig()}
        # A frame judged and then kept in view for a vote window (`alerts_when_it_stays`) is scored once.
        self.scored = _ScoredOnce(detector)
        self.predictor = Predictor([camera], {hazard: self.scored}, confirm, self.bank)
        unzoomed = camera.hazards[hazard].model_copy(update={"zoom": None})
        plain = camera.model_copy(update={"hazards": {hazard: unzoomed}})
        # the cold-start path: no reference, so no zoom either (a crop counts only against its own reference)
        self.cold = Predictor([plain], {hazard: detector}, confirm, ReferenceBank(policy), learn=False)
        # with zoom, the same references judged by the whole view alone: what the crops add
        self.view_only = Predictor([plain], {hazard: detector}, confirm, self.bank) if zoom is not None else None
        self.at = 1_000_000.0
        self.key = model_key(detector)

    def look(self, path: Path, step_s: float) -> list[AlertState]:
        self.at += step_s
        out = self.predictor.process([LookRequest(self.camera_id, read_bgr(path), self.at, frozenset({self.hazard}))])
        return [e.state for e in out[0].events]

    def alerts_when_it_stays(self, frame: np.ndarray) -> bool:
        """Look at one frame for a whole vote window with a fresh vote (the camera's reference as
        learnt, nothing more learnt): does the hazard in it raise an alert? The frame as just judged
        is not scored again."""
        cfg = ConfirmConfig()
        predictor = Predictor(
            list(self.predictor.cameras.values()),
            {self.hazard: self.scored},
            {(self.camera_id, self.hazard): cfg},
            self.bank,
            learn_below=0.0,  # score < 0: no look is learnt
        )
        at = self.at
        for _ in range(cfg.window):
            at += PATROL_INTERVAL_S
            out = predictor.process([LookRequest(self.camera_id, frame, at, frozenset({self.hazard}))])
            if any(e.state == AlertState.NEW for e in out[0].events):
                return True
        return False

    def idle(self, seconds: float) -> None:
        self.at += seconds
        self.predictor.expire(self.at)

    def look_at(self, path: Path, at: float) -> list[AlertState]:
        """A look at the frame's own time (a timeline replay); time passing since the last look ends
        alerts and learns waiting looks as it would on the edge."""
        if at > self.at:
            self.predictor.expire(at)
        self.at = at
        return self.look(path, 0.0)

    def reference(self) -> ReferenceInput | None:
        spec = getattr(self.detector, "reference", None)
        first = spec.first_looks if spec is not None else None
        return self.bank.reference(self.camera_id, self.hazard, "day", self.key, 0, first)


class _ScoredOnce:
    """A detector that scores a frame once however often it is shown (a replayed look costs nothing; a look
    is the same when its first frame is: its zoom crops are cut from that frame)."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self._frames: Sequence[np.ndarray] = ()
        self._results: list[ImageResult] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        if len(frames) != len(self._frames) or not frames or frames[0] is not self._frames[0]:
            self._frames, self._results = list(frames), self._detector.detect(frames, contexts)
        return self._results


def _score(
    predictor: Predictor,
    paths: Sequence[Path],
    camera_id: str,
    hazard: Hazard,
    then: Callable[[np.ndarray], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, list[bool]]:
    """Each frame judged by the predictor against the references as they stand (nothing learnt), and
    `then` asked of each frame right after (its answers last)."""
    decisions: list[bool] = []
    scores: list[float] = []
    answers: list[bool] = []
    spent = 0.0
    for path in paths:
        frame = read_bgr(path)
        t0 = time.perf_counter()
        (judged,) = predictor.judge([LookRequest(camera_id, frame, 0.0, frozenset({hazard}))])
        spent += time.perf_counter() - t0
        decisions.append(bool(judged[hazard].detections))
        scores.append(judged[hazard].score)
        if then is not None:
            answers.append(then(frame))
    return np.array(decisions, bool), np.array(scores, float), spent, answers


def frame_time(path: Path) -> float | None:
    """When a frame was taken, from a leading `YYYYMMDD-HHMMSS` in its name (seconds, the name's clock read
    as UTC); None when the name carries no valid time."""
    m = _TIME_NAME.match(path.name)
    if m is None:
        return None
    try:
        taken = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return taken.timestamp()


@dataclass
class _Fire:
    """One run of a camera's positives, and when the replay alerted on it."""

    frames: list[tuple[float, Path]]
    looks: int = 0
    alerted_at: float | None = None
    looks_to_alert: int | None = None
    # When a look during the fire first carried an alert of the camera, its own or one already open (raised
    # on something else before the fire: the fire's regions then reach the duty officer in that alert).
    shown_at: float | None = None

    @property
    def start(self) -> float:
        return self.frames[0][0]

    @property
    def end(self) -> float:
        return self.frames[-1][0]

    def report(self) -> dict[str, Any]:
        first = self.frames[0][1].name
        return {
            "first_frame": first,
            "start": datetime.fromtimestamp(self.start, UTC).strftime("%Y-%m-%dT%H:%M:%S"),  # as named
            "frames": len(self.frames),
            "minutes": round((self.end - self.start) / 60.0, 1),
            "alerted": self.alerted_at is not None,
            "looks_to_alert": self.looks_to_alert,
            "minutes_to_alert": _minutes(self.alerted_at, self.start),
            "minutes_to_an_open_alert": _minutes(self.shown_at, self.start),
        }


def _minutes(at: float | None, start: float) -> float | None:
    return None if at is None else round((at - start) / 60.0, 1)


def _timeline(cam: CameraFolder) -> tuple[list[tuple[float, Path, bool]], list[_Fire]] | None:
    """The camera's frames in time order (time, path, positive) and its fires; None unless every
    negative and positive is named with its time."""
    frames = []
    for paths, positive in ((cam.negatives, False), (cam.positives, True)):
        for path in paths:
            at = frame_time(path)
            if at is None:
                return None
            frames.append((at, path, positive))
    frames.sort(key=lambda f: (f[0], f[1].name))
    fires: list[_Fire] = []
    for at, path, positive in frames:
        if not positive:
            continue
        if fires and at - fires[-1].end < FIRE_GAP_S:
            fires[-1].frames.append((at, path))
        else:
            fires.append(_Fire([(at, path)]))
    return frames, fires


def _replay_timeline(
    watcher: _Watcher, frames: Sequence[tuple[float, Path, bool]], fires: Sequence[_Fire]
) -> tuple[int, int, int]:
    """Look at each frame every patrol interval until the next one; alerts during a fire (from its first
    frame to `end_after_s` past its last) are that fire's, the rest false. Returns (quiet looks, false alerts,
    quiet looks that carried an alert: how long the false ones stayed open)."""
    grace = ConfirmConfig().end_after_s
    quiet_looks = false_alerts = alerting = 0
    for k, (at, path, positive) in enumerate(frames):
        following = frames[k + 1][0] if k + 1 < len(frames) else at + PATROL_INTERVAL_S
        looks = int(min(MAX_LOOKS_PER_FRAME, max(1, np.ceil((following - at) / PATROL_INTERVAL_S))))
        for j in range(looks):
            now = at + j * PATROL_INTERVAL_S
            states = watcher.look_at(path, now)
            raised = states.count(AlertState.NEW)
            carried = raised > 0 or AlertState.UPDATE in states  # this look reached central in an alert
            fire = next((f for f in fires if f.start <= now <= f.end + grace), None)
            if fire is None:
                quiet_looks += 0 if positive else 1
                false_alerts += raised
                alerting += carried and not positive
                continue
            fire.looks += 1
            if raised and fire.alerted_at is None:
                fire.alerted_at, fire.looks_to_alert = now, fire.looks
            if carried and fire.shown_at is None:
                fire.shown_at = now
    return quiet_looks, false_alerts, alerting


def evaluate_cameras(
    detector: Detector,
    hazard: Hazard,
    root: Path,
    policy: ReferencePolicy | None = None,
    zoom: ZoomConfig | None = None,
) -> dict[str, Any]:
    """The `models eval --cameras --json` object (folder-mode keys, `cold`, `events`, `per_camera`);
    `zoom`: every camera looks at this horizon band closer (a model whose manifest has `reference.zoom`)."""
    policy = policy or ReferencePolicy()
    step_ref = max(policy.min_interval_s, 1.0)
    learns = getattr(detector, "reference", None) is not None
    all_pos: list[np.ndarray] = []
    all_neg: list[np.ndarray] = []
    cold_pos: list[np.ndarray] = []
    cold_neg: list[np.ndarray] = []
    view_pos: list[np.ndarray] = []
    view_neg: list[np.ndarray] = []
    pos_scores: list[np.ndarray] = []
    neg_scores: list[np.ndarray] = []
    spent, n_frames = 0.0, 0
    per_camera: dict[str, dict[str, Any]] = {}
    quiet_looks = false_alerts = plumes = plumes_alerted = quiet_alerting = 0
    looks_to_alert: list[int] = []
    fires: list[dict[str, Any]] = []
    for cam in read_layout(root):
        watcher = _Watcher(detector, hazard, cam.camera_id, root / cam.camera_id, policy, zoom)
        for path in cam.reference:
            watcher.look(path, step_ref)
        watcher.idle(policy.settle_s)  # the camera stays quiet a while: its last quiet looks are learnt too
        reference = watcher.reference() if learns else None
        # Each positive also kept in view for a vote window, against the same reference.
        dp, sp, tp_, stayed = _score(
            watcher.predictor, cam.positives, cam.camera_id, hazard, watcher.alerts_when_it_stays
        )
        plumes += len(stayed)
        plumes_alerted += sum(stayed)
        dn, sn, tn_, _ = _score(watcher.predictor, cam.negatives, cam.camera_id, hazard)
        cp = _score(watcher.cold, cam.positives, cam.camera_id, hazard)[0]
        cn = _score(watcher.cold, cam.negatives, cam.camera_id, hazard)[0]
        if watcher.view_only is not None:
            view_pos.append(_score(watcher.view_only, cam.positives, cam.camera_id, hazard)[0])
            view_neg.append(_score(watcher.view_only, cam.negatives, cam.camera_id, hazard)[0])
        spent += tp_ + tn_
        n_frames += len(cam.positives) + len(cam.negatives)
        all_pos.append(dp)
        all_neg.append(dn)
        cold_pos.append(cp)
        cold_neg.append(cn)
        pos_scores.append(sp)
        neg_scores.append(sn)
        # Event level: the same camera keeps watching, along its own timeline when its frames carry their
        # times, else first the quiet looks, then the hazard.
        timeline = _timeline(cam)
        cam_fires: list[_Fire] = []
        if timeline is not None:
            frames, cam_fires = timeline
            watcher.idle(3600.0)
            cam_quiet, alerts_quiet, alerting = _replay_timeline(watcher, frames, cam_fires)
            quiet_alerting += alerting
            first = cam_fires[0].looks_to_alert if cam_fires else None
            fires += [{"camera": cam.camera_id, **f.report()} for f in cam_fires]
        else:
            cam_quiet = len(cam.negatives)
            alerts_quiet = sum(watcher.look(p, PATROL_INTERVAL_S).count(AlertState.NEW) for p in cam.negatives)
            watcher.idle(3600.0)  # an hour without looks ends whatever the quiet looks raised
            first = next(
                (k + 1 for k, p in enumerate(cam.positives) if AlertState.NEW in watcher.look(p, PATROL_INTERVAL_S)),
                None,
            )
        quiet_looks += cam_quiet
        false_alerts += alerts_quiet
        if cam.positives:
            looks_to_alert.append(first if first is not None else -1)
        state = next(iter(watcher.bank.states(cam.camera_id, watcher.at)), None)
        per_camera[cam.camera_id] = {
            **confusion(dp, dn),
            "cold": confusion(cp, cn),
            "reference_looks": state.looks if state else 0,
            "reference_in_use": reference is not None,  # scored against its reference (ready or warming)
            "reference_looks_scored_with": reference.looks if reference is not None else 0,
            "false_alerts": alerts_quiet,
            "looks_to_alert": first,
            "alerted_when_it_stays": sum(stayed),
            "timeline": timeline is not None,
            "fires": len(cam_fires),
            "fires_alerted": sum(f.alerted_at is not None for f in cam_fires),
        }
    out: dict[str, Any] = dict(confusion(np.concatenate(all_pos), np.concatenate(all_neg)))
    with_ref = any(v["reference_in_use"] for v in per_camera.values())
    spec = getattr(detector, "reference", None)  # only reference models have one
    out["threshold"] = float(spec.threshold if with_ref and spec is not None else detector.threshold)
    out["ms_per_image"] = round(1000.0 * spent / max(1, n_frames), 2)
    out["model"] = f"{detector.name} {detector.version}"
    out["cold"] = {**confusion(np.concatenate(cold_pos), np.concatenate(cold_neg)), "threshold": detector.threshold}
    if zoom is not None:  # the same references, the whole view alone
        out["without_zoom"] = confusion(np.concatenate(view_pos), np.concatenate(view_neg))
    caught = [n for n in looks_to_alert if n > 0]
    out["events"] = {
        "quiet_looks": quiet_looks,
        "false_alerts": false_alerts,
        "false_alerts_per_1000_quiet_looks": round(1000.0 * false_alerts / max(1, quiet_looks), 2),
        "cameras_with_hazard": len(looks_to_alert),
        "cameras_alerted": len(caught),
        "median_looks_to_alert": float(np.median(caught)) if caught else None,
        "positives_looked_at_for_a_window": plumes,
        "positives_alerted": plumes_alerted,
        "positive_event_recall": round(plumes_alerted / plumes, 4) if plumes else None,
        "fires": fires,
        "fires_alerted": sum(f["alerted"] for f in fires),
        "fires_in_an_open_alert": sum(f["minutes_to_an_open_alert"] is not None for f in fires),
        "quiet_looks_in_a_false_alert": quiet_alerting,
        "median_minutes_to_alert": _median([f["minutes_to_alert"] for f in fires if f["alerted"]]),
    }
    out["per_camera"] = per_camera
    out["_scores"] = (np.concatenate(pos_scores), np.concatenate(neg_scores))
    return out


def _median(values: Sequence[float]) -> float | None:
    return round(float(np.median(values)), 1) if values else None
