"""The ONNX runtime refuses models that disagree with their manifest, and decodes every output kind."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.harness.toy_models import paint_patch, red_patch_graph, red_patch_manifest, write_model
from hazardwatch.manifest import ManifestError

pytestmark = pytest.mark.quick


def test_sha256_mismatch_is_refused(tmp_path):
    manifest = red_patch_manifest(tmp_path)
    onnx_file = tmp_path / "red-patch.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(ManifestError, match=r"sha256 .* does not match"):
        OnnxDetector(manifest)


def test_wrong_input_size_is_refused(tmp_path):
    manifest = red_patch_manifest(tmp_path)
    doc = json.loads(manifest.read_text())
    doc["input"]["width"] = 640
    manifest.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=r"input shape .* does not match the manifest's \[1, 3, 240, 640\]"):
        OnnxDetector(manifest)


def test_wrong_output_kind_is_refused(tmp_path):
    manifest = red_patch_manifest(tmp_path, output_kind="class_scores")
    with pytest.raises(ManifestError, match="does not fit output kind class_scores"):
        OnnxDetector(manifest)


def test_not_an_onnx_file_is_refused(tmp_path):
    manifest = red_patch_manifest(tmp_path)
    (tmp_path / "red-patch.onnx").write_bytes(b"PK\x03\x04 definitely not onnx")
    doc = json.loads(manifest.read_text())
    doc["sha256"] = hashlib.sha256(b"PK\x03\x04 definitely not onnx").hexdigest()
    manifest.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="ONNX Runtime cannot load"):
        OnnxDetector(manifest)


def test_bad_manifest_names_field(tmp_path):
    manifest = red_patch_manifest(tmp_path)
    doc = json.loads(manifest.read_text())
    doc["output"]["hazard_classes"] = ["blue"]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=r"red-patch.json: output: Value error, hazard_classes \['blue'\]"):
        OnnxDetector(manifest)


def test_batch_equals_single(tmp_path):
    det = OnnxDetector(red_patch_manifest(tmp_path))
    rng = np.random.default_rng(0)
    frames = [
        paint_patch(rng.integers(0, 255, (480, 640, 3), np.uint8), (0.1 * k, 0.2, 0.1 * k + 0.2, 0.5)) for k in range(4)
    ]
    batched = det.detect(frames)
    single = [det.detect([f])[0] for f in frames]
    assert [r.score for r in batched] == pytest.approx([r.score for r in single], abs=1e-5)
    assert [len(r.detections) for r in batched] == [1, 1, 1, 1]


def test_a_fixed_batch_model_runs_any_number_of_looks(tmp_path):
    """A graph exported with batch 4 (manifest `input.batch: 4`) gets chunks of 4, the last padded."""
    graph = red_patch_graph()
    for value in (*graph.graph.input, *graph.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 4
    manifest = write_model(graph, tmp_path)
    doc = json.loads(manifest.read_text())
    doc["input"]["batch"] = 4
    manifest.write_text(json.dumps(doc))
    det = OnnxDetector(manifest)
    reference = OnnxDetector(red_patch_manifest(tmp_path / "dynamic"))
    rng = np.random.default_rng(1)
    frames = [
        paint_patch(rng.integers(0, 255, (240, 320, 3), np.uint8), (0.1 * k, 0.2, 0.1 * k + 0.2, 0.5)) for k in range(6)
    ]
    for n in (1, 3, 4, 6):
        got = det.detect(frames[:n])
        assert [r.score for r in got] == pytest.approx([r.score for r in reference.detect(frames[:n])], abs=1e-5)


def _yolo_graph(rows: np.ndarray) -> onnx.ModelProto:
    """A 'YOLOv8' whose output is a constant [1, 4+C, A] tensor, to test decoding and NMS."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, rows.shape[0], rows.shape[1]])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["const", "z"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(rows[None].astype(np.float32), "const"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "yolo", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    return model


def test_yolo_v8_boxes_decoded_with_nms(tmp_path):
    # anchors: two overlapping boxes of class smoke (0), one of class cloud (1), one weak smoke
    cols = np.array(
        [
            [32, 32, 16, 16, 0.9, 0.1],
            [33, 32, 16, 16, 0.8, 0.1],
            [10, 10, 8, 8, 0.05, 0.95],
            [50, 50, 8, 8, 0.2, 0.0],
        ],
        np.float32,
    ).T
    manifest = write_model(
        _yolo_graph(cols),
        tmp_path,
        name="yolo",
        hazard="smoke",
        width=64,
        height=64,
        output_kind="yolo_boxes",
        classes=("smoke", "cloud"),
        threshold=0.5,
    )
    doc = json.loads(manifest.read_text())
    doc["output"]["yolo_format"] = "v8"
    manifest.write_text(json.dumps(doc))
    det = OnnxDetector(manifest)
    result = det.detect([np.zeros((128, 128, 3), np.uint8)])[0]
    assert len(result.detections) == 1
    d = result.detections[0]
    assert (d.x1, d.y1, d.x2, d.y2) == pytest.approx((0.375, 0.375, 0.625, 0.625))
    assert d.score == pytest.approx(0.9)
