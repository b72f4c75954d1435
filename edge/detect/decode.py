"""Turn raw model outputs into scored regions, one function per manifest output kind."""

from __future__ import annotations

import cv2
import numpy as np

from hazardwatch.edge.detect.detector import Detection
from hazardwatch.edge.detect.regions import cell_regions


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def regions_from_map(score_map: np.ndarray, threshold: float) -> list[Detection]:
    """One box per plume: cells at or above threshold, grown over their neighbours and merged
    (regions.cell_regions), each scored by its best cell."""
    return [Detection(*box) for box in cell_regions(score_map, threshold)]


def yolo_boxes(
    raw: np.ndarray,
    fmt: str,
    class_idx: list[int],
    input_wh: tuple[int, int],
    threshold: float,
    nms_iou: float,
) -> tuple[float, list[Detection]]:
    """Decode one image's YOLO output ([4+C, A] for v8, [A, 5+C] for v5) with NMS."""
    if fmt == "v8":
        rows = raw.T  # [A, 4+C]
        cls = rows[:, 4:]
        conf = cls[:, class_idx].max(axis=1)
    else:
        rows = raw  # [A, 5+C]
        cls = rows[:, 5:] * rows[:, 4:5]
        conf = cls[:, class_idx].max(axis=1)
    top = float(conf.max()) if conf.size else 0.0
    keep = conf >= threshold
    if not keep.any():
        return top, []
    width, height = input_wh
    cx, cy, bw, bh = (rows[keep, i] for i in range(4))
    scores = conf[keep]
    rects = [
        [float(x - w / 2), float(y - h / 2), float(w), float(h)] for x, y, w, h in zip(cx, cy, bw, bh, strict=True)
    ]
    picked = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), threshold, nms_iou)
    out = []
    for i in np.array(picked).reshape(-1):
        x, y, w, h = rects[int(i)]
        out.append(
            Detection(
                float(np.clip(x / width, 0, 1)),
                float(np.clip(y / height, 0, 1)),
                float(np.clip((x + w) / width, 0, 1)),
                float(np.clip((y + h) / height, 0, 1)),
                float(min(1.0, scores[int(i)])),
            )
        )
    return top, out
