"""The horizon zoom's crop threshold, picked on the view-disjoint split's own pairs.

The ready threshold is picked per frame on the split (each validation frame against 16 nearest quiet
frames of its view, at 1 false positive per 200 smoke-free frames). The zoom's crop threshold is picked
the same way: every validation frame's horizon crops (`edge.detect.zoom.band_crops`, cut as the edge
cuts them) against the same crops of the same reference frames, through the split graph and the edge's
detector; a frame's zoom score is its highest crop's. So the per-camera zoom figures do not depend on
a threshold read off the cameras they are reported on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hazardwatch.edge.detect.detector import LookContext, ReferenceInput
from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.edge.detect.zoom import Crop, band_crops
from hazardwatch.models.data import Sample, read_bgr
from hazardwatch.models.smoke_reference import K_REFERENCE, plume_area, recall_at_fpr, reference_for, reference_stats


@dataclass(frozen=True)
class ZoomPairs:
    """Per validation frame with a reference: its zoom score (best crop against its crops' references),
    whether it holds a plume, and the plume's share of the frame."""

    scores: np.ndarray
    labels: np.ndarray
    areas: np.ndarray


def _crops_of(detector: OnnxDetector, path: Path, crops: Sequence[Crop]) -> list[np.ndarray]:
    frame = read_bgr(path)
    size = (detector.manifest.input.width, detector.manifest.input.height)
    return [c.cut(frame, size) for c in crops]


def zoom_pair_scores(
    detector: OnnxDetector,
    samples: Sequence[Sample],
    prints: np.ndarray,
    idx: np.ndarray,
    pool: np.ndarray,
    band: tuple[float, float],
    seed: int = 1,
    looks: int = K_REFERENCE,
) -> ZoomPairs:
    """The zoom scores of the samples at idx, each crop against the same crop of `looks` reference frames
    drawn as `smoke_reference.score_pairs` draws them (same seed: the same frames, so the two can be
    combined frame by frame)."""
    spec = detector.reference
    if spec is None or spec.zoom is None:
        raise ValueError(f"{detector.name}: the manifest has no reference.zoom section")
    crops = band_crops(band, spec.zoom.crops, spec.zoom.width)
    embedded: dict[int, np.ndarray] = {}  # sample -> [crops, E], the embeddings each crop gives

    def embeddings(j: int) -> np.ndarray:
        if j not in embedded:
            results = detector.detect(_crops_of(detector, samples[j].path, crops))
            embedded[j] = np.stack([r.embedding for r in results if r.embedding is not None])
        return embedded[j]

    rng = np.random.default_rng(seed)
    scores, labels, areas = [], [], []
    for i in idx:
        ref = reference_for(int(i), samples, prints, pool, rng, looks, among=2 * K_REFERENCE)
        if ref is None:
            continue
        refs = np.stack([embeddings(int(j)) for j in ref])  # [looks, crops, E]
        contexts = [
            LookContext("pairs", 0.0, reference=ReferenceInput(reference_stats(refs[:, k]), looks))
            for k in range(len(crops))
        ]
        results = detector.detect(_crops_of(detector, samples[int(i)].path, crops), contexts)
        scores.append(max(r.score for r in results))
        labels.append(samples[int(i)].positive)
        areas.append(plume_area(samples[int(i)]))
    return ZoomPairs(np.array(scores), np.array(labels, bool), np.array(areas))


def pick_zoom_threshold(pairs: ZoomPairs, ready_threshold: float, fpr: float) -> float:
    """The lowest crop threshold letting at most `fpr` of the smoke-free frames through on their crops alone
    (so the zoom adds at most that many false positives to the view's own), never under the view's ready
    threshold: a crop is a narrower view and no surer of what it sees."""
    return float(min(0.999, max(ready_threshold, recall_at_fpr(pairs.labels, pairs.scores, fpr)[1])))
