"""Write labelled evidence from central's store as a training set in the layout `hazardwatch models
train` reads (`hazardwatch models export-dataset`, also `hazardwatch central export-dataset`).

Layout, one folder per hazard under OUT (see docs/retraining.md):
- smoke, fire: `<hazard>/<hazard>/*.jpg` positives with Pascal VOC boxes in `<hazard>/annotations_voc/`,
  `<hazard>/negatives/*.jpg` (false alarms); ambiguous frames go to `<hazard>-ambiguous/`, outside the
  folder, because the smoke trainer reads every other sub-folder as negatives;
- waterlogging: `flood/`, `no_flood/`, `ambiguous/` (the flood trainer's NC12 layout);
- fallen_tree: `fallen_tree/`, `negatives/` (no trainer reads it yet; kept for the record).
Each hazard folder has `frames.csv` (camera, edge, capture time, source, label, who, hash, group, and
the duplicate each dropped frame repeats) and `SOURCE.md` (provenance for the manifest).

Why here and not in central: decoding JPEGs and clips needs OpenCV and PyAV, which the models tooling
has and central's install does not; central only hands over the bytes (`services/dataset.py`).
Near-identical frames (a static camera, a clip's neighbouring frames) are dropped by a 64-bit
difference hash within one camera, so they neither inflate the set nor leak across a split; `group`
(edge/camera/day) lets a trainer keep one camera-day on one side of a split.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import cv2
import numpy as np

from hazardwatch.central.services import dataset
from hazardwatch.central.store import Database

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
class ExportImage:
    """One JPEG the dataset gets: a snapshot, or one frame cut from a clip, with the boxes it carries."""

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
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << k for k, b in enumerate(bits) if b))


def clip_frames(content_type: str, data: bytes) -> list[bytes]:
    """JPEG frames of a clip: an MP4 (needs PyAV) or the edge's JPEG tar."""
    if content_type == "application/x-tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]  # type: ignore[union-attr]
    try:
        import av
    except ImportError:
        log.warning("PyAV is not installed: clip frames are skipped (snapshots are still exported)")
        return []
    out = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            ok, buf = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if ok:
                out.append(buf.tobytes())
    return out


def frames_of(evidence: list[dataset.Evidence]) -> list[ExportImage]:
    """Snapshots as they are; clips as their frames (without boxes: a box belongs to one frame)."""
    frames: list[ExportImage] = []
    for e in evidence:
        if e.kind == "snapshot":
            frames.append(ExportImage(e.data, e.edge_id, e.camera_id, e.captured_at, e.source, e.boxes))
            continue
        for k, jpeg in enumerate(clip_frames(e.content_type, e.data)):
            frames.append(ExportImage(jpeg, e.edge_id, e.camera_id, e.captured_at, f"{e.source}#{k}"))
    return frames


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


class _Writer:
    """Writes frames of one export, remembering hashes per (class folder, camera) to drop near-duplicates."""

    def __init__(self, out: Path, summary: ExportSummary) -> None:
        self.out = out
        self.summary = summary
        self.rows_by_hazard: dict[str, list[dict[str, Any]]] = {}
        self.seen: dict[tuple[str, str, str], list[tuple[int, str]]] = {}  # (class dir, edge, camera) -> [(hash, file)]

    def write(self, item: dataset.Labelled, sub: str, frame: ExportImage) -> None:
        label, hazard, verdict = item.label, item.hazard or "", item.label["verdict"]
        img = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            self.summary.skipped += 1
            return
        h = dhash(img.mean(axis=2).astype(np.uint8))
        key = (sub, frame.edge_id, frame.camera_id)
        name = f"{frame.edge_id}_{frame.camera_id}_{int(frame.captured_at * 1000)}_{label['id']}_{h:016x}.jpg"
        dup = next((f for hh, f in self.seen.get(key, []) if bin(hh ^ h).count("1") <= DUP_BITS), None)
        day = dt.datetime.fromtimestamp(frame.captured_at, dt.UTC).strftime("%Y-%m-%d")
        self.rows_by_hazard.setdefault(hazard, []).append(
            {
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
        )
        if dup:
            self.summary.duplicates += 1
            return
        self.seen.setdefault(key, []).append((h, f"{sub}/{name}"))
        (self.out / sub / name).write_bytes(frame.image)
        self.summary.written[sub] = self.summary.written.get(sub, 0) + 1
        box = label["region"] or _union(frame.boxes)
        if verdict == "hazard" and hazard in ("smoke", "fire") and box:
            ann = self.out / hazard / "annotations_voc"
            ann.mkdir(parents=True, exist_ok=True)
            (ann / (Path(name).stem + ".xml")).write_text(_voc(name, img.shape[1], img.shape[0], box, hazard))

    def finish(self, site: str, since: float | None) -> None:
        for hazard, rows in self.rows_by_hazard.items():
            folder = self.out / hazard
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


def export_dataset(
    db: Database, out: Path, since: float | None, site: str = "", *, with_clips: bool = True, now: float | None = None
) -> ExportSummary:
    """Write every current label since `since` (labels newer than it, by labelling time) under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out)
    writer = _Writer(out, summary)
    with db.tx() as tx:
        exported_ids: list[int] = []
        for item in dataset.labelled(tx, since, with_clips):
            summary.labels += 1
            frames = frames_of(item.evidence) or frames_of(item.fallback)
            sub = _class_dir(item.hazard or "", item.label["verdict"])
            if not frames or sub is None:
                summary.skipped += 1
                continue
            (out / sub).mkdir(parents=True, exist_ok=True)
            for frame in frames:
                writer.write(item, sub, frame)
            exported_ids.append(item.label["id"])
        dataset.mark_exported(tx, exported_ids, now if now is not None else dt.datetime.now(dt.UTC).timestamp())
    writer.finish(site, since)
    return summary
