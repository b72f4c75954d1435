"""ONNX Runtime detector driven by a model manifest.

Load-time checks refuse a model whose sha256, input shape or output shape disagree with its
manifest, and a warm-up inference proves the graph runs before any camera depends on it.

On x86 CPUs that lack VNNI (AVX2 only: many edge boxes, and some CI machines) ONNX Runtime's default
uint8 x int8 kernels add pairs of products into saturating int16, so one model scores differently by
CPU: the shipped smoke model's scores moved by up to 0.88 on an AMD EPYC with AVX2 only, and its recall
at the operating point fell from 0.378 to 0.297. There every session runs int8 graphs in ORT's x64
precision mode (`session_options`), which computes what the graph says at 1.2-1.4x the time. A CPU
with VNNI (or AMX) accumulates in int32: its default kernels already score exactly what precision mode
does (0.0 difference on the shipped models' validation frames on a Xeon with VNNI) at half the time
(23.6 against 45.1 ms a smoke look), so it runs them (`exact_int8_kernels`; `bench/models.py` prints both).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np
import onnxruntime as ort

from hazardwatch.edge.detect.decode import regions_from_map, sigmoid, softmax, yolo_boxes
from hazardwatch.edge.detect.detector import ImageResult, LookContext, ReferenceInput
from hazardwatch.edge.detect.regions import RegionFilter
from hazardwatch.manifest import ManifestError, ModelManifest, OutputKind, verify_model_file

log = logging.getLogger(__name__)

EXACT_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # int32 accumulation in hardware


@functools.cache
def exact_int8_kernels() -> bool:
    """Whether this CPU's default int8 kernels are exact (x86 with VNNI or AMX): then precision mode only
    costs time. False where it cannot tell (no /proc/cpuinfo): precise is the safe side."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return False
    return bool(flags & EXACT_INT8_FLAGS)


def session_options(threads: int, precise: bool | None = None) -> ort.SessionOptions:
    """Options every hazardwatch session uses. `precise` None: ORT's x64 precision mode unless this CPU's
    default int8 kernels are exact anyway; True or False to measure one against the other."""
    if precise is None:
        precise = not exact_int8_kernels()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn a core between sparse patrol inferences.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if precise:  # no saturating int16 sums on AVX2-only CPUs: the same scores on every CPU
        opts.add_session_config_entry("session.x64quantprecision", "1")
    return opts


def _dim_ok(actual: object, expected: int) -> bool:
    """A symbolic or unknown dimension accepts any size."""
    return not isinstance(actual, int) or actual in (expected, -1, 0)


class OnnxDetector:
    """One ONNX hazard model; `detect` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(
        self, manifest_path: Path, threshold: float | None = None, threads: int = 2, precise: bool | None = None
    ) -> None:
        self.manifest_path = Path(manifest_path)
        self.manifest: ModelManifest
        self.manifest, self.model_path = verify_model_file(self.manifest_path)
        m = self.manifest
        self.name, self.version, self.hazard = m.name, m.version, m.hazard
        self.threshold = threshold if threshold is not None else m.threshold
        self._class_idx = [m.output.classes.index(c) for c in m.output.hazard_classes]
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), session_options(threads, precise), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own opaque types
            raise ManifestError(f"{self.model_path}: ONNX Runtime cannot load the model: {exc}") from None
        self.reference = m.reference
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        ref_names = {m.reference.input} if m.reference else set()
        ref_outputs = {m.reference.embedding_output, m.reference.adapted_output} if m.reference else set()
        missing = (ref_names - inputs.keys()) | (ref_outputs - outputs.keys())
        if missing:
            self._fail(f"the manifest's reference section names {sorted(missing)}, which the graph does not have")
        self._input = next(i for name, i in inputs.items() if name not in ref_names)
        self._output = next(o for name, o in outputs.items() if name not in ref_outputs)
        self._output_names = [
            self._output.name,
            *([m.reference.embedding_output, m.reference.adapted_output] if m.reference else []),
        ]
        self._check_shapes()
        self._warm_up()

    # -- load-time checks -------------------------------------------------------------------------
    def _fail(self, reason: str) -> NoReturn:
        raise ManifestError(f"{self.model_path}: {reason} (manifest {self.manifest_path})")

    def _expected_input(self) -> list[int]:
        i = self.manifest.input
        c = 1 if i.color == "GRAY" else 3
        return [1, c, i.height, i.width] if i.layout == "NCHW" else [1, i.height, i.width, c]

    def _check_shapes(self) -> None:
        shape = list(self._input.shape)
        expected = self._expected_input()
        if len(shape) != 4 or not all(_dim_ok(a, e) for a, e in zip(shape[1:], expected[1:], strict=True)):
            self._fail(f"input shape {shape} does not match the manifest's {expected}")
        want_type = "tensor(float)" if self.manifest.input.dtype == "float32" else "tensor(uint8)"
        if self._input.type != want_type:
            self._fail(f"input type {self._input.type} does not match the manifest's {want_type}")
        self._check_output_shape(list(self._output.shape))

    def _check_output_shape(self, shape: list[object]) -> None:
        out = self.manifest.output
        n = len(out.classes)
        kind = out.kind
        ok = True
        if kind == OutputKind.CLASS_SCORES:
            ok = len(shape) == 2 and _dim_ok(shape[1], n)
        elif kind == OutputKind.TILE_SCORES:
            ok = len(shape) == 3 or (len(shape) == 4 and _dim_ok(shape[1], n))
            if len(shape) == 3 and n != 1:
                ok = False
        elif kind == OutputKind.SEGMENTATION:
            ok = len(shape) == 4 and _dim_ok(shape[1], n)
        elif kind == OutputKind.YOLO_BOXES:
            extra = 4 if out.yolo_format == "v8" else 5
            axis = 1 if out.yolo_format == "v8" else 2
            ok = len(shape) == 3 and _dim_ok(shape[axis], n + extra)
        if not ok:
            self._fail(f"output shape {shape} does not fit output kind {kind.value} with {n} classes")

    def _warm_up(self) -> None:
        i = self.manifest.input
        blank = np.zeros((i.height, i.width, 3), np.uint8)
        try:
            raw, extra = self._run([blank], [None])
        except Exception as exc:
            self._fail(f"warm-up inference failed: {exc}")
        self._check_output_shape(list(raw.shape))
        ref = self.reference
        if ref is not None:
            emb, adapted = extra
            want_emb, want_adapted = [1, ref.size], [1, 1, *ref.grid]
            if list(emb.shape) != want_emb or list(adapted.shape) != want_adapted:
                self._fail(
                    f"reference outputs {list(emb.shape)} and {list(adapted.shape)} do not match the manifest's "
                    f"{want_emb} and {want_adapted}"
                )

    # -- inference --------------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        i = self.manifest.input
        batch = []
        for frame in frames:
            img = cv2.resize(frame, (i.width, i.height), interpolation=cv2.INTER_AREA)
            if i.color == "RGB":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            elif i.color == "GRAY":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
            batch.append(img)
        x = np.stack(batch)
        if i.dtype == "float32":
            channels = x.shape[-1]
            mean = np.array(i.mean[:channels], np.float32)
            std = np.array(i.std[:channels], np.float32)
            x = (x.astype(np.float32) / 255.0 - mean) / std
        if i.layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x

    def _feeds(self, x: np.ndarray, references: Sequence[ReferenceInput | None]) -> dict[str, np.ndarray]:
        feeds = {self._input.name: x}
        ref = self.reference
        if ref is not None:  # cameras still running cold get zeros; their adapted output is not used
            stats = np.zeros((len(x), 3 * ref.size), np.float32)
            for k, r in enumerate(references):
                if r is not None:
                    stats[k] = r.stats
            feeds[ref.input] = stats
        return feeds

    def _run(
        self, frames: Sequence[np.ndarray], references: Sequence[ReferenceInput | None]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The main output and, for a reference model, [embedding, adapted] for the batch.

        A graph with a fixed batch size (manifest `input.batch`) runs in chunks of that size, the last one
        padded with blank frames whose outputs are dropped."""
        x = self.preprocess(frames)
        fixed = self.manifest.input.batch
        if fixed is None or fixed == len(frames):
            outs = self._session.run(self._output_names, self._feeds(x, references))
        else:
            parts = []
            for k in range(0, len(x), fixed):
                chunk, refs = x[k : k + fixed], list(references[k : k + fixed])
                if (pad := fixed - len(chunk)) > 0:
                    chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
                    refs += [None] * pad
                parts.append(self._session.run(self._output_names, self._feeds(chunk, refs)))
            outs = [np.concatenate([p[j] for p in parts])[: len(x)] for j in range(len(self._output_names))]
        return outs[0], outs[1:]

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        """Score frames; `contexts[k].region` masks and zones frame k (default: whole view), and
        `contexts[k].reference` (a reference model only) scores it against its camera's normal, at the
        manifest's threshold for a reference of that many looks."""
        if not frames:
            return []
        references = [c.reference for c in contexts] if contexts else [None] * len(frames)
        raw, extra = self._run(frames, references)
        out = self.manifest.output
        results = []
        for k in range(len(frames)):
            region = contexts[k].region if contexts else RegionFilter()
            if not extra:
                results.append(self._decode(raw[k], out.kind, region))
                continue
            embedding, adapted, ref = extra[0][k], extra[1][k], references[k]
            if ref is None:
                base = self._decode(raw[k], out.kind, region)
                results.append(ImageResult(base.score, base.detections, embedding))
                continue
            assert self.reference is not None
            threshold = self.reference.threshold_for(ref.looks)
            base = self._map_result(sigmoid(adapted[0]), region, threshold)
            results.append(ImageResult(base.score, base.detections, embedding, True, threshold))
        return results

    def _decode(self, raw: np.ndarray, kind: OutputKind, region: RegionFilter) -> ImageResult:
        out = self.manifest.output
        if kind == OutputKind.YOLO_BOXES:
            i = self.manifest.input
            top, dets = yolo_boxes(
                raw,
                out.yolo_format or "v8",
                self._class_idx,
                (i.width, i.height),
                self.threshold,
                out.nms_iou,
            )
            dets = region.apply(dets)
            return ImageResult(max([d.score for d in dets], default=min(top, self.threshold * 0.999)), dets)
        if kind == OutputKind.CLASS_SCORES:
            # A whole-image score has no place to mask; masks and zones apply to region outputs only.
            probs = self._activate(raw, axis=0)
            score = float(probs[self._class_idx].max())
            return self._map_result(np.full((1, 1), score, np.float32), RegionFilter())
        # Score maps: tiles or pixels.
        probs = self._activate(raw if raw.ndim == 3 else raw[None], axis=0)
        return self._map_result(probs[self._class_idx].max(axis=0), region)

    def _activate(self, raw: np.ndarray, axis: int) -> np.ndarray:
        act = self.manifest.output.activation
        if act == "sigmoid":
            return sigmoid(raw)
        if act == "softmax":
            return softmax(raw, axis=axis)
        return raw

    def _map_result(self, score_map: np.ndarray, region: RegionFilter, threshold: float | None = None) -> ImageResult:
        threshold = self.threshold if threshold is None else threshold
        score_map = np.clip(score_map.astype(np.float32), 0.0, 1.0)
        if not region.is_noop:
            score_map = np.where(region.allowed_grid(*score_map.shape), score_map, 0.0)
        dets = regions_from_map(score_map, threshold)
        if region.zones:
            dets = region.apply(dets)
        return ImageResult(float(score_map.max()), dets)
