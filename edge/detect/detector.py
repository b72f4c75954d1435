"""The detector plug-in contract: one method, frames in, scored regions out.

Anything that implements `detect` can stand in for the ONNX runtime (a fallen-tree scene-change
detector, a remote accelerator), and the predictor does not care which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hazardwatch.contract import Hazard
from hazardwatch.edge.detect.regions import RegionFilter


@dataclass(frozen=True)
class Detection:
    """A scored region in relative coordinates (0..1, top-left origin)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    zone: str | None = None

    def iou(self, other: Detection) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def overlaps(self, other: Detection, min_iou: float) -> bool:
        """min_iou 0 means any overlap at all, as in Pyronear's vote."""
        if min_iou <= 0:
            return min(self.x2, other.x2) > max(self.x1, other.x1) and min(self.y2, other.y2) > max(self.y1, other.y1)
        return self.iou(other) >= min_iou

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)


@dataclass(frozen=True)
class ImageResult:
    """What one model saw in one frame: its top score and the regions at or above its threshold."""

    score: float
    detections: list[Detection] = field(default_factory=list)
    # Models that learn each camera's normal (manifest `reference`): the look's flattened per-cell
    # embedding [E], and whether the camera's reference scored this look (False: the cold-start path).
    embedding: np.ndarray | None = field(default=None, repr=False)
    with_reference: bool = False
    # The operating threshold this look was decided at when it is not the detector's `threshold` (a look
    # judged against its camera's reference; stricter while that reference is still learning).
    threshold: float | None = None


@dataclass(frozen=True)
class ReferenceInput:
    """A camera's learnt normal as a reference model takes it: the [3E] statistics (means, stds, maxima)
    and how many quiet looks are behind them (a reference still learning is judged more strictly)."""

    stats: np.ndarray = field(repr=False)
    looks: int


@dataclass(frozen=True)
class LookContext:
    """Which camera a frame came from, when, and which parts of it count.

    Stateless models only need `region`; a detector that keeps per-camera state (the fallen-tree
    scene-change detector) keys it by `camera_id`. `reference` is the camera's learnt normal for a
    model with a manifest `reference` section, None while it runs cold.
    """

    camera_id: str
    at: float
    region: RegionFilter = field(default_factory=RegionFilter)
    reference: ReferenceInput | None = field(default=None, repr=False)


class Detector(Protocol):
    """The one-method plug-in contract."""

    name: str
    version: str
    hazard: Hazard
    threshold: float

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        """Score a batch of BGR uint8 frames; one result per frame, in order."""
        ...
