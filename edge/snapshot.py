"""Evidence snapshots: downscaled, size-bounded JPEG, so an alert always fits its MQTT message."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from hazardwatch.edge.config import SnapshotConfig


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size whose longer side is `max_side`, aspect kept, rounded to the nearest pixel, at least 2x2
    (an MP4 encoder needs even sides of 2 or more); the size itself when it already fits."""
    scale = max_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(2, round(width * scale)), max(2, round(height * scale))


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average a frame down to `max_side` (previews, snapshots, the evidence buffer); never up."""
    h, w = image.shape[:2]
    size = fit_within(w, h, max_side)
    if size == (w, h):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, cfg: SnapshotConfig) -> bytes:
    """JPEG at most `max_bytes`: lower the quality first, then the size."""
    img = downscale(image, cfg.max_side)
    quality = cfg.jpeg_quality
    while True:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        if buf.nbytes <= cfg.max_bytes:
            return buf.tobytes()
        if quality > 40:
            quality -= 15
        else:
            img = downscale(img, int(max(img.shape[:2]) * 0.7))


def snapshot_b64(image: np.ndarray, cfg: SnapshotConfig) -> str:
    return base64.b64encode(encode_jpeg(image, cfg)).decode("ascii")
