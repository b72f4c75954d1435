"""One place that turns a model manifest into the detector the edge runs, keyed by its `runtime`.

The engine, a rollout's restore, `models/evaluate.py` and the model benches all build detectors
here, so a new runtime is one entry in `RUNTIMES` and every caller gets it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hazardwatch.edge.detect.detector import Detector
from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.edge.detect.scene_change import SceneChangeDetector
from hazardwatch.manifest import ManifestError, read_manifest

DetectorFactory = Callable[[Path, float | None, int], Detector]


def _onnx(manifest: Path, threshold: float | None, threads: int) -> Detector:
    return OnnxDetector(manifest, threshold=threshold, threads=threads)


def _scene_change(manifest: Path, threshold: float | None, threads: int) -> Detector:
    """No model file and per-camera state; runs on the inference thread alone, so `threads` is unused."""
    return SceneChangeDetector(manifest, threshold=threshold)


RUNTIMES: dict[str, DetectorFactory] = {"onnx": _onnx, "scene_change": _scene_change}


def build_detector(manifest: Path, threshold: float | None = None, threads: int = 2) -> Detector:
    """The detector for this manifest's runtime; ManifestError names the file when it cannot load."""
    runtime = read_manifest(manifest).runtime
    factory = RUNTIMES.get(runtime)
    if factory is None:
        raise ManifestError(f"{manifest}: runtime {runtime!r} has no detector (known: {', '.join(sorted(RUNTIMES))})")
    return factory(Path(manifest), threshold, threads)
