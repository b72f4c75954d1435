"""Camera diagnosis benchmark: detection and false-alarm rates per diagnosis, and CPU per frame.

    .venv/bin/python bench/diagnose.py [--frames 60] [--seed 0] [--skip-real]

Every base frame is a "camera": real frames from ../shared/data (HPWREN smoke-camera stills, the
FloodX yard camera, frames of the road video). A fresh `CameraDiagnoser` learns its reference
from `warmup` looks of the unchanged frame (each look with its own sensor noise, exposure drift and
JPEG round trip, see hazardwatch/harness/degrade.py), then sees three looks of a degraded version.

- detection: the expected diagnosis is in effect by the third degraded look; `looks_to_detect`
  says after how many. Three clean looks later it must be gone again (`recovered`).
- false alarm (degraded scenarios): another degraded diagnosis in effect that the scenario does
  not excuse (a full dark cover may also read as black, and so on).
- false alarm (negatives): any degraded diagnosis in effect during six looks of the unchanged
  scene, of it under synthetic fog, haze, heavy rain, dusk, or stronger compression.
- real sequences (--skip-real leaves them out): HPWREN stills grouped by camera view (structure
  correlation), FloodX frames in time order, and the road video one frame a second; every look
  after warm-up counts, and any degraded diagnosis is a false alarm (these views are unchanged;
  haze, cloud, glare and IR switches are common in them).

Progress goes to stdout; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.edge.config import DiagnoseConfig
from hazardwatch.edge.diagnose import CameraDiagnoser
from hazardwatch.edge.diagnose.features import analyse
from hazardwatch.harness import degrade as D
from hazardwatch.harness.media import shared_data_dir

WARMUP = 6
DEGRADED_LOOKS = 3
NEGATIVE_LOOKS = 6

Make = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# name -> (make the degraded frame, expected diagnosis (a|b: either), other diagnoses it may also raise)
DEGRADATIONS: dict[str, tuple[Make, str, frozenset[str]]] = {
    "blur_0.4pct": (lambda im, r: D.blur(im, 0.004), "blurred", frozenset()),
    "blur_0.8pct": (lambda im, r: D.blur(im, 0.008), "blurred", frozenset({"covered"})),
    "blur_1.5pct": (lambda im, r: D.blur(im, 0.015), "blurred", frozenset({"covered", "blank"})),
    "cover_40pct_left": (lambda im, r: D.cover(im, 0.4, r, side="left"), "covered", frozenset()),
    "cover_50pct_bottom": (lambda im, r: D.cover(im, 0.5, r, side="bottom"), "covered", frozenset()),
    "cover_40pct_blob": (lambda im, r: D.cover(im, 0.4, r, side="blob"), "covered", frozenset()),
    "cover_60pct_right_light": (
        lambda im, r: D.cover(im, 0.6, r, colour=(185, 190, 195), side="right"),
        "covered",
        frozenset(),
    ),
    "cover_full": (lambda im, r: D.cover(im, 1.0, r), "covered|blank|black", frozenset()),
    "shift_5pct": (lambda im, r: D.shift(im, 0.05), "view_shifted", frozenset()),
    "shift_10pct": (lambda im, r: D.shift(im, -0.10), "view_shifted", frozenset()),
    "shift_5pct_down": (lambda im, r: D.shift(im, 0.0, 0.05), "view_shifted", frozenset()),
    "pan_25pct": (lambda im, r: D.shift(im, 0.25), "view_shifted", frozenset()),
    "rotate_5deg": (lambda im, r: D.shift(im, 0.0, 0.0, 5.0), "view_shifted", frozenset()),
    "rotate_15deg": (lambda im, r: D.shift(im, 0.0, 0.0, 15.0), "view_shifted", frozenset()),
    # issue 16: a board over most of the lens (read as night-ir before), mud on the lens, water spray
    "board_85pct_black_left": (lambda im, r: D.cover(im, 0.85, r, colour=(8, 8, 8)), "covered", frozenset({"black"})),
    "board_85pct_dark_bottom": (
        lambda im, r: D.cover(im, 0.85, r, colour=(20, 24, 28), side="bottom"),
        "covered",
        frozenset({"black"}),
    ),
    "lens_dirt": (lambda im, r: D.dirt(im, r), "covered|blurred", frozenset({"covered", "blurred"})),
    "spray": (lambda im, r: D.spray(im, r), "blurred|covered", frozenset({"covered", "blurred"})),
    "black": (lambda im, r: D.black(im, r), "black", frozenset()),
    "overexposed_x3": (lambda im, r: D.overexpose(im, 3.0), "overexposed", frozenset()),
    "overexposed_x6": (lambda im, r: D.overexpose(im, 6.0), "overexposed", frozenset({"blank"})),
}

# Frozen: the same decoded frame at every look (no fresh noise).
FROZEN = "frozen"

NEGATIVES: dict[str, Make] = {
    "unchanged": lambda im, r: im,
    "haze": lambda im, r: D.fog(im, 0.2),
    "fog_light": lambda im, r: D.fog(im, 0.35),
    "fog_dense": lambda im, r: D.fog(im, 0.6),
    "fog_very_dense": lambda im, r: D.fog(im, 0.9),
    "fog_uniform_50": lambda im, r: D.uniform_fog(im, 0.5),
    "fog_uniform_25": lambda im, r: D.uniform_fog(im, 0.25),
    "heavy_rain": lambda im, r: D.rain(im, r),
    "dusk_x0.5": lambda im, r: np.clip(im.astype(np.float32) * 0.5, 0, 255).astype(np.uint8),
    "jpeg_q30": lambda im, r: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], 1),
}


def base_frames(data: Path, n: int, rng: random.Random) -> list[tuple[str, np.ndarray]]:
    """A sample of real frames: mostly HPWREN stills, plus FloodX and road-video frames."""
    hp = sorted((data / "smoke-hpwren/unlabeled_hpwren").glob("*.jp*g"))
    smoke = sorted((data / "smoke-hpwren/smoke").glob("*.jp*g"))
    flood = sorted((data / "flood-floodx").glob("*/*.tif"))
    picks: list[tuple[str, np.ndarray]] = []
    n_flood = max(1, n // 10)
    n_road = max(1, n // 10)
    n_smoke = max(1, n // 10)
    for p in rng.sample(hp, n - n_flood - n_road - n_smoke) + rng.sample(smoke, n_smoke):
        picks.append(("hpwren", cv2.imread(str(p))))
    for p in rng.sample(flood, min(n_flood, len(flood))):
        img = cv2.imread(str(p))
        picks.append(("floodx", cv2.resize(img, (640, round(img.shape[0] * 640 / img.shape[1])))))
    for img in video_frames(data / "media-intel-road/traffic_road/car-detection.mp4", every_s=3.0)[:n_road]:
        picks.append(("road", img))
    return picks


def video_frames(path: Path, every_s: float) -> list[np.ndarray]:
    """One decoded frame every `every_s` seconds of a video."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(fps * every_s))
    frames, k = [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if k % step == 0:
            frames.append(img)
        k += 1
    cap.release()
    return frames


def is_grey(img: np.ndarray) -> bool:
    """A night / IR frame: its degraded versions stay greyscale, as the camera's would."""
    f = analyse(img)
    return f.saturation < 2.0 and float(f.block_saturation.max()) < 6.0


def warmed(cfg: DiagnoseConfig, img: np.ndarray, rng: np.random.Generator, clock: list[float]) -> CameraDiagnoser:
    diag = CameraDiagnoser(cfg, streaming=True)
    for _ in range(WARMUP):
        clock[0] += 30.0
        diag.observe(D.look(img, rng), clock[0])
    return diag


def run_synthetic(cfg: DiagnoseConfig, frames: list[tuple[str, np.ndarray]], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    det: dict[str, list[int | None]] = defaultdict(list)
    recovered: dict[str, list[bool]] = defaultdict(list)
    false_deg: dict[str, int] = defaultdict(int)
    neg_fa: dict[str, int] = defaultdict(int)
    neg_fa_names: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    misses: list[str] = []
    warm_false = 0
    clock = [1.7e9]
    for idx, (src, img) in enumerate(frames):
        base = warmed(cfg, img, rng, clock)
        if base.current.degraded:
            warm_false += 1
        scenarios: list[tuple[str, Make | None, str, frozenset[str]]] = [
            (name, make, exp, ok) for name, (make, exp, ok) in DEGRADATIONS.items()
        ]
        scenarios.append((FROZEN, None, "frozen", frozenset()))
        for name, make, expected, excused in scenarios:
            diag = copy.deepcopy(base)
            frozen_frame = D.look(img, rng)
            degraded = make(img, rng) if make else None
            if degraded is not None and is_grey(img):
                degraded = D.greyscale(degraded)  # an IR camera sees a cover in grey too
            found: int | None = None
            others = False
            for k in range(1, DEGRADED_LOOKS + 1):
                clock[0] += 30.0
                frame = frozen_frame if degraded is None else D.look(degraded, rng)
                d = diag.observe(frame, clock[0])
                if found is None and set(expected.split("|")) & set(d.active):
                    found = k
                if set(d.active) - set(expected.split("|")) - excused:
                    others = True
            det[name].append(found)
            if found is None:
                misses.append(f"{name}:{src}#{idx}")
            if others:
                false_deg[name] += 1
            ok = False
            for _ in range(cfg.leave_looks + 1):
                clock[0] += 30.0
                ok = not diag.observe(D.look(img, rng), clock[0]).degraded
            recovered[name].append(ok)
        for name, make in NEGATIVES.items():
            diag = copy.deepcopy(base)
            variant = make(img, rng)
            if is_grey(img):
                variant = D.greyscale(variant)
            flagged = False
            for _ in range(NEGATIVE_LOOKS):
                clock[0] += 30.0
                d = diag.observe(D.look(variant, rng), clock[0])
                if d.degraded:
                    flagged = True
                    for a in d.active:
                        neg_fa_names[name][a] += 1
            neg_fa[name] += int(flagged)
        print(f"  frame {idx + 1}/{len(frames)} ({src})", flush=True)
    n = len(frames)
    detection = {
        name: {
            "detected": round(sum(x is not None for x in v) / n, 3),
            "mean_looks_to_detect": round(float(np.mean([x for x in v if x is not None])), 2)
            if any(x is not None for x in v)
            else None,
            "recovered": round(sum(recovered[name]) / n, 3),
            "other_false_diagnosis": round(false_deg[name] / n, 3),
        }
        for name, v in det.items()
    }
    negatives = {name: round(neg_fa[name] / n, 3) for name in NEGATIVES}
    return {
        "frames": n,
        "detection": detection,
        "negative_false_alarm_rate": negatives,
        "negative_false_alarm_diagnoses": {k: dict(v) for k, v in neg_fa_names.items()},
        "false_during_warmup": warm_false,
        "misses": misses[:40],
    }


def hpwren_views(data: Path, min_size: int, max_views: int, seed: int) -> list[list[Path]]:
    """Group HPWREN stills into camera views by structure correlation (greedy, threshold 0.55)."""
    paths = sorted((data / "smoke-hpwren/unlabeled_hpwren").glob("*.jp*g"))
    maps = np.stack([analyse(cv2.imread(str(p))).structure.ravel() for p in paths])
    gram = maps @ maps.T
    left = set(range(len(paths)))
    views: list[list[Path]] = []
    for i in range(len(paths)):
        if i not in left:
            continue
        members = [j for j in sorted(left) if gram[i, j] > 0.55]
        left -= set(members)
        if len(members) >= min_size:
            views.append([paths[j] for j in members])
    random.Random(seed).shuffle(views)
    return views[:max_views]


def run_real(cfg: DiagnoseConfig, data: Path, seed: int) -> dict:
    """Real unchanged sequences; every degraded diagnosis after warm-up is a false alarm."""
    rng = np.random.default_rng(seed)
    seqs: dict[str, list[list[np.ndarray]]] = defaultdict(list)
    for view in hpwren_views(data, min_size=8, max_views=40, seed=seed):
        seqs["hpwren_views"].append([cv2.imread(str(p)) for p in view[:30]])
    flood = sorted((data / "flood-floodx").glob("*/*.tif"), key=lambda p: p.name)
    if flood:
        seqs["floodx_sequence"].append(
            [
                cv2.resize(img, (640, round(img.shape[0] * 640 / img.shape[1])))
                for img in map(cv2.imread, map(str, flood))
            ]
        )
    road = video_frames(data / "media-intel-road/traffic_road/car-detection.mp4", every_s=1.0)
    if road:
        seqs["road_video"].append(road)
    fire = video_frames(data / "media-furg-fire/fire/house6.mp4", every_s=1.0)
    if fire:
        seqs["fire_video"].append(fire)
    out: dict[str, dict] = {}
    clock = 1.7e9
    for kind, groups in seqs.items():
        looks = flagged = 0
        names: dict[str, int] = defaultdict(int)
        info: dict[str, int] = defaultdict(int)
        for frames in groups:
            diag = CameraDiagnoser(cfg, streaming=True)
            for k, img in enumerate(frames):
                clock += 30.0
                d = diag.observe(D.look(img, rng, noise=1.0, quality=90), clock)
                if k < cfg.warmup_looks:
                    continue
                looks += 1
                flagged += int(d.degraded)
                for a in d.active:
                    names[a] += 1
                for a in d.info:
                    info[a] += 1
        out[kind] = {
            "sequences": len(groups),
            "looks": looks,
            "false_alarm_rate_per_look": round(flagged / max(looks, 1), 4),
            "false_diagnoses": dict(names),
            "informational": dict(info),
        }
        print(f"  real {kind}: {out[kind]}", flush=True)
    return out


def cpu_cost(cfg: DiagnoseConfig, frames: list[tuple[str, np.ndarray]]) -> dict:
    """Thread CPU per observe() at 640x480, 1280x720 and 1920x1080 (one thread)."""
    cv2.setNumThreads(1)
    out = {}
    rng = np.random.default_rng(1)
    imgs = [D.look(img, rng) for _, img in frames[:10]]
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        sized = [cv2.resize(im, (w, h)) for im in imgs]
        diag = CameraDiagnoser(cfg, streaming=True)
        at = 1.7e9
        for im in sized[:4]:
            at += 1
            diag.observe(im, at)
        times = []
        for _rep in range(30):
            for im in sized:
                at += 1
                start = time.thread_time()
                diag.observe(im, at)
                times.append(time.thread_time() - start)
        out[f"{w}x{h}"] = {
            "mean_ms": round(1000 * float(np.mean(times)), 3),
            "p95_ms": round(1000 * float(np.percentile(times, 95)), 3),
        }
    cv2.setNumThreads(-1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data not found (set HAZARDWATCH_SHARED_DATA)")
    cfg = DiagnoseConfig()
    frames = base_frames(data, args.frames, random.Random(args.seed))
    started = time.time()
    print(f"synthetic degradations on {len(frames)} real frames", flush=True)
    synthetic = run_synthetic(cfg, frames, args.seed)
    real = {} if args.skip_real else run_real(cfg, data, args.seed)
    cost = cpu_cost(cfg, frames)
    print(f"cpu per frame: {cost}", flush=True)
    det = synthetic["detection"]
    summary = {
        "bench": "diagnose",
        "config": cfg.model_dump(),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "min_detection_rate": min(v["detected"] for v in det.values()),
        "max_looks_to_detect": max((v["mean_looks_to_detect"] or 9) for v in det.values()),
        "max_negative_false_alarm_rate": max(synthetic["negative_false_alarm_rate"].values()),
        "cpu_ms_per_frame": cost,
        "synthetic": synthetic,
        "real_sequences": real,
        "wall_s": round(time.time() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
