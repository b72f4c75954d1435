"""Evidence snapshots: downscaled, size-bounded JPEG, so an alert always fits its MQTT message."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from hazardwatch.edge.config import SnapshotConfig


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


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
