"""Dataset export lives with the models tooling (OpenCV, PyAV); central only hands over bytes.

Both command lines reach the same exporter, and a JPEG tar clip becomes its frames.
"""

from __future__ import annotations

import io
import tarfile

import cv2
import numpy as np
import pytest

from hazardwatch.central.services.dataset import Evidence
from hazardwatch.cli import build_parser
from hazardwatch.models.dataset_export import clip_frames, dhash, frames_of

pytestmark = pytest.mark.quick


def _jpeg(value: int) -> bytes:
    img = np.full((48, 64, 3), value, np.uint8)
    img[:, 32:] = 255 - value  # a left-right edge, so the hash is not all zeros
    return cv2.imencode(".jpg", img)[1].tobytes()


def _tar(frames: list[bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for k, data in enumerate(frames):
            info = tarfile.TarInfo(f"{k:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_central_and_models_command_lines_run_the_same_export(tmp_path):
    parser = build_parser()
    common = ["export-dataset", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--since", "7d"]
    central = parser.parse_args(["central", *common])
    models = parser.parse_args(["models", *common, "--no-clips"])
    assert central.func is models.func
    assert central.since == pytest.approx(models.since, abs=5) and (central.no_clips, models.no_clips) == (False, True)


def test_a_clip_becomes_its_frames_without_boxes_and_a_snapshot_keeps_its_boxes():
    frames = [_jpeg(10), _jpeg(200)]
    clip = Evidence(_tar(frames), "application/x-tar", "clip", "e1", "c1", 5.0, "evidence-file:e1/x")
    snap = Evidence(frames[0], "image/jpeg", "snapshot", "e1", "c1", 6.0, "alert-snapshot:s", [[0, 0, 1, 1, 0.9]])
    assert clip_frames(clip.content_type, clip.data) == frames
    out = frames_of([clip, snap])
    assert [f.source for f in out] == ["evidence-file:e1/x#0", "evidence-file:e1/x#1", "alert-snapshot:s"]
    assert [f.boxes for f in out] == [[], [], [[0, 0, 1, 1, 0.9]]]


def test_near_identical_frames_hash_alike_and_different_ones_do_not():
    def gray(jpeg: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)

    a, a_again, b = dhash(gray(_jpeg(10))), dhash(gray(_jpeg(14))), dhash(gray(_jpeg(245)))
    assert bin(a ^ a_again).count("1") <= 4 < bin(a ^ b).count("1")
