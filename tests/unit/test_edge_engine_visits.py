"""The engine's patrol survives a failed look: a camera whose inference failed is visited again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from hazardwatch.contract import Hazard
from hazardwatch.edge.config import EdgeConfig
from hazardwatch.edge.detect import Detection, Detector
from hazardwatch.edge.detect.detector import ImageResult, LookContext
from hazardwatch.edge.engine import EdgeEngine

pytestmark = pytest.mark.quick


def offline_config(tmp_path: Path, cameras: list[dict], patrol: dict, **more: object) -> EdgeConfig:
    """An edge with no broker, evidence or diagnosis: only the patrol and the predictor run."""
    return EdgeConfig.model_validate(
        {
            "edge_id": "e1",
            "broker": None,
            "cameras": cameras,
            "models": [{"manifest": str(tmp_path / "unused.json")}],
            "patrol": patrol,
            "outbox": {"path": str(tmp_path / "outbox.db")},
            "evidence": {"enabled": False},
            "diagnose": {"enabled": False},
            **more,
        }
    )


def run_until(cfg: EdgeConfig, detectors: dict[Hazard, Detector], done: Callable[[], bool]) -> EdgeEngine:
    """Run the engine until `done()` (10 s at most), then stop it cleanly."""

    async def main() -> EdgeEngine:
        engine = EdgeEngine(cfg, detectors)
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop))
        deadline = time.monotonic() + 10
        while not done() and time.monotonic() < deadline and not runner.done():
            await asyncio.sleep(0.02)
        stop.set()
        await runner
        return engine

    return asyncio.run(main())


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
    cameras = [{"id": "cam", "source": str(frames), "hazards": {"smoke": {}}}]
    cfg = offline_config(tmp_path, cameras, {"intervals_s": {"smoke": 0.05}, "phase_jitter_s": 0})
    detector = FailsOnce()
    run_until(cfg, {Hazard.SMOKE: detector}, lambda: detector.calls >= 3)
    assert detector.calls >= 3  # the failed look did not leave the camera in flight for ever


class RedFrames:
    """A detector plug-in that finds a region in every mostly red frame (stands in for a model's one
    false positive on a single frame)."""

    name, version, hazard, threshold = "red", "1", Hazard.SMOKE, 0.5

    def __init__(self) -> None:
        self.looks = self.red = 0

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        self.looks += len(frames)
        out = []
        for f in frames:
            red = float(f[..., 2].mean()) > 200 and float(f[..., 1].mean()) < 50
            self.red += red
            out.append(ImageResult(0.9, [Detection(0.2, 0.2, 0.6, 0.6, 0.9)]) if red else ImageResult(0.0))
        return out


def test_a_stream_frame_looked_at_again_is_no_second_vote(tmp_path: Path) -> None:
    """A persistent stream hands out its latest frame until the next arrives (a key frame every few seconds):
    looks faster than that see one frame many times, and one false positive must not vote itself into an
    alert. One red frame in eight, two frames a second, looks every 50 ms."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(8):
        colour = (0, 0, 255) if k == 0 else (90, 90, 90)
        cv2.imwrite(str(frames / f"{k}.png"), np.full((120, 160, 3), colour, np.uint8))
    cameras = [{"id": "cam", "source": str(frames), "mode": "persistent", "hazards": {"smoke": {"interval_s": 0.05}}}]
    cfg = offline_config(
        tmp_path,
        cameras,
        {"phase_jitter_s": 0, "burst_interval_s": 0.05},
        confirm={"smoke": {"window": 5, "min_votes": 3, "threshold": 0.5}},
    )
    detector = RedFrames()

    async def main() -> EdgeEngine:
        engine = EdgeEngine(cfg, {Hazard.SMOKE: detector})
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop))
        await asyncio.sleep(5.0)  # ten frames, the red one at least once, about a hundred visits
        stop.set()
        await runner
        return engine

    engine = asyncio.run(main())
    reader = engine.cameras["cam"].reader
    assert reader is not None and detector.red >= 1
    assert engine.metrics.alerts.labels("smoke", "new")._value.get() == 0  # one frame is one vote
    assert detector.looks <= reader.frames_total  # each frame looked at once, though visited ~10 times


class Slow:
    """A detector plug-in that takes 0.5 s a look: every visit slot stays busy."""

    name, version, hazard, threshold = "slow", "1", Hazard.SMOKE, 0.5

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        time.sleep(0.5)
        return [ImageResult(0.0) for _ in frames]


def test_the_patrol_waits_for_a_free_slot_instead_of_polling(tmp_path: Path) -> None:
    """With every visit slot busy and cameras overdue, the patrol loop sleeps until a visit ends; it used to
    ask the scheduler for due cameras every 5 ms (a scan of every camera each time)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), np.full((60, 80, 3), 90, np.uint8))
    cameras = [{"id": f"c{k}", "source": str(frames), "hazards": {"smoke": {"interval_s": 0.05}}} for k in range(20)]
    cfg = offline_config(tmp_path, cameras, {"phase_jitter_s": 0, "max_concurrent_visits": 2})
    asks = 0

    async def main() -> None:
        nonlocal asks
        engine = EdgeEngine(cfg, {Hazard.SMOKE: Slow()})
        due = engine.scheduler.due

        def counted(now: float, limit: int) -> list:
            nonlocal asks
            asks += 1
            return due(now, limit)

        engine.scheduler.due = counted  # type: ignore[method-assign]
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop))
        await asyncio.sleep(2.0)  # about four batches of two looks
        stop.set()
        await runner

    asyncio.run(main())
    assert asks <= 40  # a few per finished visit, not one every 5 ms (~400)


class Timed:
    """A detector plug-in that takes a set time per call."""

    version, threshold = "1", 0.5

    def __init__(self, name: str, hazard: Hazard, seconds: float) -> None:
        self.name, self.hazard, self.seconds, self.calls = name, hazard, seconds, 0

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        self.calls += 1
        time.sleep(self.seconds)
        return [ImageResult(0.0) for _ in frames]


def test_each_model_s_inference_time_is_its_own(tmp_path: Path) -> None:
    """Two models look at the same camera in one batch: the inference histogram gives each model its own
    time, not the batch's (the fast model used to be charged the slow one's 80 ms)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), np.full((60, 80, 3), 90, np.uint8))
    cameras = [{"id": "cam", "source": str(frames), "hazards": {"smoke": {}, "waterlogging": {}}}]
    cfg = offline_config(tmp_path, cameras, {"intervals_s": {"smoke": 0.05, "waterlogging": 0.05}, "phase_jitter_s": 0})
    slow, fast = Timed("slow-smoke", Hazard.SMOKE, 0.08), Timed("fast-water", Hazard.WATERLOGGING, 0.0)
    engine = run_until(cfg, {Hazard.SMOKE: slow, Hazard.WATERLOGGING: fast}, lambda: fast.calls >= 4)
    assert slow.calls >= 4 and fast.calls >= 4

    def mean_s(model: str) -> float:
        total = engine.metrics.registry.get_sample_value("hazardwatch_edge_inference_seconds_sum", {"model": model})
        count = engine.metrics.registry.get_sample_value("hazardwatch_edge_inference_seconds_count", {"model": model})
        assert total is not None and count, model
        return total / count

    assert mean_s("slow-smoke") >= 0.08
    assert mean_s("fast-water") < mean_s("slow-smoke") / 2
