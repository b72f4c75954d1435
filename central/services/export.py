"""Export labelled evidence as a training set in the layout `hazardwatch models train` reads.

Layout, one folder per hazard under OUT (see docs/retraining.md):
- smoke, fire: `<hazard>/<hazard>/*.jpg` positives with Pascal VOC boxes in `<hazard>/annotations_voc/`,
  `<hazard>/negatives/*.jpg` (false alarms); ambiguous frames go to `<hazard>-ambiguous/`, outside the
  folder, because the smoke trainer reads every other sub-folder as negatives;
- waterlogging: `flood/`, `no_flood/`, `ambiguous/` (the flood trainer's NC12 layout);
- fallen_tree: `fallen_tree/`, `negatives/` (no trainer reads it yet; kept for the record).
Each hazard folder has `frames.csv` (camera, edge, capture time, source, label, who, hash, group, and
the duplicate each dropped frame repeats) and `SOURCE.md` (provenance for the manifest).

Why: near-identical frames (a static camera, a clip's neighbouring frames) are dropped by a 64-bit
difference hash within one camera, so they neither inflate the set nor leak across a split; `group`
(edge/camera/day) lets a trainer keep one camera-day on one side of a split.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from hazardwatch.central.services import labels as label_service
from hazardwatch.central.store import Database, Tx

log = logging.getLogger(__name__)
DUP_BITS = 4
CSV_FIELDS = (
    "file",
    "class",
    "verdict",
    "hazard",
    "false_alarm_kind",
    "edge_id",
    "camera_id",
    "captured_at",
    "source",
    "incident_id",
    "label_id",
    "labelled_by",
    "labelled_at",
    "dhash",
    "duplicate_of",
    "group",
)


@dataclass
class Frame:
    image: bytes  # JPEG
    edge_id: str
    camera_id: str
    captured_at: float
    source: str
    boxes: list[list[float]] = field(default_factory=list)


@dataclass
class ExportSummary:
    out: Path
    labels: int = 0
    written: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "labels": self.labels,
            "written": self.written,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
        }


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash of a greyscale image: robust to compression and small light changes."""
    import cv2

    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << k for k, b in enumerate(bits) if b))


def _decode(jpeg: bytes) -> np.ndarray | None:
    import cv2

    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def clip_frames(content_type: str, data: bytes) -> list[bytes]:
    """JPEG frames of a clip: an MP4 (needs PyAV) or the edge's JPEG tar."""
    if content_type == "application/x-tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]  # type: ignore[union-attr]
    try:
        import av
        import cv2
    except ImportError:
        log.warning("PyAV is not installed: clip frames are skipped (snapshots are still exported)")
        return []
    out = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(video=0):
            ok, buf = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if ok:
                out.append(buf.tobytes())
    return out


def _incident_frames(tx: Tx, incident_id: int, with_clips: bool) -> list[Frame]:
    """Full-resolution snapshots (and clip frames when asked) of an incident; its alerts' small JPEGs if none."""
    frames: list[Frame] = []
    files = tx.execute(
        "SELECT f.edge_id, f.id, f.camera_id, f.kind, f.content_type, f.captured_at, f.meta, f.data "
        "FROM evidence_files f JOIN incident_alerts ia ON ia.edge_id = f.edge_id AND ia.alert_id = f.alert_id "
        "WHERE ia.incident_id = ? AND f.complete = 1 ORDER BY f.captured_at, f.id",
        (incident_id,),
    )
    for edge, ident, cam, kind, ctype, at, meta, data in files:
        boxes = json.loads(meta).get("boxes") or []
        if kind == "snapshot":
            frames.append(Frame(bytes(data), edge, cam, at, f"evidence-file:{edge}/{ident}", boxes))
        elif with_clips:
            for k, jpeg in enumerate(clip_frames(ctype, bytes(data))):
                frames.append(Frame(jpeg, edge, cam, at, f"evidence-file:{edge}/{ident}#{k}"))
    if frames:
        return frames
    rows = tx.execute(
        "SELECT ae.edge_id, ae.camera_id, ae.last_frame_at, ae.boxes, e.id, e.data FROM alert_events ae "
        "JOIN evidence e ON e.id = ae.evidence_id WHERE ae.incident_id = ? ORDER BY ae.id",
        (incident_id,),
    )
    for edge, cam, at, boxes, eid, data in rows:
        bx = [[b["x1"], b["y1"], b["x2"], b["y2"], b["score"]] for b in json.loads(boxes)]
        frames.append(Frame(bytes(data), edge, cam, at, f"alert-snapshot:{eid}", bx))
    return frames


def _file_frames(tx: Tx, edge: str, ident: str, with_clips: bool) -> list[Frame]:
    row = tx.one(
        "SELECT camera_id, kind, content_type, captured_at, meta, data FROM evidence_files "
        "WHERE edge_id = ? AND id = ?",
        (edge, ident),
    )
    if row is None:
        return []
    cam, kind, ctype, at, meta, data = row
    if kind == "snapshot":
        return [Frame(bytes(data), edge, cam, at, f"evidence-file:{edge}/{ident}", json.loads(meta).get("boxes") or [])]
    if not with_clips:
        return []
    return [
        Frame(j, edge, cam, at, f"evidence-file:{edge}/{ident}#{k}")
        for k, j in enumerate(clip_frames(ctype, bytes(data)))
    ]


def _class_dir(hazard: str, verdict: str) -> str | None:
    """Sub-folder (relative to OUT) of one labelled frame; None: not written as an image."""
    if hazard == "waterlogging":
        return {
            "hazard": "waterlogging/flood",
            "false_alarm": "waterlogging/no_flood",
            "ambiguous": "waterlogging/ambiguous",
        }[verdict]
    if verdict == "hazard":
        return f"{hazard}/{hazard}"
    if verdict == "false_alarm":
        return f"{hazard}/negatives"
    return f"{hazard}-ambiguous"


def _voc(name: str, w: int, h: int, box: list[float], label: str) -> str:
    x1, y1, x2, y2 = (max(0.0, min(1.0, v)) for v in box[:4])
    return (
        f"<annotation><filename>{escape(name)}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth>"
        f"</size><object><name>{escape(label)}</name><bndbox><xmin>{int(x1 * w)}</xmin><ymin>{int(y1 * h)}</ymin>"
        f"<xmax>{int(x2 * w)}</xmax><ymax>{int(y2 * h)}</ymax></bndbox></object></annotation>\n"
    )


def _union(boxes: list[list[float]]) -> list[float] | None:
    if not boxes:
        return None
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def export_dataset(
    db: Database, out: Path, since: float | None, site: str = "", *, with_clips: bool = True, now: float | None = None
) -> ExportSummary:
    """Write every current label since `since` (labels newer than it, by labelling time) under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out)
    rows_by_hazard: dict[str, list[dict]] = {}
    seen: dict[tuple[str, str, str], list[tuple[int, str]]] = {}  # (class dir, edge, camera) -> [(hash, file)]
    with db.tx() as tx:
        current = label_service.current(tx, since)
        exported_ids: list[int] = []
        for label in current:
            summary.labels += 1
            hazard = label["hazard"]
            if hazard is None and label["incident_id"] is not None:
                hazard = tx.scalar("SELECT hazard FROM incidents WHERE id = ?", (label["incident_id"],))
            verdict = label["verdict"]
            clips = with_clips and verdict == "false_alarm"  # frames around a real hazard may not show it yet
            if label["evidence"]:
                frames = _file_frames(tx, label["evidence"]["edge_id"], label["evidence"]["id"], clips)
            elif label["incident_id"] is not None:
                frames = _incident_frames(tx, label["incident_id"], clips)
            else:
                frames = []
            sub = _class_dir(hazard, verdict)
            if not frames or sub is None:
                summary.skipped += 1
                continue
            folder = out / sub
            folder.mkdir(parents=True, exist_ok=True)
            for frame in frames:
                img = _decode(frame.image)
                if img is None:
                    summary.skipped += 1
                    continue
                h = dhash(img.mean(axis=2).astype(np.uint8))
                key = (sub, frame.edge_id, frame.camera_id)
                name = f"{frame.edge_id}_{frame.camera_id}_{int(frame.captured_at * 1000)}_{label['id']}_{h:016x}.jpg"
                dup = next((f for hh, f in seen.get(key, []) if bin(hh ^ h).count("1") <= DUP_BITS), None)
                day = dt.datetime.fromtimestamp(frame.captured_at, dt.UTC).strftime("%Y-%m-%d")
                row = {
                    "file": "" if dup else f"{sub}/{name}",
                    "class": sub.split("/")[-1],
                    "verdict": verdict,
                    "hazard": hazard,
                    "false_alarm_kind": label["false_alarm_kind"] or "",
                    "edge_id": frame.edge_id,
                    "camera_id": frame.camera_id,
                    "captured_at": f"{frame.captured_at:.3f}",
                    "source": frame.source,
                    "incident_id": label["incident_id"] or "",
                    "label_id": label["id"],
                    "labelled_by": label["labelled_by"],
                    "labelled_at": f"{label['labelled_at']:.3f}",
                    "dhash": f"{h:016x}",
                    "duplicate_of": dup or "",
                    "group": f"{frame.edge_id}/{frame.camera_id}/{day}",
                }
                rows_by_hazard.setdefault(hazard, []).append(row)
                if dup:
                    summary.duplicates += 1
                    continue
                seen.setdefault(key, []).append((h, f"{sub}/{name}"))
                (folder / name).write_bytes(frame.image)
                summary.written[sub] = summary.written.get(sub, 0) + 1
                box = label["region"] or _union(frame.boxes)
                if verdict == "hazard" and hazard in ("smoke", "fire") and box:
                    ann = out / hazard / "annotations_voc"
                    ann.mkdir(parents=True, exist_ok=True)
                    (ann / (Path(name).stem + ".xml")).write_text(_voc(name, img.shape[1], img.shape[0], box, hazard))
            exported_ids.append(label["id"])
        label_service.mark_exported(tx, exported_ids, now if now is not None else dt.datetime.now(dt.UTC).timestamp())
    for hazard, rows in rows_by_hazard.items():
        folder = out / hazard
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "frames.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        (folder / "SOURCE.md").write_text(
            f"# Labelled evidence exported from hazardwatch central{f' ({site})' if site else ''}\n\n"
            f"- Licence: internal operational data of the deploying bureau; not for redistribution.\n"
            f"- Attribution: camera operators of {site or 'the deployment'}; labels by its duty officers.\n"
            f"- Exported {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} with labels since "
            f"{since if since is not None else 'the beginning'}; see frames.csv for camera, time and source.\n",
            encoding="utf-8",
        )
    return summary
