"""Model rollouts on the edge: fetch, verify, load beside the old model, health-check, swap, persist.

Why this shape:
- the download and the load (ONNX Runtime session, warm-up) run on a rollout thread, so cameras keep
  being analysed by the old model meanwhile;
- the swap itself is a dictionary assignment scheduled on the single inference thread, between two
  batches, so no frame is dropped or scored by a half-loaded model;
- the new model then runs on probation: if it raises on real frames, the same batch is scored by the
  old model (nothing lost) and the old model is put back at once, with no operator in the loop;
- the active choice is persisted (`active.json`) only after probation, so a restart keeps a healthy
  model and never a broken one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hazardwatch.contract import Hazard, ModelStatus, RolloutCommand
from hazardwatch.edge.central_client import CentralClient, CentralError
from hazardwatch.edge.config import EdgeConfig, RolloutConfig
from hazardwatch.edge.detect import Detector, ImageResult, LookContext
from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.manifest import ManifestError, ModelManifest, read_manifest, sha256_file

log = logging.getLogger(__name__)

ACTIVE_FILE = "active.json"
PROBATION_TIMEOUT_S = 30.0
MAX_MANIFEST_BYTES = 256 * 1024


class RolloutError(Exception):
    """A rollout step failed; the text is reported to central as the reason."""


def check_results(results: Sequence[ImageResult], n: int) -> None:
    """A usable model returns one finite score in [0, 1] per frame and well-formed regions."""
    if len(results) != n:
        raise RolloutError(f"health check: {len(results)} results for {n} frames")
    for r in results:
        if not (math.isfinite(r.score) and 0.0 <= r.score <= 1.0):
            raise RolloutError(f"health check: score {r.score!r} is not a number in [0, 1]")
        for d in r.detections:
            if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (d.x1, d.y1, d.x2, d.y2, d.score)):
                raise RolloutError("health check: a region lies outside the image or has an invalid score")


@dataclass
class _Trial:
    rollout_id: str
    hazard: Hazard
    target: str


class ProbationDetector:
    """Runs the new model for its first batches; on any error scores the batch with the old one and
    hands the hazard back to it. Lives on the inference thread only (no locks needed)."""

    def __init__(
        self, new: Detector, old: Detector, batches: int, on_pass: Callable[[], None], on_fail: Callable[[str], None]
    ) -> None:
        self.new, self.old = new, old
        self.left = batches
        self._on_pass, self._on_fail = on_pass, on_fail
        self.name, self.version, self.hazard, self.threshold = new.name, new.version, new.hazard, new.threshold
        self.settled = False

    def detect(self, frames: Sequence[np.ndarray], contexts: Sequence[LookContext] | None = None) -> list[ImageResult]:
        if self.settled:
            return self.new.detect(frames, contexts)
        try:
            results = self.new.detect(frames, contexts)
            check_results(results, len(frames))
        except Exception as exc:
            self.settled = True
            self._on_fail(f"new model failed on live frames: {exc}")
            return self.old.detect(frames, contexts)
        self.left -= 1
        if self.left <= 0:
            self.settle()
        return results

    def settle(self) -> None:
        if not self.settled:
            self.settled = True
            self._on_pass()


class RolloutManager:
    """Owns downloaded models and the persisted active choice; one rollout at a time."""

    def __init__(
        self,
        cfg: EdgeConfig,
        *,
        run_on_inference: Callable[[Callable[[], Any]], Future[Any]],
        slots: dict[Hazard, Detector],
        recent_frames: Callable[[int], list[tuple[str, np.ndarray, float]]],
        report: Callable[[ModelStatus], None],
    ) -> None:
        self.cfg = cfg
        self.rcfg: RolloutConfig = cfg.rollout
        self.dir = self.rcfg.path or (cfg.outbox.path.parent / "models")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client = CentralClient(cfg.central) if cfg.central else None
        self._run_on_inference = run_on_inference
        self._slots = slots  # the engine's view (heartbeat, metrics)
        self._pslots: dict[Hazard, Detector] = slots  # what the predictor runs (see bind)
        self._recent = recent_frames
        self._report = report
        self._lock = threading.Lock()
        self._busy: str | None = None
        self._done: dict[str, ModelStatus] = {}
        self._threads = {ref.manifest: ref.threads for ref in cfg.models}

    def bind(self, predictor_slots: dict[Hazard, Detector]) -> None:
        """The predictor's own detector map: the swap writes there, on the inference thread."""
        self._pslots = predictor_slots

    # -- persisted choice -------------------------------------------------------------------------
    def _active(self) -> dict[str, dict[str, Any]]:
        path = self.dir / ACTIVE_FILE
        try:
            return json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError) as exc:
            log.error("%s is unreadable (%s); using the configured models", path, exc)
            return {}

    def _write_active(self, doc: dict[str, dict[str, Any]]) -> None:
        tmp = self.dir / (ACTIVE_FILE + ".tmp")
        with tmp.open("w") as f:
            json.dump(doc, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / ACTIVE_FILE)

    def restore(self, detectors: dict[Hazard, Detector]) -> dict[Hazard, Detector]:
        """At start-up: replace configured models by the ones a finished rollout made active."""
        for hazard_name, entry in self._active().items():
            try:
                hazard = Hazard(hazard_name)
            except ValueError:
                continue
            if hazard not in detectors:
                log.warning("active model for %s ignored: no configured model serves that hazard", hazard_name)
                continue
            try:
                detectors[hazard] = OnnxDetector(Path(entry["manifest"]), threads=self._threads_for(hazard, detectors))
                log.info(
                    "hazard %s: running %s@%s from rollout %s",
                    hazard_name,
                    entry["name"],
                    entry["version"],
                    entry.get("rollout_id"),
                )
            except (ManifestError, KeyError, OSError) as exc:
                log.error("hazard %s: persisted model cannot load (%s); keeping the configured one", hazard_name, exc)
        return detectors

    def _threads_for(self, hazard: Hazard, detectors: dict[Hazard, Detector]) -> int:
        det = detectors.get(hazard)
        path = getattr(det, "manifest_path", None)
        return self._threads.get(path, 2) if path is not None else 2

    # -- commands ---------------------------------------------------------------------------------
    def submit(self, cmd: RolloutCommand) -> bool:
        """Start a rollout on its own thread; False (and a re-report) when it is a repeat."""
        with self._lock:
            if cmd.rollout_id in self._done:
                self._report(self._done[cmd.rollout_id].model_copy(update={"sent_at": time.time()}))
                return False
            if self._busy is not None:
                log.info("rollout %s waits: %s is in progress (central resends)", cmd.rollout_id, self._busy)
                return False
            self._busy = cmd.rollout_id
        threading.Thread(target=self._run, args=(cmd,), name=f"rollout-{cmd.rollout_id}", daemon=True).start()
        return True

    def _status(self, cmd: RolloutCommand, state: str, detail: str = "") -> ModelStatus:
        current = self._slots.get(cmd.hazard)
        return ModelStatus(
            edge_id=self.cfg.edge_id,
            sent_at=time.time(),
            hazard=cmd.hazard,
            rollout_id=cmd.rollout_id,
            state=state,  # type: ignore[arg-type]
            model_name=current.name if current else cmd.model_name,
            model_version=current.version if current else "",
            target_version=cmd.model_version,
            detail=detail[:256],
        )

    def _finish(self, cmd: RolloutCommand, state: str, detail: str = "") -> None:
        status = self._status(cmd, state, detail)
        with self._lock:
            self._done[cmd.rollout_id] = status
            self._busy = None
        self._report(status)
        log_fn = log.info if state == "active" else log.error
        log_fn("rollout %s of %s@%s: %s %s", cmd.rollout_id, cmd.model_name, cmd.model_version, state, detail)

    def _run(self, cmd: RolloutCommand) -> None:
        try:
            self._run_checked(cmd)
        except RolloutError as exc:
            self._finish(cmd, "failed", str(exc))
        except Exception as exc:  # never leave the manager busy
            log.exception("rollout %s crashed", cmd.rollout_id)
            self._finish(cmd, "failed", f"{type(exc).__name__}: {exc}")

    def _run_checked(self, cmd: RolloutCommand) -> None:
        old = self._slots.get(cmd.hazard)
        if old is None:
            raise RolloutError(f"this edge runs no {cmd.hazard.value} model; nothing to replace")
        if old.name == cmd.model_name and old.version == cmd.model_version:
            self._finish(cmd, "active", "already running")
            return
        if self.client is None:
            raise RolloutError("no central section in the edge config: cannot download models")
        self._report(self._status(cmd, "downloading"))
        manifest_path = self._fetch(cmd)
        try:
            new = OnnxDetector(manifest_path, threads=self._threads_for(cmd.hazard, self._slots))
        except ManifestError as exc:
            raise RolloutError(f"model does not load: {exc}") from None
        if new.hazard != cmd.hazard:
            raise RolloutError(f"model is for {new.hazard.value}, not {cmd.hazard.value}")
        self._health_check(new)
        self._report(self._status(cmd, "loaded", "health check passed; switching"))
        self._swap(cmd, old, new, manifest_path)

    def _fetch(self, cmd: RolloutCommand) -> Path:
        assert self.client is not None
        folder = self.dir / f"{cmd.model_name}-{cmd.model_version}"
        tmp = self.dir / f".{folder.name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        base = f"/api/v1/models/{cmd.model_name}/{cmd.model_version}"
        status, _, raw = self.client.request("GET", base + "/manifest")
        if status != 200:
            raise RolloutError(f"manifest download: central answered {status}")
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RolloutError("manifest too large")
        (tmp / "manifest.json").write_bytes(raw)
        try:
            manifest: ModelManifest = read_manifest(tmp / "manifest.json")
        except ManifestError as exc:
            raise RolloutError(f"manifest is invalid: {exc}") from None
        if (manifest.name, manifest.version, manifest.hazard) != (cmd.model_name, cmd.model_version, cmd.hazard):
            raise RolloutError(f"manifest describes {manifest.name}@{manifest.version} ({manifest.hazard.value})")
        if manifest.runtime != "onnx" or manifest.sha256 != cmd.sha256:
            raise RolloutError("manifest sha256 differs from the command's")
        file_name = Path(manifest.file).name
        try:
            digest = self.client.download(base + "/file", tmp / file_name, self.rcfg.max_model_bytes)
        except CentralError as exc:
            raise RolloutError(str(exc)) from None
        if digest != cmd.sha256:
            raise RolloutError(f"sha256 {digest[:12]}... of the downloaded file does not match {cmd.sha256[:12]}...")
        doc = json.loads(raw)
        doc["file"] = file_name
        final_manifest = tmp / f"{cmd.model_name}.json"
        final_manifest.write_text(json.dumps(doc, indent=2))
        (tmp / "manifest.json").unlink()
        if sha256_file(tmp / file_name) != cmd.sha256:  # belt and braces: what is on disk is what we checked
            raise RolloutError("model file changed on disk after download")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return folder / final_manifest.name

    def _health_check(self, det: OnnxDetector) -> None:
        frames = self._recent(self.rcfg.health_frames)
        if not frames:  # no camera looked yet: the warm-up on a blank frame already ran; add a noise frame
            i = det.manifest.input
            rng = np.random.default_rng(0)
            frames = [("health", rng.integers(0, 255, (i.height, i.width, 3), dtype=np.uint8), time.time())]
        ctx = [LookContext(cam, at) for cam, _, at in frames]
        try:
            results = det.detect([f for _, f, _ in frames], ctx)
        except Exception as exc:
            raise RolloutError(f"health check: inference failed: {exc}") from None
        check_results(results, len(frames))

    def _swap(self, cmd: RolloutCommand, old: Detector, new: OnnxDetector, manifest_path: Path) -> None:
        settled = threading.Event()
        outcome: dict[str, str] = {}

        def passed() -> None:  # inference thread
            self._pslots[cmd.hazard] = new
            outcome["state"] = "active"
            settled.set()

        def failed(reason: str) -> None:  # inference thread
            self._pslots[cmd.hazard] = old
            self._slots[cmd.hazard] = old
            outcome["state"], outcome["detail"] = "rolled_back", reason
            settled.set()

        probation = ProbationDetector(new, old, self.rcfg.probation_batches, passed, failed)

        def install() -> None:  # inference thread, between two batches
            self._pslots[cmd.hazard] = probation
            self._slots[cmd.hazard] = new
            if self.rcfg.probation_batches == 0:
                probation.settle()

        self._run_on_inference(install).result(timeout=60)
        if not settled.wait(PROBATION_TIMEOUT_S):
            # No camera needed this hazard meanwhile: the load and health check stand as the trial.
            self._run_on_inference(probation.settle).result(timeout=60)
        settled.wait(5)
        if outcome.get("state") != "active":
            self._finish(cmd, "rolled_back", outcome.get("detail", "probation did not finish"))
            return
        doc = self._active()
        doc[cmd.hazard.value] = {
            "manifest": str(manifest_path),
            "name": cmd.model_name,
            "version": cmd.model_version,
            "rollout_id": cmd.rollout_id,
            "activated_at": time.time(),
        }
        self._write_active(doc)
        self._finish(cmd, "active", f"replaced {old.name}@{old.version}")
