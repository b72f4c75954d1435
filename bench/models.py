"""Per-model inference cost on this machine, as the edge runs it (OnnxDetector.detect, 2 threads).

Prints one line per measurement and, as its last line, one JSON object keyed by model name:
{name: {"input": "WxH", "fp32": {"batch1_ms": .., "batch8_ms_per_frame": ..}, "int8": {...},
"int8_speedup_batch1": fp32 / int8}}.
fp32 entries appear when var/models/<name>/fp32/ holds the graph `models train` exported.
Usage: .venv/bin/python bench/models.py [--reps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hazardwatch.manifest import read_manifest

MODELS = Path(__file__).resolve().parents[1] / "models"
# fp32 graphs are not shipped (about 14 MB each); `models train` leaves them here.
FP32 = Path(__file__).resolve().parents[1] / "var" / "models"


def _time(det, frames, reps: int) -> float:
    det.detect(frames)  # warm
    t0 = time.perf_counter()
    for _ in range(reps):
        det.detect(frames)
    return 1000.0 * (time.perf_counter() - t0) / (reps * len(frames))


def main() -> None:
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector
    from hazardwatch.edge.detect.scene_change import SceneChangeDetector

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    out: dict[str, dict] = {}
    for path in sorted(MODELS.glob("*/*.json")) + sorted(FP32.glob("*/fp32/*.json")):
        try:
            m = read_manifest(path)
        except ValueError:
            continue
        if m.name.startswith("red-patch"):  # the test graph, not a hazard model
            continue
        base = m.name.removesuffix("-int8")
        # Frames at the size the model is fed (cameras give larger frames; resize is included).
        frame = rng.integers(0, 255, (m.input.height, m.input.width, 3), dtype=np.uint8)
        entry = out.setdefault(base, {"input": f"{m.input.width}x{m.input.height}", "hazard": m.hazard.value})
        if m.runtime == "scene_change":
            det = SceneChangeDetector(path)
            frame = rng.integers(0, 255, (432, 768, 3), dtype=np.uint8)
            entry["input"] = f"768x432 analysed at {m.input.width}x{m.input.height}"
        else:
            det = OnnxDetector(path, threads=args.threads)
        b1 = _time(det, [frame], args.reps)
        bn = _time(det, [frame] * args.batch, max(2, args.reps // args.batch))
        entry[m.precision if m.runtime == "onnx" else "cpu"] = {
            "batch1_ms": round(b1, 2),
            f"batch{args.batch}_ms_per_frame": round(bn, 2),
        }
        print(f"{m.name:28s} {m.precision:5s} batch1 {b1:7.2f} ms  batch{args.batch} {bn:7.2f} ms/frame", flush=True)
    for entry in out.values():  # the baseline: the fp32 graph, timed in this same process
        if "fp32" in entry and "int8" in entry:
            entry["int8_speedup_batch1"] = round(entry["fp32"]["batch1_ms"] / entry["int8"]["batch1_ms"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
