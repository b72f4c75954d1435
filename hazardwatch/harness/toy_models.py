"""Small ONNX graphs built by the tests, so the runtime and confirmation can be exercised
deterministically before (and independently of) the trained models.

`red_patch_model` scores each 16x16 tile by how red it is: a red patch pasted on a real frame, or
the flames in the fire video, light up the tiles under them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def red_patch_graph(
    width: int = 320, height: int = 240, tile: int = 16, gain: float = 12.0, bias: float = 0.5
) -> onnx.ModelProto:
    """Input [N,3,H,W] RGB in [-1, 1]; output [N,1,H/tile,W/tile] = sigmoid(gain*(mean(R-max(G,B))-bias))."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, height, width])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 1, height // tile, width // tile])
    nodes = [
        helper.make_node("Slice", ["image", "c0", "c1", "axis1"], ["r"]),
        helper.make_node("Slice", ["image", "c1", "c2", "axis1"], ["g"]),
        helper.make_node("Slice", ["image", "c2", "c3", "axis1"], ["b"]),
        helper.make_node("Max", ["g", "b"], ["gb"]),
        helper.make_node("Sub", ["r", "gb"], ["redness"]),
        helper.make_node("AveragePool", ["redness"], ["pooled"], kernel_shape=[tile, tile], strides=[tile, tile]),
        helper.make_node("Sub", ["pooled", "bias"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
    ]
    inits = [
        _const("c0", np.array([0], np.int64)),
        _const("c1", np.array([1], np.int64)),
        _const("c2", np.array([2], np.int64)),
        _const("c3", np.array([3], np.int64)),
        _const("axis1", np.array([1], np.int64)),
        _const("bias", np.array(bias, np.float32)),
        _const("gain", np.array(gain, np.float32)),
    ]
    graph = helper.make_graph(nodes, "red_patch", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_model(
    model: onnx.ModelProto,
    out_dir: Path,
    *,
    name: str = "red-patch",
    version: str = "1.0.0",
    hazard: str = "fire",
    threshold: float = 0.5,
    width: int = 320,
    height: int = 240,
    output_kind: str = "tile_scores",
    classes: tuple[str, ...] = ("red",),
) -> Path:
    """Write `<name>.onnx` and its manifest `<name>.json`; return the manifest path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    manifest = {
        "name": name,
        "version": version,
        "hazard": hazard,
        "file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "input": {
            "width": width,
            "height": height,
            "color": "RGB",
            "layout": "NCHW",
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
        },
        "output": {
            "kind": output_kind,
            "classes": list(classes),
            "hazard_classes": [classes[0]],
            "activation": "none",
        },
        "threshold": threshold,
        "provenance": [{"name": "synthetic test graph", "licence": "Apache-2.0"}],
        "metrics": {},
        "training": {"command": "hazardwatch/harness/toy_models.py (hand-built graph, no training)"},
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def red_patch_manifest(out_dir: Path, **kwargs: object) -> Path:
    return write_model(red_patch_graph(), out_dir, **kwargs)  # type: ignore[arg-type]


def paint_patch(
    image: np.ndarray, box: tuple[float, float, float, float], bgr: tuple[int, int, int] = (0, 0, 255)
) -> np.ndarray:
    """Copy of a BGR frame with a solid patch over the relative box (x1, y1, x2, y2)."""
    out = image.copy()
    h, w = out.shape[:2]
    x1, y1, x2, y2 = box
    out[int(y1 * h) : int(y2 * h), int(x1 * w) : int(x2 * w)] = bgr
    return out
