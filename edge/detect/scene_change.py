"""Fallen-tree reference detector: a learned clear-road reference per camera, no trained model.

Why: no fallen-tree images exist under a clear licence, yet a fixed roadside camera knows what its
empty road looks like. Per camera (keyed by `LookContext.camera_id`) it keeps a slowly updated
reference of the view; a region of the road zone that differs from it, stays put longer than
`persist_s`, is large, is not shaped like a vehicle (compact, solid, box-like) and looks like
vegetation or timber (green or brown, textured) is scored as a fallen tree. It implements the same
`Detector` contract as `OnnxDetector` and is configured by a manifest with `runtime: scene_change`,
so a trained ONNX model can replace it by swapping the manifest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.edge.detect.detector import Detection, ImageResult, LookContext
from hazardwatch.manifest import ManifestError, ModelManifest, read_manifest

DEFAULTS: dict[str, float] = {
    "persist_s": 120.0,  # a region must stay at least this long (patrol looks, not video frames)
    "reference_tau_s": 300.0,  # time constant of the reference update for clear pixels
    "absorb_s": 3600.0,  # an object still there after this long becomes part of the reference
    "diff_threshold": 18.0,  # per-pixel Lab distance that counts as changed
    "min_area": 0.04,  # an object this large (fraction of the zone, or of the view) counts fully
    "min_length": 0.3,  # ...and so does one this long (fraction of the view's width): a bare trunk
    "warmup_looks": 3,  # looks before the reference is trusted
}


@dataclass
class _CameraState:
    """What one camera's detector remembers between looks."""

    reference: np.ndarray  # float32 Lab at analysis size
    last_at: float
    looks: int = 1
    changed_since: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per pixel, inf = unchanged


@dataclass(frozen=True)
class Blob:
    """A persistent changed region with the shape and appearance cues that score it."""

    box: tuple[float, float, float, float]
    area: float  # fraction of the zone
    solidity: float
    extent: float
    vegetation: float
    texture: float
    score: float


class SceneChangeDetector:
    """Per-camera reference + persistence + shape and appearance cues -> fallen-tree regions."""

    def __init__(self, manifest_path: Path, threshold: float | None = None) -> None:
        self.manifest_path = Path(manifest_path)
        self.manifest: ModelManifest = read_manifest(self.manifest_path)
        m = self.manifest
        if m.runtime != "scene_change":
            raise ManifestError(f"{manifest_path}: runtime is {m.runtime}, not scene_change")
        self.name, self.version, self.hazard = m.name, m.version, m.hazard
        self.threshold = threshold if threshold is not None else m.threshold
        self.params = {k: float(m.params.get(k, v)) for k, v in DEFAULTS.items()}
        self.size = (m.input.width, m.input.height)
        self._cameras: dict[str, _CameraState] = {}

    # -- contract ---------------------------------------------------------------------------------
    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        """Frames of one look each; without contexts every frame is camera 'default' at wall time."""
        out = []
        for k, frame in enumerate(frames):
            ctx = contexts[k] if contexts else LookContext("default", time.time())
            out.append(self._look(frame, ctx))
        return out

    def reset(self, camera_id: str | None = None) -> None:
        """Forget a camera's reference (after it was moved), or all of them."""
        if camera_id is None:
            self._cameras.clear()
        else:
            self._cameras.pop(camera_id, None)

    # -- one look ---------------------------------------------------------------------------------
    def _look(self, frame: np.ndarray, ctx: LookContext) -> ImageResult:
        small = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (3, 3), 0)
        lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
        state = self._cameras.get(ctx.camera_id)
        h, w = lab.shape[:2]
        if state is None or state.reference.shape != lab.shape:
            self._cameras[ctx.camera_id] = _CameraState(lab, ctx.at, 1, np.full((h, w), np.inf, np.float32))
            return ImageResult(0.0, [])
        p = self.params
        dt = max(0.0, ctx.at - state.last_at)
        # Global illumination change (clouds, dusk) is not an object: match the L channel's median.
        gain = np.median(state.reference[..., 0]) - np.median(lab[..., 0])
        lab_c = lab.copy()
        lab_c[..., 0] += gain
        diff = np.sqrt(((lab_c - state.reference) ** 2).sum(axis=2))
        changed = diff > p["diff_threshold"]
        changed = cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)

        since = np.where(changed, np.minimum(state.changed_since, ctx.at), np.inf).astype(np.float32)
        # Reference update: clear pixels follow the scene; changed ones are absorbed only slowly.
        a_clear = 1.0 - math.exp(-dt / p["reference_tau_s"]) if dt > 0 else 0.0
        a_obj = 1.0 - math.exp(-dt / p["absorb_s"]) if dt > 0 else 0.0
        alpha = np.where(changed, a_obj, a_clear).astype(np.float32)[..., None]
        state.reference = state.reference * (1 - alpha) + lab_c * alpha
        state.changed_since = since
        state.last_at = ctx.at
        state.looks += 1
        if state.looks <= p["warmup_looks"]:
            return ImageResult(0.0, [])

        allowed = ctx.region.allowed_grid(h, w)  # the whole view without zones or masks
        persistent = changed & allowed & (ctx.at - since >= p["persist_s"])
        blobs = self.blobs(persistent, small, allowed)
        dets = [Detection(*b.box, score=b.score) for b in blobs if b.score >= self.threshold]
        if ctx.region.zones:
            dets = ctx.region.apply(dets)
        return ImageResult(max((b.score for b in blobs), default=0.0), dets)

    def blobs(self, mask: np.ndarray, bgr: np.ndarray, allowed: np.ndarray) -> list[Blob]:
        """Score each connected persistent region: large, not vehicle-shaped, vegetation or timber."""
        h, w = mask.shape
        zone_area = max(1.0, float(allowed.sum()))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        texture_map = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
        hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        green = (hue >= 25) & (hue <= 95) & (sat >= 35) & (val >= 25)
        brown = (hue >= 5) & (hue <= 25) & (sat >= 40) & (val >= 25) & (val <= 210)
        out = []
        for label in range(1, count):
            x, y, bw, bh, area_px = stats[label]
            area = area_px / zone_area
            comp = labels == label
            (_, _), (rw, rh), _ = cv2.minAreaRect(np.argwhere(comp)[:, ::-1].astype(np.float32))
            length = max(rw, rh) / w
            if area < self.params["min_area"] * 0.25 and length < self.params["min_length"] * 0.5:
                continue
            contours, _ = cv2.findContours(comp.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            hull_area = max(1.0, float(cv2.contourArea(cv2.convexHull(np.vstack(contours)))))
            solidity = min(1.0, area_px / hull_area)
            extent = min(1.0, area_px / max(1.0, rw * rh))
            vegetation = float((green | brown)[comp].mean())
            texture = float(np.clip(texture_map[comp].mean() / 25.0, 0, 1))
            score = self._score(area, length, solidity, extent, vegetation, texture)
            out.append(
                Blob((x / w, y / h, (x + bw) / w, (y + bh) / h), area, solidity, extent, vegetation, texture, score)
            )
        return out

    def _score(
        self, area: float, length: float, solidity: float, extent: float, vegetation: float, texture: float
    ) -> float:
        """Vehicles are solid, box-filling and smooth; a fallen tree is ragged, branched and green/brown."""
        size = min(1.0, max(area / self.params["min_area"], length / self.params["min_length"]))
        vehicle_like = max(0.0, min(1.0, (solidity - 0.75) / 0.2)) * max(0.0, min(1.0, (extent - 0.6) / 0.25))
        looks = 0.6 * vegetation + 0.25 * texture + 0.15 * (1.0 - solidity)
        # Leafy texture in vegetation colours is not paint: a solid clump of foliage is not a car.
        penalty = 0.8 * vehicle_like * (1.0 - vegetation * texture)
        return float(np.clip(size * looks * (1.0 - penalty) * 1.4, 0.0, 1.0))
