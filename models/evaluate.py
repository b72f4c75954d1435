"""Evaluate a shipped model exactly as the edge runs it (no torch): the registry's detector, `detect` per image.

An image counts as positive when the detector returns at least one region at its operating
threshold, which is what the edge's confirmation stage receives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hazardwatch.models.data import list_images, read_bgr

if TYPE_CHECKING:
    from hazardwatch.edge.detect import Detector

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODELS = {
    "smoke": "smoke-hpwren/smoke-hpwren-int8.json",
    "waterlogging": "waterlogging-nc12/waterlogging-nc12-int8.json",
    "fallen_tree": "fallen-tree-scene/fallen-tree-scene.json",
}


@dataclass(frozen=True)
class Scored:
    """Per-image scores and decisions of one run."""

    scores: np.ndarray
    decisions: np.ndarray
    ms_per_image: float


def load_detector(manifest: Path, threads: int = 2) -> Detector:
    """The detector the edge would build from this manifest (edge/detect/registry.py)."""
    from hazardwatch.edge.detect.registry import build_detector

    return build_detector(manifest, threads=threads)


def score_paths(detector: Detector, paths: Sequence[Path], batch: int = 8) -> Scored:
    """Run the detector over image files in batches, timing inference only (not decoding)."""
    scores, decisions = [], []
    spent = 0.0
    for start in range(0, len(paths), batch):
        frames = [read_bgr(p) for p in paths[start : start + batch]]
        t0 = time.perf_counter()
        results = detector.detect(frames)
        spent += time.perf_counter() - t0
        scores += [r.score for r in results]
        decisions += [bool(r.detections) for r in results]
    n = max(1, len(paths))
    return Scored(np.array(scores, float), np.array(decisions, bool), 1000.0 * spent / n)


def rates(tp: int, fp: int, fn: int, tn: int) -> dict[str, float | int]:
    """The four counts with precision, recall and F1 (0 where a rate has nothing to count), to 4 places."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def confusion(pos: np.ndarray, neg: np.ndarray) -> dict[str, float | int]:
    """Counts and rates from boolean decisions on positive and negative images."""
    tp, fn = int(pos.sum()), int((~pos).sum())
    fp, tn = int(neg.sum()), int((~neg).sum())
    return {"n_pos": len(pos), "n_neg": len(neg), **rates(tp, fp, fn, tn)}


def evaluate_paths(detector: Detector, positives: Sequence[Path], negatives: Sequence[Path]) -> dict[str, Any]:
    """The `models eval --json` object, plus the raw scores for a PR curve under `_scores`."""
    sp = score_paths(detector, positives)
    sn = score_paths(detector, negatives)
    out: dict[str, Any] = dict(confusion(sp.decisions, sn.decisions))
    n = max(1, len(positives) + len(negatives))
    ms = (sp.ms_per_image * len(positives) + sn.ms_per_image * len(negatives)) / n
    out["threshold"] = float(detector.threshold)
    out["ms_per_image"] = round(ms, 2)
    out["model"] = f"{detector.name} {detector.version}"
    out["_scores"] = (sp.scores, sn.scores)
    return out


def evaluate_folders(detector: Detector, positives: Sequence[Path], negatives: Sequence[Path]) -> dict[str, Any]:
    return evaluate_paths(detector, list_images(positives), list_images(negatives))


def pr_curve(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds over every distinct score."""
    thresholds = np.unique(np.concatenate([pos_scores, neg_scores]))[::-1]
    precision, recall = [], []
    for t in thresholds:
        tp = (pos_scores >= t).sum()
        fp = (neg_scores >= t).sum()
        precision.append(tp / max(1, tp + fp))
        recall.append(tp / max(1, len(pos_scores)))
    return np.array(precision), np.array(recall), thresholds


def plot_pr(result: dict[str, Any], path: Path) -> str:
    """Write the PR curve with the operating point; returns a message (matplotlib is optional)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install hazardwatch[train]); no plot written"
    pos, neg = result["_scores"]
    p, r, _ = pr_curve(pos, neg)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(r, p, label="PR curve")
    ax.plot([result["recall"]], [result["precision"]], "ro", label=f"operating point t={result['threshold']:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(result["model"])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path}"


def pick_threshold(
    pos_scores: np.ndarray, neg_scores: np.ndarray, min_precision: float = 0.9, max_fpr: float = 0.005
) -> float:
    """Lowest threshold meeting both precision and false-positive-rate targets (else the best precision)."""
    best = None
    for t in sorted(set(np.concatenate([pos_scores, neg_scores]).tolist()), reverse=True):
        tp = (pos_scores >= t).sum()
        fp = (neg_scores >= t).sum()
        prec = tp / max(1, tp + fp)
        if prec >= min_precision and fp / max(1, len(neg_scores)) <= max_fpr and 0 < t < 1:
            best = t
    if best is None:
        best = float(np.quantile(neg_scores, 0.995)) if len(neg_scores) else 0.5
    return float(min(0.999, max(0.001, best)))
