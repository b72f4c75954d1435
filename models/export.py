"""torch -> ONNX (fp32) -> static int8 QDQ, and the manifests beside them.

Why these choices: torch's newer exporter (dynamo) gives a clean graph, where the legacy one left
explicit padding ops and ran 30-50 % slower; static QDQ int8 calibrated on real project frames runs
about 2.5x faster than fp32 on 2 cores, while dynamic quantisation was slower and less accurate.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hazardwatch.manifest import ModelManifest, sha256_file

log = logging.getLogger(__name__)


def export_onnx(model: object, example: object, path: Path) -> Path:
    """Export with a dynamic batch dimension; the model must already be in eval mode."""
    import torch

    assert isinstance(model, torch.nn.Module)
    model.eval()
    for m in model.modules():
        m.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=["scores"],
            dynamic_shapes={"x": {0: batch}},
            optimize=True,
        )
    if program is None:  # the dynamo exporter always returns one; None is the legacy path's answer
        raise RuntimeError(f"{path}: torch.onnx.export returned no program")
    program.save(str(path))
    # One self-contained file: fold external data back in if the exporter split it out.
    import onnx

    proto = onnx.load(str(path), load_external_data=True)
    for extra in path.parent.glob(path.name + ".data"):
        extra.unlink()
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


class _Frames:
    """onnxruntime CalibrationDataReader over already preprocessed inputs."""

    def __init__(self, name: str, batches: Sequence[np.ndarray]) -> None:
        self._name = name
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: Sequence[np.ndarray]) -> Path:
    """Static int8 QDQ (per-channel weights), calibrated on real frames preprocessed like the edge."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        except Exception as exc:  # pre-processing is an optimisation; quantise the raw graph instead
            log.warning("quantisation pre-processing failed (%s); quantising without it", exc)
            shutil.copy(fp32_path, pre)
        name = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        quantize_static(
            str(pre),
            str(int8_path),
            _Frames(name, [c[None] if c.ndim == 3 else c for c in calibration]),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return int8_path


def write_manifest(manifest: dict[str, Any], onnx_path: Path) -> Path:
    """Fill in file name and sha256, validate against the schema, write `<name>.json` beside the model."""
    manifest = {**manifest, "file": onnx_path.name, "sha256": sha256_file(onnx_path)}
    ModelManifest.model_validate(manifest)
    out = onnx_path.with_suffix(".json")
    out.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
