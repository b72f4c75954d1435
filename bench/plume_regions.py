"""How well score-map regions cover annotated plumes: one box per connected group of cells over the
threshold (the old decode) against cells grown over a plume's edge and merged across a gap
(`edge/detect/regions.py`), on the annotated HPWREN frames, with the shipped smoke model's cold path.

    .venv/bin/python bench/plume_regions.py [--frames 120] [--data ../shared/data]

Prints one line per variant and, last, one JSON object with the figures. About 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.edge.detect.decode import sigmoid
from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.edge.detect.regions import cell_regions
from hazardwatch.models.evaluate import DEFAULT_MODELS, MODELS_DIR

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def covered(box: Box, truth: Box) -> float:
    ix = max(0.0, min(box[2], truth[2]) - max(box[0], truth[0]))
    iy = max(0.0, min(box[3], truth[3]) - max(box[1], truth[1]))
    return ix * iy / ((truth[2] - truth[0]) * (truth[3] - truth[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    args = ap.parse_args()
    root = Path(args.data) / "smoke-hpwren"
    det = OnnxDetector(MODELS_DIR / DEFAULT_MODELS["smoke"], threads=1)
    maps: list[tuple[np.ndarray, Box]] = []
    for xml in sorted((root / "annotations_voc").glob("*.xml"))[: args.frames]:
        img = cv2.imread(str(root / "smoke" / f"{xml.stem}.jpeg"))
        if img is None:
            continue
        h, w = img.shape[:2]
        bb = ET.parse(xml).find(".//bndbox")
        assert bb is not None
        x1, y1, x2, y2 = (float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax"))
        raw, _ = det._run([img], [None])  # the cold path's score map, before decoding
        maps.append((sigmoid(raw[0][0]), (x1 / w, y1 / h, x2 / w, y2 / h)))
    variants = {
        "seeds only (connected cells over the threshold)": {"grow": 1.0, "gap": 0},
        "grow 0.9, gap 1 (the edge's default)": {"grow": 0.9, "gap": 1},
        "grow 0.5, gap 1": {"grow": 0.5, "gap": 1},
    }
    out: dict[str, dict[str, float]] = {}
    for name, kw in variants.items():
        ious, cover, per_frame = [], [], []
        for m, truth in maps:
            boxes = [b[:4] for b in cell_regions(m, det.threshold, **kw)]
            if not boxes:
                continue
            best = max(boxes, key=lambda b: iou(b, truth))
            ious.append(iou(best, truth))
            cover.append(covered(best, truth))
            per_frame.append(len(boxes))
        out[name] = {
            "frames": len(maps),
            "frames_with_a_box": len(ious),
            "boxes_per_frame": round(float(np.mean(per_frame)), 2),
            "iou": round(float(np.mean(ious)), 3),
            "plume_covered": round(float(np.mean(cover)), 3),
        }
        print(f"{name:50s} {out[name]}")
    print(json.dumps({"model": f"{det.name} {det.version}", "threshold": det.threshold, **out}))


if __name__ == "__main__":
    main()
