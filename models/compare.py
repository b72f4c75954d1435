"""A candidate model beside the running one on the same labelled frames, before a rollout.

Both run exactly as the edge runs them (`evaluate.score_paths`). Besides each model's precision,
recall and speed, the frames where the two decide differently are listed: the alarms the candidate
would add or drop, which an operator can look at before any edge gets the candidate. The labelled set is
what `export-dataset` writes (operators' labels from the dashboard): one hazard's positives and negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hazardwatch.models.evaluate import confusion, load_detector, score_paths

# Where export-dataset puts one hazard's positives and negatives (docs/retraining.md).
LABELLED = {
    "smoke": ("smoke/smoke", "smoke/negatives"),
    "waterlogging": ("waterlogging/flood", "waterlogging/no_flood"),
}


def labelled_folders(root: Path, hazard: str) -> tuple[Path, Path]:
    """(positives, negatives) of an export-dataset folder; ValueError naming what is missing."""
    if hazard not in LABELLED:
        raise ValueError(f"--labelled: export-dataset writes no {hazard} folder (it writes {', '.join(LABELLED)})")
    pos, neg = (root / p for p in LABELLED[hazard])
    missing = [str(p) for p in (pos, neg) if not p.is_dir()]
    if missing:
        raise ValueError(f"--labelled: {', '.join(missing)} does not exist (run export-dataset first)")
    return pos, neg


def compare_paths(
    running: Path, candidate: Path, positives: Sequence[Path], negatives: Sequence[Path]
) -> dict[str, Any]:
    """Both models' figures on the same frames, the change, and the frames whose decision changes."""
    runs: dict[str, Any] = {}
    decided: dict[str, tuple[Any, Any]] = {}
    for role, manifest in (("running", running), ("candidate", candidate)):
        det = load_detector(manifest)
        sp, sn = score_paths(det, positives), score_paths(det, negatives)
        n = max(1, len(positives) + len(negatives))
        runs[role] = {
            "model": f"{det.name} {det.version}",
            "threshold": float(det.threshold),
            **confusion(sp.decisions, sn.decisions),
            "ms_per_image": round((sp.ms_per_image * len(positives) + sn.ms_per_image * len(negatives)) / n, 2),
        }
        decided[role] = (sp.decisions, sn.decisions)
    (rp, rn), (cp, cn) = decided["running"], decided["candidate"]
    changes = {
        "caught": [str(p) for p, r, c in zip(positives, rp, cp, strict=True) if c and not r],
        "missed": [str(p) for p, r, c in zip(positives, rp, cp, strict=True) if r and not c],
        "new_false_alarms": [str(p) for p, r, c in zip(negatives, rn, cn, strict=True) if c and not r],
        "false_alarms_gone": [str(p) for p, r, c in zip(negatives, rn, cn, strict=True) if r and not c],
    }
    delta = {k: round(runs["candidate"][k] - runs["running"][k], 4) for k in ("precision", "recall", "f1", "fp", "fn")}
    return {**runs, "delta": delta, "changes": changes}


def render(result: dict[str, Any], limit: int = 10) -> str:
    """Two columns and the change, then the frames that changed (the first `limit` of each kind)."""
    rows = ["model", "threshold", "n_pos", "n_neg", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "ms_per_image"]
    run, cand, delta = result["running"], result["candidate"], result["delta"]
    lines = [f"{'':>13}  {'running':>24}  {'candidate':>24}  {'change':>8}"]
    for k in rows:
        change = f"{delta[k]:+g}" if k in delta else ""
        lines.append(f"{k:>13}  {run[k]!s:>24}  {cand[k]!s:>24}  {change:>8}")
    for kind, paths in result["changes"].items():
        lines.append(f"{kind} ({len(paths)}):" + "".join(f"\n  {p}" for p in paths[:limit]))
        if len(paths) > limit:
            lines.append(f"  ... and {len(paths) - limit} more (--json lists all)")
    return "\n".join(lines)
