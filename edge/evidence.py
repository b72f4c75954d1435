"""Alert evidence on the edge: a bounded ring buffer of looked-at frames per camera, clips and
full-resolution snapshots saved on alert start and end, an on-disk index that survives restarts,
resumable upload to central, and a byte-bounded retention policy.

Why these choices (docs/retraining.md):
- the buffer holds the frames the patrol already decoded (no extra decoding), downscaled, bounded by
  a frame count and a byte budget per camera, so memory stays flat however many cameras a box has;
- a clip is MP4 when PyAV has an encoder (h264/libx264, then mpeg4) and an uncompressed tar of JPEGs
  otherwise: both are one file, so upload and retention treat them alike;
- the edge pushes evidence to central (PUT with Content-Range, HEAD tells how much central already
  has): an edge behind NAT cannot be fetched from, and a cut connection resumes where it stopped;
- retention never deletes what central does not have yet. Once central has a file it is only a cache
  here; central keeps evidence of every incident (it deletes nothing), so an open or labelled
  incident keeps its evidence until it is exported and beyond.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import sqlite3
import tarfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.edge.central_client import CentralClient
from hazardwatch.edge.config import EdgeConfig, EvidenceConfig
from hazardwatch.edge.predictor import AlertEvent

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    captured_at REAL NOT NULL,
    created_at REAL NOT NULL,
    uploaded_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS evidence_pending ON evidence(uploaded_at, created_at);
"""
MP4_CODECS = ("h264", "libx264", "mpeg4")


@dataclass
class _Buffered:
    at: float
    frame: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.frame.nbytes)


class FrameRing:
    """Recent frames of one camera, bounded by count and bytes (oldest dropped first)."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: deque[_Buffered] = deque()
        self.nbytes = 0

    def add(self, at: float, frame: np.ndarray) -> None:
        item = _Buffered(at, frame)
        self._items.append(item)
        self.nbytes += item.nbytes
        while self._items and (len(self._items) > self.max_frames or self.nbytes > self.max_bytes):
            self.nbytes -= self._items.popleft().nbytes

    def frames(self) -> list[tuple[float, np.ndarray]]:
        return [(b.at, b.frame) for b in self._items]

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _PendingClip:
    alert_id: str
    camera_id: str
    hazard: str
    state: str
    at: float
    before: list[tuple[float, np.ndarray]]
    after: list[tuple[float, np.ndarray]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def pick_codec() -> str | None:
    """The first MP4 video encoder this PyAV build has, or None (then clips are JPEG tars)."""
    try:
        import av
    except ImportError:
        return None
    available = av.codecs_available
    for name in MP4_CODECS:
        if name in available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:  # listed but unusable (no encoder in this build)
                continue
    return None


def encode_mp4(frames: list[np.ndarray], path: Path, fps: float, codec: str) -> None:
    """Write BGR frames (resized to the first frame's even size) to an MP4 file."""
    from fractions import Fraction

    import av

    h, w = frames[0].shape[:2]
    w, h = w - w % 2, h - h % 2
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in frames:
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encode_jpeg_tar(frames: list[tuple[float, np.ndarray]], path: Path, quality: int = 85) -> None:
    """The fallback clip: one uncompressed tar of `frame-NNN-<ms>.jpg` files (JPEG is the compression)."""
    with tarfile.open(path, "w") as tar:
        for k, (at, img) in enumerate(frames):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                continue
            info = tarfile.TarInfo(f"frame-{k:03d}-{int(at * 1000)}.jpg")
            info.size = len(buf)
            info.mtime = int(at)
            tar.addfile(info, io.BytesIO(buf.tobytes()))


def _downscale(frame: np.ndarray, max_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return frame
    return cv2.resize(frame, (max(2, int(w * scale)), max(2, int(h * scale))), interpolation=cv2.INTER_AREA)


class EvidenceStore:
    """Evidence of one edge. `observe`/`on_alert`/`tick` are called on the engine's loop thread;
    encoding runs on one worker thread and uploading on another, so neither delays the patrol."""

    def __init__(self, cfg: EdgeConfig, uploader: EvidenceUploader | None = None) -> None:
        self.ecfg: EvidenceConfig = cfg.evidence
        self.edge_id = cfg.edge_id
        self.dir = self.ecfg.path or (cfg.outbox.path.parent / "evidence")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.dir / "index.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._rings: dict[str, FrameRing] = {}
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
        with self._lock:
            self._db.close()

    # -- loop thread ------------------------------------------------------------------------------
    def observe(self, camera_id: str, frame: np.ndarray, at: float) -> None:
        """A frame the patrol looked at: buffer it and feed clips waiting for frames after an alert."""
        if not self.ecfg.enabled:
            return
        small = _downscale(frame, self.ecfg.buffer_max_side)
        ring = self._rings.get(camera_id)
        if ring is None:
            ring = self._rings[camera_id] = FrameRing(self.ecfg.buffer_frames, self.ecfg.buffer_bytes)
        ring.add(at, small)
        for clip in self._pending:
            if clip.camera_id == camera_id and at > clip.at:
                clip.after.append((at, small))
        self.tick(at)

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
            "boxes": [[b.x1, b.y1, b.x2, b.y2, round(b.score, 4)] for b in event.boxes],
        }
        ring = self._rings.get(camera_id)
        before = ring.frames() if ring else []
        clip = _PendingClip(alert_id, camera_id, hazard, state, at, before, meta=meta)
        if frame is not None:
            full = frame.copy()
            self._pool.submit(self._save_snapshot, clip, full)
        if self.ecfg.frames_after == 0:
            self._pool.submit(self._save_clip, clip)
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
            self._pool.submit(self._save_clip, clip)

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
                encode_mp4([f for _, f in frames], tmp, self.ecfg.clip_fps, self.codec)
                ctype, ext = "video/mp4", ".mp4"
            else:
                raise RuntimeError("no MP4 encoder")
        except Exception as exc:
            if self.codec:
                log.warning("MP4 encoding failed (%s); saving a JPEG sequence", exc)
            encode_jpeg_tar(frames, tmp)
            ctype, ext = "application/x-tar", ".tar"
        data = tmp.read_bytes()
        tmp.unlink(missing_ok=True)
        meta = {
            "frames": len(frames),
            "before": len(clip.before),
            "after": len(clip.after),
            "first_at": frames[0][0],
            "last_at": frames[-1][0],
            "codec": self.codec or "jpeg",
        }
        self._store(clip, ident, "clip", data, ctype, ext, meta)

    def _store(self, clip: _PendingClip, ident: str, kind: str, data: bytes, ctype: str, ext: str, meta: dict) -> None:
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
        tmp.write_bytes(data)
        tmp.replace(path)
        with self._lock:
            self._db.execute(
                "INSERT INTO evidence(id, alert_id, camera_id, hazard, state, kind, path, content_type, size, sha256, "
                "captured_at, created_at, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                    time.time(),
                    json.dumps({**clip.meta, **meta}),
                ),
            )
        log.info("evidence %s saved (%s, %d bytes)", ident, ctype, len(data))
        if self.uploader:
            self.uploader.wake()

    # -- retention ----------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM evidence").fetchone()[0])

    def _make_room(self, incoming: int) -> bool:
        """Delete uploaded evidence, oldest first, until `incoming` fits; never delete unsent evidence."""
        budget = self.ecfg.max_bytes
        used = self.used_bytes()
        if used + incoming <= budget:
            return True
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, size FROM evidence WHERE uploaded_at IS NOT NULL ORDER BY created_at"
            ).fetchall()
        for ident, name, size in rows:
            if used + incoming <= budget:
                break
            (self.dir / name).unlink(missing_ok=True)
            with self._lock:
                self._db.execute("DELETE FROM evidence WHERE id = ?", (ident,))
            used -= size
            log.info("retention: deleted uploaded evidence %s (%d bytes)", ident, size)
        return used + incoming <= budget

    # -- index for the uploader and tests -----------------------------------------------------------
    def items(self, *, unsent_only: bool = False) -> list[dict]:
        sql = (
            "SELECT id, alert_id, camera_id, hazard, state, kind, path, content_type, size, sha256, captured_at, "
            "uploaded_at, meta FROM evidence"
        )
        if unsent_only:
            sql += " WHERE uploaded_at IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at").fetchall()
        keys = (
            "id",
            "alert_id",
            "camera_id",
            "hazard",
            "state",
            "kind",
            "path",
            "content_type",
            "size",
            "sha256",
            "captured_at",
            "uploaded_at",
            "meta",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def mark_uploaded(self, ident: str) -> None:
        with self._lock:
            self._db.execute("UPDATE evidence SET uploaded_at = ? WHERE id = ?", (time.time(), ident))

    def note_attempt(self, ident: str) -> None:
        with self._lock:
            self._db.execute("UPDATE evidence SET attempts = attempts + 1 WHERE id = ?", (ident,))


class EvidenceUploader:
    """Sends unsent evidence to central in chunks; asks central how much it has before resuming."""

    def __init__(self, client: CentralClient, edge_id: str, chunk_bytes: int) -> None:
        self.client = client
        self.edge_id = edge_id
        self.chunk = chunk_bytes
        self.store: EvidenceStore | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evidence-upload", daemon=True)
        self.uploaded = 0

    def attach(self, store: EvidenceStore) -> None:
        self.store = store
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            assert self.store is not None
            ok = True
            for item in self.store.items(unsent_only=True):
                if self._stop.is_set():
                    return
                try:
                    self.upload(item)
                    delay = 1.0
                except Exception as exc:
                    ok = False
                    self.store.note_attempt(item["id"])
                    log.warning("evidence %s upload failed (%s); retrying in %.0f s", item["id"], exc, delay)
                    break
            self._wake.wait(delay if not ok else 30.0)
            self._wake.clear()
            if not ok:
                delay = min(delay * 2, 60.0)

    def upload(self, item: dict) -> None:
        """HEAD for central's offset, then PUT the rest in chunks with Content-Range."""
        assert self.store is not None
        path = f"/api/v1/edges/{self.edge_id}/evidence/{item['id']}"
        status, headers, _ = self.client.request("HEAD", path)
        offset = 0
        if status == 200:
            offset = int({k.lower(): v for k, v in headers.items()}.get("upload-offset", "0"))
        elif status != 404:
            raise OSError(f"HEAD answered {status}")
        keys = ("alert_id", "camera_id", "hazard", "state", "kind", "content_type", "sha256", "captured_at")
        meta = {k: item[k] for k in keys}
        meta["meta"] = json.loads(item["meta"])
        data = (self.store.dir / item["path"]).read_bytes()
        total = len(data)
        while offset < total or total == 0:
            end = min(total, offset + self.chunk)
            body = data[offset:end]
            status, _, raw = self.client.request(
                "PUT",
                path,
                body,
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"bytes {offset}-{end - 1}/{total}",
                    "X-Evidence-Meta": json.dumps(meta, separators=(",", ":")),
                },
            )
            if status == 409:  # central has a different offset: ask again
                status, headers, _ = self.client.request("HEAD", path)
                offset = int({k.lower(): v for k, v in headers.items()}.get("upload-offset", "0"))
                continue
            if status not in (200, 201):
                raise OSError(f"PUT answered {status}: {raw[:200]!r}")
            doc = json.loads(raw)
            offset = int(doc["received"])
            if doc.get("complete"):
                break
        self.store.mark_uploaded(item["id"])
        self.uploaded += 1
