"""The I/O engine around the predictor: cameras in, MQTT out.

One asyncio loop owns the patrol: it asks the scheduler which cameras are due, runs their visits
(connect and decode) on an I/O thread pool, and submits the frames to the inference batcher
(batching.py), which runs them in batches on the single inference thread, so frames from several
cameras share one model call and the predictor's temporal state is only ever touched there. The
emitter (emit.py) writes alerts and camera status to the persistent outbox; the MQTT link drains
it. Building the parts from the config lives in wiring.py, what the HTTP API reads in views.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from hazardwatch.contract import (
    Hazard,
    Heartbeat,
    LearnNormalCommand,
    ModelStatus,
    RolloutCommand,
    SetRiskCommand,
    parse_message,
)
from hazardwatch.contract.messages import ContractError
from hazardwatch.edge.config import EdgeConfig
from hazardwatch.edge.detect import Detection, Detector
from hazardwatch.edge.diagnose import Diagnosis
from hazardwatch.edge.diagnose.availability import AvailabilityLog
from hazardwatch.edge.engine.batching import InferenceBatcher
from hazardwatch.edge.engine.emit import Emitter
from hazardwatch.edge.engine.wiring import (
    CameraRuntime,
    build_cameras,
    build_evidence,
    build_predictor,
    build_references,
    load_detectors,
    start_readers,
)
from hazardwatch.edge.metrics import EdgeMetrics
from hazardwatch.edge.patrol.scheduler import PatrolScheduler, Visit
from hazardwatch.edge.predictor import AlertEvent, LookOutcome, LookRequest
from hazardwatch.edge.publish.mqtt_link import MqttLink
from hazardwatch.edge.publish.outbox import Outbox
from hazardwatch.edge.rollout import RolloutManager
from hazardwatch.edge.snapshot import downscale
from hazardwatch.edge.sources import CapturedFrame, SourceError
from hazardwatch.kernel.tasks import run_stages

log = logging.getLogger(__name__)

PREVIEW_SIDE = 480


def _log_failure(future: Future[Any]) -> None:
    if (exc := future.exception()) is not None:
        log.error("command failed on the inference thread", exc_info=exc)


class EdgeEngine:
    def __init__(self, cfg: EdgeConfig, detectors: dict[Hazard, Detector] | None = None) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.metrics = EdgeMetrics()
        self.detectors = detectors if detectors is not None else load_detectors(cfg)
        cams = [c for c in cfg.cameras if c.enabled]
        self.evidence = build_evidence(cfg)
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="infer")
        self.rollout = self._make_rollout(cfg)
        self.rollout.restore(self.detectors)  # a finished rollout's model survives a restart
        self.references, self.reference_store = build_references(cfg, {c.id for c in cams})
        self.predictor = build_predictor(cfg, cams, self.detectors, self.references, self._observe_inference)
        self.rollout.bind(self.predictor.detectors)
        self.scheduler = PatrolScheduler(cams, cfg.patrol, self.started, random.Random())
        self.cameras: dict[str, CameraRuntime] = build_cameras(cfg, cams, self.started)
        # Daily availability per camera (edge/diagnose/availability.py), beside the outbox.
        self.availability = AvailabilityLog(cfg.outbox.path.with_name("camera-availability.json"))
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_messages)
        self.emit = Emitter(cfg, self.outbox, self.metrics, self.evidence)
        self.link = MqttLink(cfg.broker, cfg.edge_id, self.outbox, self._command_from_network) if cfg.broker else None
        self.emit.link = self.link
        self._io_pool = ThreadPoolExecutor(cfg.patrol.max_concurrent_visits, thread_name_prefix="visit")
        self._batcher: InferenceBatcher[LookRequest, LookOutcome] = InferenceBatcher(
            self.predictor.process, self._infer_pool, on_batch=self._observe_batch
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._visits: set[asyncio.Task[None]] = set()

    # -- run --------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        start_readers(self.cameras, self.cfg.patrol)
        if self.link:
            self.link.start()
        tasks = [
            asyncio.create_task(self._patrol(stop), name="patrol"),
            asyncio.create_task(self._batcher.run(), name="inference"),
            asyncio.create_task(self._housekeeping(stop), name="housekeeping"),
        ]
        try:
            await run_stages("edge", tasks, stop)
        finally:
            await self.close()

    async def close(self) -> None:
        for task in list(self._visits):
            task.cancel()
        await asyncio.gather(*self._visits, return_exceptions=True)
        readers = [cam.reader for cam in self.cameras.values() if cam.reader]
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in readers))
        if self.link:
            self.link.stop()
        self._io_pool.shutdown(wait=False, cancel_futures=True)
        self._infer_pool.shutdown(wait=True)
        self.availability.save()
        self._save_references()
        if self.evidence:
            await asyncio.to_thread(self.evidence.close)
        self.outbox.close()

    # -- rollouts (edge/rollout.py) -------------------------------------------------------------------
    def _make_rollout(self, cfg: EdgeConfig) -> RolloutManager:
        return RolloutManager(
            cfg,
            run_on_inference=lambda fn: self._infer_pool.submit(fn),
            slots=self.detectors,
            recent_frames=self._recent_frames,
            report=self._report_model,
        )

    def _recent_frames(self, n: int) -> list[tuple[str, np.ndarray, float]]:
        if self.evidence:
            return self.evidence.recent(n)
        now = time.time()
        return [(c.cfg.id, c.preview, now) for c in self.cameras.values() if c.preview is not None][-n:]

    def _report_model(self, status: ModelStatus) -> None:
        self.emit.model_status(status)

    # -- patrol -------------------------------------------------------------------------------------
    async def _patrol(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        limit = self.cfg.patrol.max_concurrent_visits
        while not stop.is_set():
            now = time.time()
            for visit in self.scheduler.due(now, limit - len(self._visits)):
                task = asyncio.create_task(self._visit(visit))
                self._visits.add(task)
                task.add_done_callback(self._visit_done)
            if len(self._visits) >= limit:  # every slot busy: a visit that ends wakes us (_visit_done)
                delay = 1.0
            else:
                delay = min(1.0, max(0.005, self.scheduler.next_wakeup(now) - time.time()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _visit_done(self, task: asyncio.Task[None]) -> None:
        self._visits.discard(task)
        if not task.cancelled() and task.exception():
            log.error("visit crashed", exc_info=task.exception())
        if self._wake:
            self._wake.set()

    async def _visit(self, visit: Visit) -> None:
        """One look at one camera; whatever ends it, the scheduler hears of it, so the camera is never
        left in flight (a failed inference would otherwise stop its patrol for good)."""
        cam = self.cameras[visit.camera_id]
        loop = asyncio.get_running_loop()
        try:
            frame, diagnosis = await loop.run_in_executor(self._io_pool, self._grab, cam)
        except SourceError as exc:
            now = time.time()
            delay = self.scheduler.fail(cam.cfg.id, now)
            self.metrics.visit_failures.labels(cam.cfg.id).inc()
            log.warning("camera %s: %s (retry in %.1f s)", cam.cfg.id, exc, delay)
            self.emit.camera_status(cam.health.on_failure(str(exc), now))
            return
        except BaseException:
            self.scheduler.fail(cam.cfg.id, time.time())
            raise
        try:
            await self._look_at(cam, visit, frame, diagnosis)
        except BaseException:
            self.scheduler.fail(cam.cfg.id, time.time())
            raise

    async def _look_at(
        self, cam: CameraRuntime, visit: Visit, frame: CapturedFrame, diagnosis: Diagnosis | None
    ) -> None:
        """A grabbed frame through health, evidence and the models; the scheduler's `finish` on success.

        A persistent stream hands out its latest frame until the next one arrives: a hazard that already
        looked at this frame does not look again, or one false positive would vote several times."""
        self.emit.camera_status(cam.health.on_frame(frame.captured_at, time.time(), diagnosis))
        hazards = frozenset(h for h in visit.hazards if cam.looked_at.get(h) != frame.captured_at)
        seen = visit.hazards - hazards  # their candidates stand as the last look of this frame left them
        if not hazards:
            self.scheduler.finish(cam.cfg.id, visit.hazards, cam.candidates & seen, time.time())
            return
        if diagnosis is not None:
            self.metrics.diagnose_cpu.inc(diagnosis.cpu_s)
        self.metrics.frames.labels(cam.cfg.id).inc()
        self.metrics.connect_cpu.inc(frame.connect_cpu_s)
        self.metrics.decode_cpu.inc(frame.decode_cpu_s)
        cam.preview = downscale(frame.image, PREVIEW_SIDE)
        if self.evidence:
            self.evidence.observe(cam.cfg.id, frame.image, frame.captured_at)
        outcome = await self._batcher.submit(self._look(cam, frame, hazards, diagnosis))
        cam.looked_at.update(dict.fromkeys(hazards, frame.captured_at))
        cam.candidates = set(outcome.candidates) | (cam.candidates & seen)
        cam.scores.update(outcome.scores)
        self.emit.camera_status(cam.health.on_normal(outcome.normal))
        if self.evidence:
            self.evidence.note_regions(cam.cfg.id, frame.captured_at, outcome.regions)
            if not outcome.events and not outcome.candidates:
                self.evidence.quiet_look(cam.cfg.id, frame.image, frame.captured_at, outcome.scores)
        self.scheduler.finish(cam.cfg.id, visit.hazards, cam.candidates, time.time())
        for event in outcome.events:
            self._emit_alert(event)

    @staticmethod
    def _look(
        cam: CameraRuntime, frame: CapturedFrame, hazards: frozenset[Hazard], diagnosis: Diagnosis | None
    ) -> LookRequest:
        """The diagnosis picks the camera's reference (light mode, view) and whether it may learn from this look."""
        return LookRequest(
            cam.cfg.id,
            frame.image,
            frame.captured_at,
            hazards,
            mode="ir" if diagnosis is not None and diagnosis.night else "day",
            view=cam.diagnoser.view if cam.diagnoser else 0,
            healthy=diagnosis is None or not diagnosis.degraded,
        )

    def _grab(self, cam: CameraRuntime) -> tuple[CapturedFrame, Diagnosis | None]:
        """On the I/O pool: one fresh frame, diagnosed right after decode (about 1.5 ms, see docs/diagnose.md)."""
        frame = self._fresh_frame(cam)
        if cam.diagnoser is None:
            return frame, None
        try:
            return frame, cam.diagnoser.observe(frame.image, frame.captured_at)
        except Exception:  # diagnosis must never cost a look at the hazards
            log.exception("camera %s: diagnosis failed", cam.cfg.id)
            return frame, None

    def _fresh_frame(self, cam: CameraRuntime) -> CapturedFrame:
        if cam.reader is None:
            return cam.source.snapshot()
        frame = cam.reader.latest()
        if frame is None or time.time() - frame.captured_at > self.cfg.patrol.offline_after_s:
            raise SourceError(cam.reader.last_error or f"{cam.source.safe_url}: no fresh frame from the stream")
        return frame

    # -- inference (batching.py) -------------------------------------------------------------------
    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)

    def _observe_inference(self, model: str, seconds: float) -> None:
        """One model's own time on its frames of a batch (not the whole batch's, which ran every model)."""
        self.metrics.inference.labels(model).observe(seconds)

    # -- housekeeping -----------------------------------------------------------------------------
    async def _housekeeping(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_heartbeat = 0.0
        next_availability_save = time.time() + 60.0
        next_reference_save = time.time() + self.cfg.reference.save_interval_s
        while not stop.is_set():
            now = time.time()
            for cam in self.cameras.values():
                self.emit.camera_status(cam.health.check(now, expect_frames=cam.reader is not None))
                state = cam.health.state.value if cam.health.state else None
                if (credited := self.availability.tick(cam.cfg.id, state, now)) and state == "online":
                    self.metrics.online_seconds.labels(cam.cfg.id).inc(credited)
            if now >= next_availability_save:
                self.availability.save()
                next_availability_save = now + 60.0
            if now >= next_reference_save:
                await loop.run_in_executor(self._infer_pool, self._save_references)
                next_reference_save = now + self.cfg.reference.save_interval_s
            for event in await loop.run_in_executor(self._infer_pool, self.predictor.expire, now):
                self._emit_alert(event)
            if self.evidence:
                self.evidence.tick(now)
            if now >= next_heartbeat:
                self._heartbeat(now)
                next_heartbeat = now + self.cfg.heartbeat_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def _save_references(self) -> None:
        """On the inference thread (the only one that touches the bank), or after it stopped."""
        try:
            self.reference_store.save(self.references)
        except OSError as exc:  # a full disk costs the latest learning, never the look
            self.metrics.outbox_errors.labels("reference").inc()
            log.error("camera references could not be saved: %s", exc)

    def _heartbeat(self, now: float) -> None:
        if not self.link:
            return
        online = sum(1 for c in self.cameras.values() if c.health.state and c.health.state.value == "online")
        beat = Heartbeat(
            edge_id=self.cfg.edge_id,
            sent_at=now,
            uptime_s=now - self.started,
            cameras_total=len(self.cameras),
            cameras_online=online,
            outbox_depth=self.outbox.depth(),
            models={d.name: d.version for d in self.detectors.values()},
        )
        self.emit.heartbeat(beat)

    # -- output (emit.py) ------------------------------------------------------------------------
    @property
    def storage_error(self) -> str | None:
        """The outbox's last write error, None once a write succeeds again (shown by /healthz)."""
        return self.emit.storage_error

    def _emit_alert(self, event: AlertEvent) -> None:
        self.emit.alert(event, self.cameras[event.camera_id].cfg)

    # -- commands ---------------------------------------------------------------------------------
    def _command_from_network(self, payload: bytes) -> None:
        """Called on paho's thread: validate there, apply on the loop."""
        try:
            command = parse_message(payload)
        except ContractError as exc:
            self.metrics.commands.labels("invalid").inc()
            log.warning("rejected command: %s", exc)
            return
        commands = SetRiskCommand | RolloutCommand | LearnNormalCommand
        if not isinstance(command, commands) or command.edge_id != self.cfg.edge_id:
            self.metrics.commands.labels("invalid").inc()
            log.warning("rejected command of kind %s for edge %s", command.kind, command.edge_id)
            return
        if isinstance(command, RolloutCommand):
            self.metrics.commands.labels("applied" if self.rollout.submit(command) else "repeat").inc()
            return
        if isinstance(command, LearnNormalCommand):
            try:  # the bank belongs to the inference thread
                self._infer_pool.submit(self.learn_normal, command).add_done_callback(_log_failure)
            except RuntimeError:  # shutting down: the operator's label is lost with this process's alerts
                log.warning("learn_normal %s arrived while stopping: not applied", command.command_id)
            return
        if self._loop:
            self._loop.call_soon_threadsafe(self.apply_command, command)

    def learn_normal(self, command: LearnNormalCommand) -> bool:
        """An operator's false alarm teaches the camera's reference (on the inference thread)."""
        box = command.box
        region = Detection(box.x1, box.y1, box.x2, box.y2, box.score) if box else None
        taught = self.predictor.absorb_false_alarm(command.alert_id, time.time(), region)
        self.metrics.commands.labels("applied" if taught else "unknown_alert").inc()
        log.info(
            "camera %s %s: false alarm %s %s",
            command.camera_id,
            command.hazard.value,
            command.alert_id[:8],
            "learnt as normal" if taught else "not held here (restarted or too old): nothing learnt",
        )
        return taught

    def apply_command(self, command: SetRiskCommand) -> list[str]:
        now = time.time()
        if command.until is not None and command.until <= now:
            self.metrics.commands.labels("expired").inc()
            return []
        changed = self.scheduler.set_risk(
            command.hazard, command.level, command.cameras, command.until, command.reason, now
        )
        self.metrics.commands.labels("applied").inc()
        log.info(
            "risk %s for %s on %d cameras (%s)",
            command.level.value,
            command.hazard.value,
            len(changed),
            command.reason,
        )
        if self._wake:
            self._wake.set()
        return changed
