"""Per-model inference cost on this machine, as the edge runs it (OnnxDetector.detect, 2 threads).

Prints one line per measurement and, as its last line, one JSON object keyed by model name:
{name: {"input": "WxH", "fp32": {"batch1_ms": .., "batch8_ms_per_frame": ..}, "int8": {...},
"int8_speedup_batch1": fp32 / int8}}.
fp32 entries appear when var/models/<name>/fp32/ holds the graph `models train` exported.
A model that learns each camera's normal also gets "reference": what the reference adds per look
(`added_ms_per_look`: a predictor look scored against a learnt reference, with the bank's update,
minus the same look through the graph without the reference head, interleaved in this process,
medians) and `bytes_per_camera`
(day and IR references learnt), and for a model with `reference.zoom` what a camera looking at its
horizon band closer costs ("zoom": per look against a plain look, and its references' memory). An int8
graph also gets "precision_mode": the same look with ORT's
x64 precision mode (what the edge runs where the default int8 kernels saturate: AVX2 without VNNI) and
without it (what it runs where they are exact: VNNI or AMX), interleaved, with `cost_ratio` and
`exact_int8_kernels` (this CPU's choice).
Usage: .venv/bin/python bench/models.py [--reps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
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


def _interleaved_ms(
    first: Callable[[float], object], second: Callable[[float], object], n: int, start: float
) -> tuple[float, float]:
    """Median ms of each of two looks taken in turn (`at` = start, start + 1, ...): another process on the
    box slows both sides alike."""
    spent: tuple[list[float], list[float]] = ([], [])
    for k in range(n):
        for look, times in zip((first, second), spent, strict=True):
            t0 = time.perf_counter()
            look(start + k)
            times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(spent[0])), 1000.0 * float(np.median(spent[1]))


def _reference_cost(path: Path, frame: np.ndarray, reps: int, threads: int) -> dict:
    """Per-look cost and memory of a camera's reference, against the same graph without the reference head."""
    import tempfile

    import onnx

    from hazardwatch.edge.config import CameraConfig, ConfirmConfig
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector
    from hazardwatch.edge.predictor import LookRequest, Predictor
    from hazardwatch.edge.reference import ReferenceBank, ReferencePolicy
    from hazardwatch.manifest import sha256_file
    from hazardwatch.models.train_reference import cold_graph

    manifest = json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        cold_path = Path(tmp) / "cold.onnx"
        onnx.save(cold_graph(onnx.load(path.parent / manifest["file"])), cold_path)
        cold_manifest = {**manifest, "file": cold_path.name, "sha256": sha256_file(cold_path)}
        cold_manifest.pop("reference")
        (Path(tmp) / "cold.json").write_text(json.dumps(cold_manifest))
        cold = OnnxDetector(Path(tmp) / "cold.json", threads=threads)
        det = OnnxDetector(path, threads=threads)
        hazard = det.hazard
        cams = [CameraConfig(id=f"c{k}", source="rtsp://127.0.0.1/x", hazards={hazard: {}}) for k in range(2)]
        zooms = det.reference is not None and det.reference.zoom is not None
        if zooms:  # z0 looks at its horizon band closer (camera config hazards.<h>.zoom)
            cams.append(CameraConfig(id="z0", source="rtsp://127.0.0.1/x", hazards={hazard: {"zoom": {}}}))
        # Looks 1 s apart, each taken and learnt two intervals later (as the edge's default settle_looks):
        # the memory then includes the looks waiting to be learnt.
        bank = ReferenceBank(ReferencePolicy(min_looks=4, min_interval_s=1.0, horizon_looks=500, settle_looks=2))
        confirm = {(c.id, hazard): ConfirmConfig() for c in cams}
        pred = Predictor(cams, {hazard: det}, confirm, bank, learn_below=1.0)
        baseline = Predictor(cams, {hazard: cold}, confirm)  # the same look without the reference head
        for k in range(12):  # c0 (and z0 with its crops) learn day and IR, c1 stays cold
            for cam in ("c0", "z0") if zooms else ("c0",):
                pred.process([LookRequest(cam, frame, float(k), frozenset({hazard}), mode=("day", "ir")[k % 2])])

        def with_reference(at: float) -> None:
            pred.process([LookRequest("c0", frame, at, frozenset({hazard}))])

        def without(at: float) -> None:
            baseline.process([LookRequest("c0", frame, at, frozenset({hazard}))])

        for k in range(3):  # warm
            with_reference(100.0 + k)
            without(100.0 + k)
        cold_ms, ref_ms = _interleaved_ms(without, with_reference, max(reps, 30), 200.0)
        out = {
            "cold_graph_ms": round(cold_ms, 2),
            "with_reference_ms": round(ref_ms, 2),
            "added_ms_per_look": round(ref_ms - cold_ms, 2),
            "bytes_per_camera": bank.nbytes("c0"),
            "mib_per_camera": round(bank.nbytes("c0") / 2**20, 3),
        }
        if zooms:  # the zoomed look against the plain one, interleaved

            def zoomed(at: float) -> None:
                pred.process([LookRequest("z0", frame, at, frozenset({hazard}))])

            plain_ms, zoom_ms = _interleaved_ms(with_reference, zoomed, max(reps, 10), 300.0)
            out["zoom"] = {
                "with_zoom_ms": round(zoom_ms, 2),
                "x_of_a_plain_look": round(zoom_ms / plain_ms, 2),
                "mib_per_camera": round(bank.nbytes("z0") / 2**20, 3),
            }
    return out


def _precision_mode_cost(path: Path, frame: np.ndarray, reps: int, threads: int) -> dict:
    """The edge's precise sessions against ORT's default kernels, interleaved look by look."""
    from hazardwatch.edge.detect.onnx_detector import OnnxDetector, exact_int8_kernels

    precise_det = OnnxDetector(path, threads=threads, precise=True)
    fast_det = OnnxDetector(path, threads=threads, precise=False)
    precise, fast = _interleaved_ms(
        lambda _at: precise_det.detect([frame]), lambda _at: fast_det.detect([frame]), reps, 0.0
    )
    return {
        "precise_ms": round(precise, 2),
        "default_kernels_ms": round(fast, 2),
        "cost_ratio": round(precise / fast, 3),
        "exact_int8_kernels": exact_int8_kernels(),  # then the edge runs the default kernels
    }


def main() -> None:
    from hazardwatch.edge.detect.registry import build_detector

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
        det = build_detector(path, threads=args.threads)
        if m.runtime == "scene_change":  # analyses the camera's own frame size, downscaled inside
            frame = rng.integers(0, 255, (432, 768, 3), dtype=np.uint8)
            entry["input"] = f"768x432 analysed at {m.input.width}x{m.input.height}"
        b1 = _time(det, [frame], args.reps)
        bn = _time(det, [frame] * args.batch, max(2, args.reps // args.batch))
        entry[m.precision if m.runtime == "onnx" else "cpu"] = {
            "batch1_ms": round(b1, 2),
            f"batch{args.batch}_ms_per_frame": round(bn, 2),
        }
        print(f"{m.name:28s} {m.precision:5s} batch1 {b1:7.2f} ms  batch{args.batch} {bn:7.2f} ms/frame", flush=True)
        if m.runtime == "onnx" and m.precision == "int8":
            entry["precision_mode"] = pm = _precision_mode_cost(path, frame, args.reps, args.threads)
            print(
                f"{m.name:28s} precision mode: {pm['precise_ms']:.2f} ms vs {pm['default_kernels_ms']:.2f} ms with "
                f"the default kernels ({pm['cost_ratio']:.2f}x; exact default kernels, which the edge then runs: "
                f"{pm['exact_int8_kernels']})",
                flush=True,
            )
        if m.reference is not None and path.parent.parent == MODELS:
            entry["reference"] = ref = _reference_cost(path, frame, args.reps, args.threads)
            print(
                f"{m.name:28s} reference: +{ref['added_ms_per_look']:.2f} ms per look "
                f"({ref['cold_graph_ms']:.2f} cold graph -> {ref['with_reference_ms']:.2f} with the reference), "
                f"{ref['mib_per_camera']:.3f} MiB per camera (day + IR)",
                flush=True,
            )
            if "zoom" in ref:
                z = ref["zoom"]
                print(
                    f"{m.name:28s} horizon zoom: {z['with_zoom_ms']:.2f} ms per look ({z['x_of_a_plain_look']:.2f}x), "
                    f"{z['mib_per_camera']:.3f} MiB per camera (day + IR, view and crops)",
                    flush=True,
                )
    for entry in out.values():  # the baseline: the fp32 graph, timed in this same process
        if "fp32" in entry and "int8" in entry:
            entry["int8_speedup_batch1"] = round(entry["fp32"]["batch1_ms"] / entry["int8"]["batch1_ms"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
