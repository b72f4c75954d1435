"""`hazardwatch models train-reference smoke`: add the per-camera reference head to the shipped smoke graph.

One command does the whole recipe so a model maintainer can repeat it: embed every frame with the
cold graph, train the head on the training view groups and measure it on the validation groups
(per frame, and per camera through the edge's own predictor with `models eval --cameras`), then
train it again on every view group and ship that graph. The shipped manifest records the
view-disjoint figures (`reference_*`), which is what a camera never seen in training can expect.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from hazardwatch.models.data import Review, Sample

if TYPE_CHECKING:
    from hazardwatch.edge.detect import Detector
    from hazardwatch.models.smoke_reference import Embedded, Projection

from hazardwatch.manifest import sha256_file

log = logging.getLogger(__name__)

REFERENCE_NAMES = ("reference", "embedding", "adapted")
LAYOUT_FILE = "validation-cameras.txt"
STAMPS_FILE = "stamps.txt"  # every frame's time, read off its stamp (`models read-stamps`)
DAYS_FILE = "validation-days.txt"  # each validation camera's day, the frames in it (`timeline_layout`)
# Quiet frames a validation camera watches first: more than the edge's min_looks (16), because a frame
# the cold path finds suspicious is not learnt, and a camera short of min_looks would stay cold.
VALIDATION_REFERENCE_LOOKS = 20
# Warm-up steps: a reference of this many looks is already compared with, at a threshold of its own
# picked at half the main one's false-positive budget (1 per 400 smoke-free frames of unseen views, the
# main one 1 per 200): a short reference's statistics are noisier than the split's draw shows.
WARMUP_LOOKS = (4, 6, 8, 12)
WARMUP_FPR = 0.0025
# The warm-up measured per camera: each validation camera watches only this many quiet frames first.
WARMUP_CAMERA_FRAMES = 8
# The horizon zoom (edge/detect/zoom.py) a camera may ask for: three half-width crops of its band, each
# against its own reference. Its crop threshold is picked on the split's pairs (models/zoom_threshold.py)
# over the band every camera of the evaluation looks at (camera config default, 0.3-0.8 of the height),
# at 1 false positive per 200 smoke-free frames of unseen views: at most that many more than the view's own.
ZOOM = {"crops": 3, "width": 0.5}
ZOOM_FPR = 0.005


def cold_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph without a previous reference head (so the recipe can be re-run on a shipped model)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    keep = [n for n in g.node if not any(o in REFERENCE_NAMES or o.startswith("ref_") for o in n.output)]
    del g.node[:]
    g.node.extend(keep)
    for field in (g.input, g.output):
        kept = [v for v in field if v.name not in REFERENCE_NAMES]
        del field[:]
        field.extend(kept)
    inits = [i for i in g.initializer if not i.name.startswith("ref_")]
    del g.initializer[:]
    g.initializer.extend(inits)
    return out


def camera_layout(val: Sequence[Sample], data_root: Path) -> list[str]:
    """`group<TAB>role<TAB>path` lines: per validation view group, its first quiet frames (name order) are
    the reference, the other smoke-free frames the negatives, the boxed frames the positives."""
    lines = []
    for group in sorted({s.group for s in val}):
        members = sorted((s for s in val if s.group == group), key=lambda s: s.path.name)
        negatives = [s for s in members if not s.positive]
        positives = [s for s in members if s.positive]
        if len(negatives) <= VALIDATION_REFERENCE_LOOKS:
            continue  # too few quiet frames to learn a reference and still test on some
        camera = group.replace("/", "-")
        for role, items in (
            ("reference", negatives[:VALIDATION_REFERENCE_LOOKS]),
            ("negatives", negatives[VALIDATION_REFERENCE_LOOKS:]),
            ("positives", positives),
        ):
            lines += [
                f"{camera}\t{role}\t{s.path.resolve().relative_to(data_root.resolve()).as_posix()}" for s in items
            ]
    return lines


def warming_layout(lines: Sequence[str], frames: int = WARMUP_CAMERA_FRAMES) -> list[str]:
    """The camera layout with each camera's reference/ cut to its first `frames` quiet frames: cameras
    whose references are still learning."""
    kept: list[str] = []
    seen: dict[str, int] = {}
    for line in lines:
        camera, role, _ = line.split("\t")
        if role == "reference":
            seen[camera] = seen.get(camera, 0) + 1
            if seen[camera] > frames:
                continue
        kept.append(line)
    return kept


def timeline_layout(lines: Sequence[str], times: Mapping[str, datetime]) -> list[str]:
    """The camera layout as each validation camera's own day: no reference learnt beforehand, every quiet
    frame a negative and every plume a positive, only frames whose time is known (`stamps.txt`). Named with
    their times by `build_layout`, they are replayed in the order they were taken: a camera connected at
    its first frame learns its normal from the quiet hour before its fire, then meets the fire's first
    minutes (`models eval --cameras` `events.fires`)."""
    kept = []
    for line in lines:
        camera, role, rel = line.split("\t")
        if Path(rel).name in times:
            kept.append(f"{camera}\t{'positives' if role == 'positives' else 'negatives'}\t{rel}")
    return kept


def build_layout(lines: Sequence[str], data_root: Path, out: Path, times: Mapping[str, datetime] | None = None) -> Path:
    """ROOT/<camera>/<role>/ of symbolic links to the shared frames, for `models eval --cameras`; with
    `times`, each positive and negative is named `YYYYMMDD-HHMMSS_<name>` so it is replayed in time order."""
    if out.exists():
        shutil.rmtree(out)
    for line in lines:
        camera, role, rel = line.split("\t")
        folder = out / camera / role
        folder.mkdir(parents=True, exist_ok=True)
        name = Path(rel).name
        if times is not None and role != "reference":
            name = f"{times[name]:%Y%m%d-%H%M%S}_{name}"
        os.symlink((data_root / rel).resolve(), folder / name)
    return out


def timeline_figures(detector: Detector, layout: Path, prefix: str = "reference_timeline") -> dict[str, Any]:
    """Each validation camera's day replayed through the edge's predictor from its first frame (a layout
    of `timeline_layout`): its fires alerted, minutes from a fire's first frame to the alert, false alerts."""
    from hazardwatch.contract import Hazard
    from hazardwatch.models.evaluate_cameras import evaluate_cameras

    events = evaluate_cameras(detector, Hazard.SMOKE, layout)["events"]
    minutes = [f["minutes_to_alert"] for f in events["fires"]]
    median = events["median_minutes_to_alert"]  # 0.0 is a fire alerted at its first frame; None: none alerted
    log.info(
        "timeline: %s",
        [(f["camera"], f["start"], f["minutes_to_alert"], f["minutes_to_an_open_alert"]) for f in events["fires"]],
    )
    return {
        f"{prefix}_fires": len(minutes),
        f"{prefix}_fires_alerted": events["fires_alerted"],
        f"{prefix}_median_minutes_to_alert": -1 if median is None else median,
        f"{prefix}_max_minutes_to_alert": max((m for m in minutes if m is not None), default=-1),
        f"{prefix}_fires_in_an_open_alert": events["fires_in_an_open_alert"],
        f"{prefix}_quiet_looks": events["quiet_looks"],
        f"{prefix}_false_alerts_per_1000_quiet_looks": events["false_alerts_per_1000_quiet_looks"],
        f"{prefix}_quiet_looks_in_a_false_alert": events["quiet_looks_in_a_false_alert"],
    }


def _embedded(
    cold: onnx.ModelProto,
    train: Sequence[Sample],
    everything: Sequence[Sample],
    work_dir: Path,
    pca_cells: int = 150,
    keep_raw: Sequence[str] = (),
) -> tuple[Projection, Embedded]:
    """The projections and every frame's embeddings (and the raw features of `keep_raw`'s scales), cached
    in work_dir for the same graph, scales, PCA cells and frames (the 1.3.0 key is kept for 30 cells)."""
    import hashlib

    from hazardwatch.models import smoke_reference as sr

    listing = repr([str(s.path) for s in everything]) + repr(sr.SCALES) + ("" if pca_cells == 30 else str(pca_cells))
    key = hashlib.sha256(cold.SerializeToString() + listing.encode()).hexdigest()
    path = work_dir / f"embedded-{key[:16]}.npz"
    raw_path = {n: work_dir / f"embedded-{key[:16]}-{n}-raw.npy" for n in keep_raw}
    names = [sc.name for sc in sr.SCALES]
    if path.is_file() and all(p.is_file() for p in raw_path.values()):
        z = np.load(path)
        proj = {n: (z[f"{n}_p"], z[f"{n}_mean"]) for n in names}
        raw = {n: np.load(p, mmap_mode="r") for n, p in raw_path.items()}
        emb, mirror = {n: z[f"{n}_emb"] for n in names}, {n: z[f"{n}_mirror"] for n in names}
        return proj, sr.Embedded(emb, mirror, z["prints"], raw)
    proj = sr.fit_projection(cold, train, cells=pca_cells)
    data = sr.embed_all(cold, proj, everything, keep_raw)
    work_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"prints": data.prints}
    for n in names:
        arrays.update(
            {f"{n}_p": proj[n][0], f"{n}_mean": proj[n][1], f"{n}_emb": data.emb[n], f"{n}_mirror": data.emb_mirror[n]}
        )
    np.savez(path, **arrays)
    for n, p in raw_path.items():  # one array per scale, memory-mapped when read back (1.4 GB for s16)
        np.save(p, data.raw[n])
    return proj, data


def _operating_threshold(labels: np.ndarray, scores: np.ndarray, fpr: float = 0.005) -> float:
    """At most `fpr` false positives (default 1 per 200) among smoke-free frames of unseen views. The score
    combines the scales' probabilities, so it may sit under 0.5 (one scale sure, the other unsure)."""
    from hazardwatch.models import smoke_reference as sr

    return float(min(0.999, max(0.05, sr.recall_at_fpr(labels, scores, fpr)[1])))


def _zoom_figures(
    labels: np.ndarray, areas: np.ndarray, view: np.ndarray, threshold: float, zoom: np.ndarray, zoom_threshold: float
) -> dict[str, float]:
    """Per frame on the split, a frame flagged by its whole view or by any crop of its band."""
    from hazardwatch.models import smoke_reference as sr

    flagged = ((view > threshold) | (zoom > zoom_threshold)).astype(float)
    figures = {
        "reference_zoom_fp_per_200": round(200 * float(flagged[~labels].mean()), 2),
        "reference_zoom_recall": round(float(flagged[labels].mean()), 4),
    }
    for band, recall in sr.recall_by_size(labels, areas, flagged, 0.5).items():
        figures[f"reference_zoom_recall_{band}_plumes"] = round(recall, 4)
    return figures


def _cold_command(base: dict[str, Any]) -> str:
    """How the cold-start path was trained (kept across re-runs of this recipe)."""
    training = base.get("training", {})
    return str(training.get("cold_path") or training.get("command", ""))


def shipped_zoom_threshold(
    manifest_path: Path, layout: Path, work_dir: Path, step: float = 0.04, precision: float = 0.01
) -> float:
    """The shipped head's crop threshold, through the edge's own predictor on the validation cameras.

    Why: the split head's crop threshold does not carry over to the head trained on every view (1.9.0: 11
    false positives on the validation cameras with the zoom at the split's 0.32, 2 without it; 1.10.0's
    0.4628 held at once). It is the
    lowest threshold, from the manifest's, at which the zoom adds no more false positives to the view's own
    than the split head's zoom added on the same cameras (`reference_zoom_cameras_fp` less
    `reference_cameras_fp`). The threshold also decides which crop looks are quiet enough to learn, so each
    candidate runs the predictor again: a coarse `step` up, then halves down to `precision`. `layout` is
    the validation cameras' folder (`build_layout` of the manifest's validation-cameras.txt).
    """
    from hazardwatch.contract import Hazard
    from hazardwatch.edge.camera_config import ZoomConfig
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector
    from hazardwatch.models.evaluate_cameras import evaluate_cameras

    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    metrics = manifest["metrics"]
    allowed = int(metrics["reference_zoom_cameras_fp"]) - int(metrics["reference_cameras_fp"])
    trial_dir = work_dir / "zoom-trial"
    trial_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(manifest_path.parent / manifest["file"], trial_dir / manifest["file"])

    def added(threshold: float) -> int:
        zoom = {**manifest["reference"]["zoom"], "threshold": round(threshold, 4)}
        trial = {**manifest, "reference": {**manifest["reference"], "zoom": zoom}}
        path = trial_dir / manifest_path.name
        path.write_text(json.dumps(trial, indent=2) + "\n", encoding="utf-8")
        res = evaluate_cameras(OnnxDetector(path, threads=1), Hazard.SMOKE, layout, zoom=ZoomConfig())
        extra = int(res["fp"]) - int(res["without_zoom"]["fp"])
        log.info(
            "zoom crop threshold %.4f: %d false positives more than the view's (%d allowed)", threshold, extra, allowed
        )
        return extra

    return lowest_threshold(added, float(manifest["reference"]["zoom"]["threshold"]), allowed, step, precision)


def stricter_when_shorter(thresholds: Sequence[float]) -> list[float]:
    """Warm-up thresholds in order of growing reference length, each raised to the strictest of the longer
    steps': a camera that has learnt fewer looks is never judged more leniently than one that has learnt
    more. Each step is picked on its own (about 150 plumes), so the picks alone need not fall in order."""
    out = list(thresholds)
    for k in range(len(out) - 2, -1, -1):
        out[k] = max(out[k], out[k + 1])
    return out


def lowest_threshold(
    extra_fp: Callable[[float], int], start: float, allowed: int, step: float = 0.04, precision: float = 0.01
) -> float:
    """The lowest threshold from `start` (to within `precision`, never over 0.999) whose `extra_fp` is at
    most `allowed`, for an `extra_fp` that does not grow as the threshold rises: steps up, then halves."""
    low = start
    if extra_fp(low) <= allowed:
        return round(low, 4)
    high = min(0.999, low + step)
    while high < 0.999 and extra_fp(high) > allowed:
        low, high = high, min(0.999, high + step)
    while high - low > precision:
        mid = (low + high) / 2
        if extra_fp(mid) <= allowed:
            high = mid
        else:
            low = mid
    return round(high, 4)


def _ship_graph(model: onnx.ModelProto, manifest: dict[str, Any], out_dir: Path, name: str) -> Path:
    path = out_dir / f"{name}.onnx"
    onnx.save(model, path)
    manifest = {**manifest, "name": name, "file": path.name, "sha256": sha256_file(path)}
    mpath = out_dir / f"{name}.json"
    mpath.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return mpath


def train_smoke_reference(
    data_dirs: Sequence[Path],
    model_dir: Path,
    work_dir: Path,
    command: str,
    review: Review,
    version: str,
    epochs: int = 6,
    combine: str = "geo",
    hard_share: float = 0.0,
    pca_cells: int = 150,
    fine_projection: str = "branch",
) -> dict[str, Any]:
    import torch

    from hazardwatch.contract import Hazard
    from hazardwatch.edge.camera_config import ZoomConfig
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector
    from hazardwatch.models import smoke_reference as sr
    from hazardwatch.models.data import assign_view_groups, smoke_samples, split_samples
    from hazardwatch.models.evaluate_cameras import evaluate_cameras
    from hazardwatch.models.smoke_reference_graph import build_graph, check_graph
    from hazardwatch.models.train import training_record
    from hazardwatch.models.zoom_threshold import pick_zoom_threshold, zoom_pair_scores

    torch.set_num_threads(1)  # the head is small; training shares 2-core machines
    name = f"{model_dir.name}-int8"
    base_path = model_dir / f"{name}.json"
    base = json.loads(base_path.read_text(encoding="utf-8"))
    cold = cold_graph(onnx.load(model_dir / base["file"]))
    samples = assign_view_groups(smoke_samples(data_dirs))
    train, val = (review.apply(part) for part in split_samples(samples))
    everything = [*train, *val]
    train_idx = np.arange(len(train))
    val_idx = np.arange(len(train), len(everything))
    n_boxed = sum(s.path.name in review.boxed for s in everything)
    log.info(
        "reference head: %d training frames (%d positives), %d validation frames; %d frames boxed by a reviewer",
        len(train),
        sum(s.positive for s in train),
        len(val),
        n_boxed,
    )

    learn = {} if fine_projection == "pca" else {sr.FINE.name: fine_projection}
    proj, data = _embedded(cold, train, everything, work_dir, pca_cells, keep_raw=list(learn))
    positive = np.array([s.positive for s in everything])

    # 1. the recipe on the view-disjoint split: what an unseen camera can expect
    head = sr.train_head(
        everything, data, train_idx, epochs=epochs, combine=combine, hard_share=hard_share, learn=learn,
        fitted=proj,
    )  # fmt: skip
    val_pool = np.zeros(len(everything), bool)
    val_pool[val_idx] = True
    scores, labels, areas = sr.score_pairs(head, everything, data, val_idx, val_pool & ~positive)
    figures: dict[str, float | int | str] = {"reference_auc": round(sr.auc(labels, scores), 4)}
    figures["reference_boxed_reviewed_frames"] = n_boxed
    for fpr, key in ((0.005, "1_per_200"), (0.01, "1pct"), (0.02, "2pct")):
        recall, _ = sr.recall_at_fpr(labels, scores, fpr)
        figures[f"reference_recall_at_{key}_fp"] = round(recall, 4)
    threshold = _operating_threshold(labels, scores)
    for band, recall in sr.recall_by_size(labels, areas, scores, threshold).items():
        figures[f"reference_recall_{band}_plumes"] = round(recall, 4)
    # A camera still learning its normal: the same head against shorter references, each at a threshold of
    # its own (never under a longer step's), so the first minutes of a camera are not spent on the cold
    # path alone.
    warming_pairs = [
        sr.score_pairs(head, everything, data, val_idx, val_pool & ~positive, looks=looks)[:2] for looks in WARMUP_LOOKS
    ]
    picks = [max(threshold, _operating_threshold(labels_, scores_, WARMUP_FPR)) for scores_, labels_ in warming_pairs]
    warmup = []
    steps = zip(WARMUP_LOOKS, stricter_when_shorter(picks), warming_pairs, strict=True)
    for looks, w_threshold, (w_scores, w_labels) in steps:
        warmup.append({"looks": looks, "threshold": round(w_threshold, 4)})
        figures[f"reference_warmup_{looks}_recall_at_1_per_400_fp"] = round(
            float((w_scores[w_labels] > w_threshold).mean()), 4
        )
    data_root = Path(data_dirs[0]).resolve().parent
    layout_lines = camera_layout(val, data_root)
    (model_dir / LAYOUT_FILE).write_text("\n".join(layout_lines) + "\n", encoding="utf-8")
    spec = {
        "scales": [{"dim": sc.dim, "grid": list(sc.grid)} for sc in sr.SCALES],
        "grid": list(sr.FINEST.grid),
        "threshold": round(threshold, 4),
        "looks": sr.K_REFERENCE,
        "warmup": warmup,
        "zoom": {**ZOOM, "threshold": round(threshold, 4)},  # until its own is picked below
    }
    split_dir = work_dir / "split"
    split_dir.mkdir(parents=True, exist_ok=True)
    split_graph = build_graph(cold, proj, head)
    split_manifest = _ship_graph(split_graph, {**base, "reference": spec, "metrics": {}}, split_dir, name)
    zoom = zoom_pair_scores(
        OnnxDetector(split_manifest, threads=1), everything, data.prints, val_idx, val_pool & ~positive,
        ZoomConfig().band,
    )  # fmt: skip
    if len(zoom.labels) != len(labels) or (zoom.labels != labels).any():
        raise RuntimeError("the zoom pairs were not drawn as the view's pairs were")
    zoom_threshold = pick_zoom_threshold(zoom, threshold, ZOOM_FPR)
    spec["zoom"] = {**ZOOM, "threshold": round(zoom_threshold, 4)}
    figures.update(_zoom_figures(labels, areas, scores, threshold, zoom.scores, zoom_threshold))
    split_manifest = _ship_graph(split_graph, {**base, "reference": spec, "metrics": {}}, split_dir, name)
    per_camera = evaluate_cameras(
        OnnxDetector(split_manifest, threads=1),
        Hazard.SMOKE,
        build_layout(layout_lines, data_root, work_dir / "layout"),
    )
    for key in ("precision", "recall", "f1", "tp", "fp", "fn", "tn", "n_pos", "n_neg"):
        figures[f"reference_cameras_{key}"] = per_camera[key]
    figures["reference_cameras_cold_recall"] = per_camera["cold"]["recall"]
    figures["reference_cameras_cold_precision"] = per_camera["cold"]["precision"]
    figures["reference_false_alerts_per_1000_quiet_looks"] = per_camera["events"]["false_alerts_per_1000_quiet_looks"]
    figures["reference_median_looks_to_alert"] = per_camera["events"]["median_looks_to_alert"] or -1
    figures["reference_cameras"] = len(per_camera["per_camera"])
    warming = evaluate_cameras(
        OnnxDetector(split_manifest, threads=1),
        Hazard.SMOKE,
        build_layout(warming_layout(layout_lines), data_root, work_dir / "layout-warming"),
    )
    for key in ("precision", "recall", "tp", "fp"):
        figures[f"reference_warmup_cameras_{key}"] = warming[key]
    zoomed = evaluate_cameras(
        OnnxDetector(split_manifest, threads=1),
        Hazard.SMOKE,
        work_dir / "layout",
        zoom=ZoomConfig(),
    )
    for key in ("precision", "recall", "tp", "fp"):
        figures[f"reference_zoom_cameras_{key}"] = zoomed[key]
    warming_events = warming["events"]
    figures["reference_warmup_false_alerts_per_1000_quiet_looks"] = warming_events["false_alerts_per_1000_quiet_looks"]
    stamps = model_dir / STAMPS_FILE
    if stamps.is_file():
        from hazardwatch.models.stamps import read_times

        times = read_times(stamps)
        day_lines = timeline_layout(layout_lines, times)
        (model_dir / DAYS_FILE).write_text("\n".join(day_lines) + "\n", encoding="utf-8")
        days = build_layout(day_lines, data_root, work_dir / "days", times)
        figures.update(timeline_figures(OnnxDetector(split_manifest, threads=1), days))
    log.info("view-disjoint figures: %s", figures)

    # 2. the shipped head: the same recipe on every view group (the fitted projection stays the training
    # one; a trained stride-16 embedding is trained again with the head)
    final = sr.train_head(
        everything, data, np.arange(len(everything)), epochs=epochs, combine=combine, hard_share=hard_share,
        learn=learn, fitted=proj,
    )  # fmt: skip
    graph = build_graph(cold, proj, final)
    check_graph(graph, final, everything[0].path)
    torch.save({"head": final.state_dict(), "proj": proj}, work_dir / "reference-head.pt")
    metrics = {k: v for k, v in base.get("metrics", {}).items() if not str(k).startswith("reference_")}
    manifest = {
        **base,
        "version": version,
        "reference": spec,
        "metrics": {**metrics, **figures},
        "training": {**training_record(command), "cold_path": _cold_command(base)},
        "notes": base.get("notes", "").split(" Since 1.2.0")[0]
        + " Since 1.2.0 the graph also compares each look with its camera's learnt normal (input `reference`, "
        "outputs `embedding` and `adapted`; docs/models.md). The reference head was trained on every view group "
        "after its recipe was measured on the view-disjoint split: the reference_* metrics are those view-disjoint "
        "figures, reference_cameras_* per camera through the edge's predictor on validation-cameras.txt. Since 1.6.0 a "
        "camera's reference is used while it still learns, from its first warm-up step (reference.warmup: each step "
        "a stricter threshold, picked at 1 false positive per 400 smoke-free frames of unseen views); "
        f"reference_warmup_cameras_* are the validation cameras after their first {WARMUP_CAMERA_FRAMES} quiet frames; "
        "reference_zoom_cameras_* the same cameras looking at their horizon band closer (reference.zoom, camera config "
        "hazards.smoke.zoom; its crop threshold picked on the split's pairs at 1 false positive per 200, "
        "reference_zoom_recall* per frame on that split with it; since 1.9.0 the shipped head's own crop threshold "
        "is raised until its zoom adds no more false positives on those cameras than the split head's did, "
        "reference_zoom_threshold_split the split's).",
    }
    shipped = _ship_graph(graph, manifest, model_dir, name)
    crop_threshold = shipped_zoom_threshold(shipped, work_dir / "layout", work_dir)
    if crop_threshold != round(zoom_threshold, 4):
        figures["reference_zoom_threshold_split"] = round(zoom_threshold, 4)
        spec["zoom"] = {**ZOOM, "threshold": crop_threshold}
        manifest = {**manifest, "reference": spec, "metrics": {**metrics, **figures}}
        shipped = _ship_graph(graph, manifest, model_dir, name)
    return {"manifest": str(shipped), "threshold": threshold, **figures}
