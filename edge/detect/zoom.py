"""A camera's horizon band looked at closer: small plumes far away.

A plume under 1 % of the frame covers one to four of the reference path's stride-16 cells, where its
deviation from the camera's normal is no larger than a drifting haze edge's. Cut into half-width crops,
each scaled up to the model's input, the band shows such a plume at four times the area. Each crop is a
part of its camera with a reference of its own (`edge.reference.part_id`), so what is normal in it is learnt like the
whole view's; a crop flags only at the model's zoom threshold (manifest `reference.zoom`), and its
regions are mapped back to the frame before masks and zones apply (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from hazardwatch.edge.detect.detector import Detection, ImageResult
from hazardwatch.edge.detect.regions import RegionFilter


@dataclass(frozen=True)
class Crop:
    """A part of the frame in relative coordinates (0..1, top-left origin)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def cut(self, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The crop at the model's input size (width, height): bicubic when it grows, area when it shrinks."""
        h, w = frame.shape[:2]
        part = frame[int(self.y1 * h) : max(int(self.y1 * h) + 1, int(self.y2 * h)),
                     int(self.x1 * w) : max(int(self.x1 * w) + 1, int(self.x2 * w))]  # fmt: skip
        grows = part.shape[1] < size[0] or part.shape[0] < size[1]
        return cv2.resize(part, size, interpolation=cv2.INTER_CUBIC if grows else cv2.INTER_AREA)

    def to_frame(self, det: Detection) -> Detection:
        """A region found in the crop, in the frame's coordinates."""
        sx, sy = self.x2 - self.x1, self.y2 - self.y1
        return replace(
            det,
            x1=self.x1 + det.x1 * sx,
            y1=self.y1 + det.y1 * sy,
            x2=self.x1 + det.x2 * sx,
            y2=self.y1 + det.y2 * sy,
        )

    def from_frame(self, det: Detection) -> Detection | None:
        """A frame region in the crop's coordinates, clipped to it (None: it misses the crop)."""
        sx, sy = self.x2 - self.x1, self.y2 - self.y1
        x1, x2 = max(0.0, (det.x1 - self.x1) / sx), min(1.0, (det.x2 - self.x1) / sx)
        y1, y2 = max(0.0, (det.y1 - self.y1) / sy), min(1.0, (det.y2 - self.y1) / sy)
        if x2 <= x1 or y2 <= y1:
            return None
        return replace(det, x1=x1, y1=y1, x2=x2, y2=y2)


def band_crops(band: tuple[float, float], crops: int, width: float) -> tuple[Crop, ...]:
    """`crops` crops of `width` of the frame, evenly spread from its left edge to its right, over `band`
    (top, bottom) of its height."""
    top, bottom = band
    step = (1.0 - width) / (crops - 1) if crops > 1 else 0.0
    return tuple(Crop(k * step, top, k * step + width, bottom) for k in range(crops))


def merge(
    full: ImageResult,
    parts: Sequence[tuple[Crop, ImageResult]],
    threshold: float,
    region: RegionFilter,
) -> ImageResult:
    """The look as a whole: the frame's own result plus every region a crop compared with its reference
    found at `threshold` or above, mapped to the frame and through the camera's masks and zones. The
    score is the frame's unless a crop flagged more."""
    found = [
        crop.to_frame(d) for crop, res in parts if res.with_reference for d in res.detections if d.score >= threshold
    ]
    found = region.apply(found)
    if not found:
        return full
    return replace(
        full,
        score=max(full.score, max(d.score for d in found)),
        detections=[*full.detections, *found],
    )


def quiet_part(result: ImageResult, threshold: float, learn_below: float) -> bool:
    """A crop stays quiet when it is still learning or scores well under the zoom threshold."""
    return not result.with_reference or result.score < learn_below * threshold
