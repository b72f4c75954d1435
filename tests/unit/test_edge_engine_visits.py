"""The engine's patrol survives a failed look: a camera whose inference failed is visited again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from hazardwatch.contract import Hazard
from hazardwatch.edge.config import EdgeConfig
from hazardwatch.edge.detect import Detector
from hazardwatch.edge.detect.detector import ImageResult, LookContext
from hazardwatch.edge.engine import EdgeEngine

pytestmark = pytest.mark.quick


class FailsOnce:
    """A detector plug-in whose first call fails (an ONNX Runtime error, a broken accelerator)."""

    name, version, hazard, threshold = "flaky", "1", Hazard.SMOKE, 0.5

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("inference failed")
        return [ImageResult(0.0) for _ in frames]


def test_a_camera_whose_look_failed_in_inference_is_patrolled_again(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), np.full((120, 160, 3), 90, np.uint8))
    cfg = EdgeConfig.model_validate(
        {
            "edge_id": "e1",
            "broker": None,
            "cameras": [{"id": "cam", "source": str(frames), "hazards": {"smoke": {}}}],
            "models": [{"manifest": str(tmp_path / "unused.json")}],
            "patrol": {"intervals_s": {"smoke": 0.05}, "phase_jitter_s": 0},
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "evidence": {"enabled": False},
            "diagnose": {"enabled": False},
        }
    )
    detector = FailsOnce()
    detectors: dict[Hazard, Detector] = {Hazard.SMOKE: detector}

    async def main() -> None:
        engine = EdgeEngine(cfg, detectors)
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop))
        deadline = time.monotonic() + 10
        while detector.calls < 3 and time.monotonic() < deadline and not runner.done():
            await asyncio.sleep(0.02)
        stop.set()
        await runner

    asyncio.run(main())
    assert detector.calls >= 3  # the failed look did not leave the camera in flight for ever
