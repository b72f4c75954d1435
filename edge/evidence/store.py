"""Snapshots and clips of alerts, saved on a worker thread, with byte-bounded retention.

`observe`, `on_alert` and `tick` are called on the engine's loop; encoding runs on one worker
thread and uploading (uploader.py) on another, so neither delays the patrol. Retention deletes only
files central already has.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from hazardwatch.edge.config import EdgeConfig, EvidenceConfig
from hazardwatch.edge.evidence.encode import encode_jpeg_tar, encode_mp4, pick_codec
from hazardwatch.edge.evidence.index import EvidenceIndex, EvidenceRow
from hazardwatch.edge.evidence.ring import FrameRing
from hazardwatch.edge.predictor import AlertEvent
from hazardwatch.edge.snapshot import downscale

if TYPE_CHECKING:
    from hazardwatch.edge.detect import Detection
    from hazardwatch.edge.evidence.uploader import EvidenceUploader

log = logging.getLogger(__name__)


def _row(b: Detection) -> list[float]:
    return [b.x1, b.y1, b.x2, b.y2, round(b.score, 4)]


@dataclass
class _PendingClip:
    alert_id: str
    camera_id: str
    hazard: str
    state: str
    at: float
    before: list[tuple[float, np.ndarray]]
    after: list[tuple[float, np.ndarray]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class EvidenceStore:
    """Evidence of one edge. `observe`/`on_alert`/`tick` are called on the engine's loop thread;
    encoding runs on one worker thread and uploading on another, so neither delays the patrol."""

    def __init__(self, cfg: EdgeConfig, uploader: EvidenceUploader | None = None) -> None:
        self.ecfg: EvidenceConfig = cfg.evidence
        self.edge_id = cfg.edge_id
        self.dir = self.ecfg.path or (cfg.outbox.path.parent / "evidence")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = EvidenceIndex(self.dir / "index.db")
        self._rings: dict[str, FrameRing] = {}
        self._regions: dict[str, deque[tuple[float, dict[str, list[list[float]]]]]] = {}
        self._regions_noted = False  # the engine reports each look's regions: clips close after them
        self._draw = random.Random()
        self._pending: list[_PendingClip] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evidence")
        self.codec = pick_codec()
        self.refused = 0
        self.uploader = uploader
        if uploader:
            uploader.attach(self)

    def close(self) -> None:
        self.flush(time.time() + 10**9)
        self._pool.shutdown(wait=True)
        if self.uploader:
            self.uploader.stop()
        self.index.close()

    # -- loop thread ------------------------------------------------------------------------------
    def observe(self, camera_id: str, frame: np.ndarray, at: float) -> None:
        """A frame the patrol looked at: buffer it and feed clips waiting for frames after an alert."""
        if not self.ecfg.enabled:
            return
        small = downscale(frame, self.ecfg.buffer_max_side)
        ring = self._rings.get(camera_id)
        if ring is None:
            ring = self._rings[camera_id] = FrameRing(self.ecfg.buffer_frames, self.ecfg.buffer_bytes)
        ring.add(at, small)
        for clip in self._pending:
            if clip.camera_id == camera_id and at > clip.at:
                clip.after.append((at, small))
        if not self._regions_noted:
            self.tick(at)

    def note_regions(self, camera_id: str, at: float, regions: Mapping[Any, Sequence[Detection]]) -> None:
        """The regions each model found in the look at `at`, known after inference: a clip records every
        frame's own boxes (meta `frame_boxes`), and one waiting for this look closes now."""
        if not self.ecfg.enabled:
            return
        self._regions_noted = True
        kept = self._regions.get(camera_id)
        if kept is None:
            kept = self._regions[camera_id] = deque(maxlen=self.ecfg.buffer_frames + self.ecfg.frames_after + 4)
        kept.append((at, {getattr(h, "value", h): [_row(b) for b in dets] for h, dets in regions.items()}))
        self.tick(at)

    def quiet_look(self, camera_id: str, frame: np.ndarray, at: float, scores: Mapping[Any, float]) -> bool:
        """A look that raised nothing: a `quiet_share` of them are kept as snapshots (state quiet) for
        central's labelling queue, the only way a miss reaches an operator. Named after the hazard that
        scored highest, the likeliest miss. True when this one was kept."""
        share = self.ecfg.quiet_share
        if not self.ecfg.enabled or share <= 0 or not scores or self._draw.random() >= share:
            return False
        hazard, top = max(scores.items(), key=lambda kv: kv[1])
        name = getattr(hazard, "value", hazard)
        meta = {"scores": {getattr(h, "value", h): round(float(s), 4) for h, s in scores.items()}, "top": round(top, 4)}
        clip = _PendingClip(f"quiet-{camera_id[:16]}-{int(at * 1000)}", camera_id, name, "quiet", at, [], meta=meta)
        self._submit("snapshot", clip, self._save_snapshot, frame.copy())
        return True

    def _frame_boxes(self, clip: _PendingClip) -> list[list[list[float]] | None]:
        """Per clip frame, the boxes of the clip's hazard in that look (None: not known)."""
        seen = dict(self._regions.get(clip.camera_id, ()))
        return [seen[at].get(clip.hazard, []) if at in seen else None for at, _ in clip.before + clip.after]

    def recent(self, n: int) -> list[tuple[str, np.ndarray, float]]:
        """The newest frames across cameras (for a new model's health check)."""
        items = [(cam, f, at) for cam, ring in self._rings.items() for at, f in ring.frames()]
        return sorted(items, key=lambda t: t[2])[-n:]

    def on_alert(self, event: AlertEvent, camera_id: str, edge_id: str) -> None:
        """An alert started or ended: snapshot now, clip once `frames_after` more looks arrived."""
        if not self.ecfg.enabled:
            return
        alert_id, hazard, state, frame, at = (
            event.alert_id,
            event.hazard.value,
            event.state.value,
            event.frame,
            event.last_frame_at,
        )
        meta = {
            "score": round(event.score, 4),
            "model": f"{event.model_name}@{event.model_version}",
            "edge_id": edge_id,
            "boxes": [_row(b) for b in event.boxes],
        }
        ring = self._rings.get(camera_id)
        before = ring.frames() if ring else []
        clip = _PendingClip(alert_id, camera_id, hazard, state, at, before, meta=meta)
        if frame is not None:
            self._submit("snapshot", clip, self._save_snapshot, frame.copy())
        if self.ecfg.frames_after == 0:
            clip.meta["frame_boxes"] = self._frame_boxes(clip)
            self._submit("clip", clip, self._save_clip)
        else:
            self._pending.append(clip)

    def tick(self, now: float) -> None:
        """Close clips that have their frames after, or waited long enough."""
        self.flush(now)

    def flush(self, now: float) -> None:
        ready = [
            c for c in self._pending if len(c.after) >= self.ecfg.frames_after or now - c.at >= self.ecfg.finish_after_s
        ]
        for clip in ready:
            self._pending.remove(clip)
            clip.meta["frame_boxes"] = self._frame_boxes(clip)
            self._submit("clip", clip, self._save_clip)

    def _submit(self, kind: str, clip: _PendingClip, save: Callable[..., None], *args: Any) -> None:
        """Run `save` on the worker thread; a failure there (a full or vanished folder) is logged, not lost."""

        def report(future: Future[None]) -> None:
            if not future.cancelled() and (exc := future.exception()) is not None:
                log.error(
                    "evidence %s of alert %s (%s) not saved in %s: %s", kind, clip.alert_id, clip.state, self.dir, exc
                )

        self._pool.submit(save, clip, *args).add_done_callback(report)

    # -- worker thread ----------------------------------------------------------------------------
    def _new_id(self, clip: _PendingClip, kind: str) -> str:
        return f"{clip.alert_id[:24]}-{clip.state}-{kind}-{secrets.token_hex(4)}"

    def _save_snapshot(self, clip: _PendingClip, frame: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            log.error("evidence snapshot of %s could not be encoded", clip.alert_id)
            return
        ident = self._new_id(clip, "snapshot")
        self._store(
            clip,
            ident,
            "snapshot",
            buf.tobytes(),
            "image/jpeg",
            ".jpg",
            {"width": frame.shape[1], "height": frame.shape[0]},
        )

    def _save_clip(self, clip: _PendingClip) -> None:
        frames = clip.before + clip.after
        if not frames:
            return
        ident = self._new_id(clip, "clip")
        tmp = self.dir / f".{ident}.tmp"
        try:
            if self.codec:
                size = encode_mp4([f for _, f in frames], tmp, self.ecfg.clip_fps, self.codec)
                ctype, ext = "video/mp4", ".mp4"
            else:
                raise RuntimeError("no MP4 encoder")
        except Exception as exc:
            if self.codec:
                log.warning("MP4 encoding failed (%s); saving a JPEG sequence", exc)
            try:
                encode_jpeg_tar(frames, tmp)
                size = (frames[0][1].shape[1], frames[0][1].shape[0])
            except BaseException:
                tmp.unlink(missing_ok=True)  # a half file must not eat the space the next one needs
                raise
            ctype, ext = "application/x-tar", ".tar"
        try:
            data = tmp.read_bytes()
        finally:
            tmp.unlink(missing_ok=True)
        meta = {
            "frames": len(frames),
            "before": len(clip.before),
            "after": len(clip.after),
            "first_at": frames[0][0],
            "last_at": frames[-1][0],
            "codec": self.codec or "jpeg",
            # the camera's aspect, so the dashboard frames the clip like the snapshots before it loads
            "width": size[0],
            "height": size[1],
        }
        self._store(clip, ident, "clip", data, ctype, ext, meta)

    def _store(
        self, clip: _PendingClip, ident: str, kind: str, data: bytes, ctype: str, ext: str, meta: dict[str, Any]
    ) -> None:
        if not self._make_room(len(data)):
            self.refused += 1
            log.error(
                "evidence folder %s is full of evidence central does not have yet: %s of %s not saved",
                self.dir,
                kind,
                clip.alert_id,
            )
            return
        path = self.dir / f"{ident}{ext}"
        tmp = path.with_suffix(ext + ".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        row = EvidenceRow(
            ident,
            clip.alert_id,
            clip.camera_id,
            clip.hazard,
            clip.state,
            kind,
            path.name,
            ctype,
            len(data),
            hashlib.sha256(data).hexdigest(),
            clip.at,
            {**clip.meta, **meta},
        )
        self.index.add(row)
        log.info("evidence %s saved (%s, %d bytes)", ident, ctype, len(data))
        if self.uploader:
            self.uploader.wake()

    # -- retention ----------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        return self.index.used_bytes()

    def _make_room(self, incoming: int) -> bool:
        """Delete uploaded evidence, oldest first, until `incoming` fits; never delete unsent evidence."""
        budget = self.ecfg.max_bytes
        used = self.used_bytes()
        if used + incoming <= budget:
            return True
        for ident, name, size in self.index.uploaded_oldest_first():
            if used + incoming <= budget:
                break
            (self.dir / name).unlink(missing_ok=True)
            self.index.delete(ident)
            used -= size
            log.info("retention: deleted uploaded evidence %s (%d bytes)", ident, size)
        return used + incoming <= budget

    # -- index for the uploader and tests -----------------------------------------------------------
    def items(self, *, unsent_only: bool = False) -> list[dict[str, Any]]:
        return self.index.items(unsent_only=unsent_only)

    def mark_uploaded(self, ident: str) -> None:
        self.index.mark_uploaded(ident)

    def note_attempt(self, ident: str) -> None:
        self.index.note_attempt(ident)

    def forget(self, ident: str) -> None:
        """Drop an entry whose file is gone: nothing can send it, and it would hold back the rest."""
        self.index.delete(ident)
