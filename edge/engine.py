"""The I/O engine around the predictor: cameras in, MQTT out.

One asyncio loop owns the patrol: it asks the scheduler which cameras are due, runs their visits
(connect and decode) on an I/O thread pool, and queues the frames for inference. One inference
thread drains that queue in batches, so frames from several cameras share one model call and the
predictor's temporal state is only ever touched from that thread. Alerts and camera status go
through the persistent outbox; the MQTT link drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from hazardwatch.contract import (
    Alert,
    Box,
    CameraStatus,
    Hazard,
    Heartbeat,
    LearnNormalCommand,
    ModelStatus,
    RiskLevel,
    RolloutCommand,
    SetRiskCommand,
    Topics,
    parse_message,
)
from hazardwatch.contract.messages import ContractError
from hazardwatch.edge.config import CameraConfig, EdgeConfig
from hazardwatch.edge.detect import Detection, Detector
from hazardwatch.edge.detect.onnx_detector import OnnxDetector
from hazardwatch.edge.diagnose import CameraDiagnoser, Diagnosis
from hazardwatch.edge.diagnose.availability import AvailabilityLog, utc_day
from hazardwatch.edge.evidence import EvidenceStore, EvidenceUploader
from hazardwatch.edge.health import CameraHealth, HealthChange
from hazardwatch.edge.metrics import EdgeMetrics
from hazardwatch.edge.patrol.scheduler import PatrolScheduler, Visit
from hazardwatch.edge.predictor import AlertEvent, LookOutcome, LookRequest, Predictor
from hazardwatch.edge.publish.mqtt_link import MqttLink
from hazardwatch.edge.publish.outbox import Outbox, OutboxError
from hazardwatch.edge.reference import ReferenceBank, ReferencePolicy
from hazardwatch.edge.reference.store import ReferenceStore
from hazardwatch.edge.rollout import CentralClient, RolloutManager
from hazardwatch.edge.snapshot import downscale, snapshot_b64
from hazardwatch.edge.sources import Frame, FrameSource, PersistentReader, SourceError, open_source

log = logging.getLogger(__name__)

MAX_BATCH = 16
PREVIEW_SIDE = 480
RISK_CODES = {RiskLevel.NORMAL: 0, RiskLevel.ELEVATED: 1, RiskLevel.HIGH: 2}


class EngineSetupError(Exception):
    """The config and the models do not fit together; the text says what to change."""


@dataclass
class CameraRuntime:
    cfg: CameraConfig
    source: FrameSource
    health: CameraHealth
    reader: PersistentReader | None = None
    diagnoser: CameraDiagnoser | None = None
    preview: np.ndarray | None = field(default=None, repr=False)
    scores: dict[Hazard, float] = field(default_factory=dict)


@dataclass
class _Pending:
    request: LookRequest
    future: asyncio.Future[LookOutcome]


def _log_failure(future: Future[object]) -> None:
    if (exc := future.exception()) is not None:
        log.error("command failed on the inference thread", exc_info=exc)


def load_detectors(cfg: EdgeConfig) -> dict[Hazard, Detector]:
    """Load and verify every configured model; check every enabled hazard has one."""
    from hazardwatch.manifest import read_manifest

    detectors: dict[Hazard, Detector] = {}
    for ref in cfg.models:
        det: Detector
        if read_manifest(ref.manifest).runtime == "scene_change":
            # The reference fallen-tree detector: no model file, per-camera state (issue 3).
            from hazardwatch.edge.detect.scene_change import SceneChangeDetector

            det = SceneChangeDetector(ref.manifest, threshold=ref.threshold)
        else:
            det = OnnxDetector(ref.manifest, threshold=ref.threshold, threads=ref.threads)
        if det.hazard in detectors:
            raise EngineSetupError(f"two models for hazard {det.hazard.value}: {ref.manifest} and another")
        detectors[det.hazard] = det
    for cam in cfg.cameras:
        for hazard, settings in cam.hazards.items():
            if settings.enabled and cam.enabled and hazard not in detectors:
                raise EngineSetupError(
                    f"camera {cam.id} enables hazard {hazard.value} but no model under models serves it"
                )
    return detectors


class EdgeEngine:
    def __init__(self, cfg: EdgeConfig, detectors: dict[Hazard, Detector] | None = None) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.metrics = EdgeMetrics()
        self.detectors = detectors if detectors is not None else load_detectors(cfg)
        cams = [c for c in cfg.cameras if c.enabled]
        self.evidence = self._make_evidence(cfg)
        self.rollout = self._make_rollout(cfg)
        self.rollout.restore(self.detectors)  # a finished rollout's model survives a restart
        rcfg = cfg.reference
        self.references = ReferenceBank(ReferencePolicy(rcfg.min_looks, rcfg.min_interval_s, rcfg.horizon_looks))
        self.reference_store = ReferenceStore(rcfg.path or cfg.outbox.path.parent / "references")
        for problem in self.reference_store.load(self.references, {c.id for c in cams}):
            log.warning("%s", problem)
        self.predictor = Predictor(
            cams,
            self.detectors,
            {(c.id, h): cfg.confirm_for(c, h) for c in cams for h in c.hazards},
            self.references,
            rcfg.learn_below,
            learn=rcfg.enabled,
        )
        self.rollout.bind(self.predictor.detectors)
        self.scheduler = PatrolScheduler(cams, cfg.patrol, self.started, random.Random())
        self.cameras = {
            c.id: CameraRuntime(
                c,
                open_source(c, cfg.patrol),
                CameraHealth(c.id, cfg.patrol.offline_after_s, self.started),
                diagnoser=(
                    CameraDiagnoser(d, streaming=c.mode == "persistent") if (d := cfg.diagnose_for(c)).enabled else None
                ),
            )
            for c in cams
        }
        # Daily availability per camera (edge/diagnose/availability.py), beside the outbox.
        self.availability = AvailabilityLog(cfg.outbox.path.with_name("camera-availability.json"))
        self.topics = Topics(cfg.broker.topic_prefix if cfg.broker else "hazardwatch", cfg.edge_id)
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_messages)
        self.link = MqttLink(cfg.broker, cfg.edge_id, self.outbox, self._command_from_network) if cfg.broker else None
        self._io_pool = ThreadPoolExecutor(cfg.patrol.max_concurrent_visits, thread_name_prefix="visit")
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="infer")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._visits: set[asyncio.Task[None]] = set()
        self.storage_error: str | None = None

    # -- run --------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._wake = asyncio.Event()
        for cam in self.cameras.values():
            if cam.cfg.mode == "persistent":
                cam.reader = PersistentReader(
                    cam.source,
                    keyframes_only=cam.cfg.decode == "keyframes",
                    backoff=self.cfg.patrol.backoff,
                    name=cam.cfg.id,
                )
                cam.reader.start()
        if self.link:
            self.link.start()
        tasks = [
            asyncio.create_task(self._patrol(stop), name="patrol"),
            asyncio.create_task(self._inference(), name="inference"),
            asyncio.create_task(self._housekeeping(stop), name="housekeeping"),
        ]
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            # A crashed stage must stop the process (and its supervisor restart it), not idle on.
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception():
                    raise RuntimeError(f"edge stage {task.get_name()} crashed") from task.exception()
        finally:
            for t in [*tasks, stopper]:
                t.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
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

    # -- evidence and rollouts (edge/evidence.py, edge/rollout.py) --------------------------------------
    @staticmethod
    def _make_evidence(cfg: EdgeConfig) -> EvidenceStore | None:
        if not cfg.evidence.enabled:
            return None
        uploader = None
        if cfg.central and cfg.evidence.upload:
            uploader = EvidenceUploader(CentralClient(cfg.central), cfg.edge_id, cfg.evidence.chunk_bytes)
        return EvidenceStore(cfg, uploader)

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
        """Model status goes through the outbox (retained per hazard), so central hears it after an outage."""
        try:
            self.outbox.put_status(self.topics.model_status(status.hazard.value), status.model_dump_json().encode())
        except OutboxError as exc:
            log.error("model status could not be stored: %s", exc)
            return
        if self.link:
            self.link.wake()

    async def _patrol(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        limit = self.cfg.patrol.max_concurrent_visits
        while not stop.is_set():
            now = time.time()
            for visit in self.scheduler.due(now, limit - len(self._visits)):
                task = asyncio.create_task(self._visit(visit))
                self._visits.add(task)
                task.add_done_callback(self._visit_done)
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
        cam = self.cameras[visit.camera_id]
        loop = asyncio.get_running_loop()
        try:
            frame, diagnosis = await loop.run_in_executor(self._io_pool, self._grab, cam)
        except SourceError as exc:
            now = time.time()
            delay = self.scheduler.fail(cam.cfg.id, now)
            self.metrics.visit_failures.labels(cam.cfg.id).inc()
            log.warning("camera %s: %s (retry in %.1f s)", cam.cfg.id, exc, delay)
            self._health_changed(cam.health.on_failure(str(exc), now))
            return
        except BaseException:
            self.scheduler.fail(cam.cfg.id, time.time())
            raise
        self._health_changed(cam.health.on_frame(frame.captured_at, time.time(), diagnosis))
        if diagnosis is not None:
            self.metrics.diagnose_cpu.inc(diagnosis.cpu_s)
        self.metrics.frames.labels(cam.cfg.id).inc()
        self.metrics.connect_cpu.inc(frame.connect_cpu_s)
        self.metrics.decode_cpu.inc(frame.decode_cpu_s)
        cam.preview = downscale(frame.image, PREVIEW_SIDE)
        if self.evidence:
            self.evidence.observe(cam.cfg.id, frame.image, frame.captured_at)
        outcome = await self._infer(self._look(cam, frame, visit.hazards, diagnosis))
        cam.scores.update(outcome.scores)
        self.scheduler.finish(cam.cfg.id, visit.hazards, outcome.candidates, time.time())
        for event in outcome.events:
            self._emit_alert(event)

    @staticmethod
    def _look(cam: CameraRuntime, frame: Frame, hazards: frozenset[Hazard], diagnosis: Diagnosis | None) -> LookRequest:
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

    def _grab(self, cam: CameraRuntime) -> tuple[Frame, Diagnosis | None]:
        """On the I/O pool: one fresh frame, diagnosed right after decode (about 1.5 ms, see docs/diagnose.md)."""
        frame = self._fresh_frame(cam)
        if cam.diagnoser is None:
            return frame, None
        try:
            return frame, cam.diagnoser.observe(frame.image, frame.captured_at)
        except Exception:  # diagnosis must never cost a look at the hazards
            log.exception("camera %s: diagnosis failed", cam.cfg.id)
            return frame, None

    def _fresh_frame(self, cam: CameraRuntime) -> Frame:
        if cam.reader is None:
            return cam.source.snapshot()
        frame = cam.reader.latest()
        if frame is None or time.time() - frame.captured_at > self.cfg.patrol.offline_after_s:
            raise SourceError(cam.reader.last_error or f"{cam.source.safe_url}: no fresh frame from the stream")
        return frame

    # -- inference --------------------------------------------------------------------------------
    async def _infer(self, request: LookRequest) -> LookOutcome:
        assert self._queue is not None
        future: asyncio.Future[LookOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(request, future))
        return await future

    async def _inference(self) -> None:
        """Drain the queue in batches on the single inference thread."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(
                    self._infer_pool, self.predictor.process, [p.request for p in batch]
                )
            except Exception as exc:
                log.exception("inference failed for a batch of %d frames", len(batch))
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self.metrics.batch_size.observe(len(batch))
            for name in {d.name for d in self.detectors.values()}:
                self.metrics.inference.labels(name).observe(time.perf_counter() - started)
            for p, outcome in zip(batch, outcomes, strict=True):
                if not p.future.done():
                    p.future.set_result(outcome)

    # -- housekeeping -----------------------------------------------------------------------------
    async def _housekeeping(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_heartbeat = 0.0
        next_availability_save = time.time() + 60.0
        next_reference_save = time.time() + self.cfg.reference.save_interval_s
        while not stop.is_set():
            now = time.time()
            for cam in self.cameras.values():
                self._health_changed(cam.health.check(now, expect_frames=cam.reader is not None))
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
        beat = Heartbeat(
            edge_id=self.cfg.edge_id,
            sent_at=now,
            uptime_s=now - self.started,
            cameras_total=len(self.cameras),
            cameras_online=sum(1 for c in self.cameras.values() if c.health.state and c.health.state.value == "online"),
            outbox_depth=self.outbox.depth(),
            models={d.name: d.version for d in self.detectors.values()},
        )
        self.link.publish_now(self.topics.heartbeat, beat.model_dump_json().encode(), qos=0)

    # -- output -----------------------------------------------------------------------------------
    def _emit_alert(self, event: AlertEvent) -> None:
        cam = self.cameras[event.camera_id].cfg
        snapshot = snapshot_b64(event.frame, self.cfg.snapshot) if event.frame is not None else None

        def build(seq: int) -> bytes:
            return (
                Alert(
                    edge_id=self.cfg.edge_id,
                    sent_at=time.time(),
                    alert_id=event.alert_id,
                    seq=seq,
                    state=event.state,
                    camera_id=cam.id,
                    camera_name=cam.name,
                    site=self.cfg.site,
                    hazard=event.hazard,
                    score=round(event.score, 4),
                    boxes=[Box(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, score=round(b.score, 4)) for b in event.boxes],
                    zone=event.zone,
                    first_frame_at=event.first_frame_at,
                    last_frame_at=event.last_frame_at,
                    model_name=event.model_name,
                    model_version=event.model_version,
                    lat=cam.location.lat if cam.location else None,
                    lon=cam.location.lon if cam.location else None,
                    bearing_deg=cam.bearing_deg,
                    fov_deg=cam.fov_deg,
                    snapshot_jpeg_b64=snapshot,
                )
                .model_dump_json()
                .encode()
            )

        try:
            seq = self.outbox.put_alert(self.topics.alerts(cam.id), build)
        except OutboxError as exc:
            self.storage_error = str(exc)
            self.metrics.outbox_errors.labels("alert").inc()
            log.error("alert %s %s could not be stored: %s", event.alert_id, event.state.value, exc)
            return
        self.storage_error = None
        self.metrics.alerts.labels(event.hazard.value, event.state.value).inc()
        if self.evidence and event.state.value in ("new", "end"):
            self.evidence.on_alert(event, cam.id, self.cfg.edge_id)
        log.info(
            "alert %s %s camera=%s hazard=%s score=%.2f seq=%d",
            event.alert_id[:8],
            event.state.value,
            cam.id,
            event.hazard.value,
            event.score,
            seq,
        )
        if self.link:
            self.link.wake()

    def _health_changed(self, change: HealthChange | None) -> None:
        if change is None:
            return
        log.info("camera %s is %s %s", change.camera_id, change.state.value, change.reason)
        status = CameraStatus(
            edge_id=self.cfg.edge_id,
            sent_at=time.time(),
            camera_id=change.camera_id,
            state=change.state,
            reason=change.reason[:256],
            since=change.since,
            last_frame_at=change.last_frame_at,
            diagnoses=change.diagnoses,
            night=change.night,
        )
        try:
            self.outbox.put_status(self.topics.camera_status(change.camera_id), status.wire_json().encode())
        except OutboxError as exc:
            self.storage_error = str(exc)
            self.metrics.outbox_errors.labels("status").inc()
            return
        if self.link:
            self.link.wake()

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

    # -- views for the HTTP API and metrics --------------------------------------------------------
    def refresh_metrics(self) -> None:
        now = time.time()
        m = self.metrics
        for cam in self.cameras.values():
            h = cam.health
            if h.last_frame_at is not None:
                m.last_frame_age.labels(cam.cfg.id).set(now - h.last_frame_at)
            for state in ("online", "degraded", "offline"):
                m.camera_state.labels(cam.cfg.id, state).set(1 if h.state and h.state.value == state else 0)
            if cam.diagnoser:
                d = cam.diagnoser.current
                for name, conf in d.raw.items():
                    m.diagnosis.labels(cam.cfg.id, name).set(round(conf, 3))
                    m.diagnosis_active.labels(cam.cfg.id, name).set(1 if name in d.active or name in d.info else 0)
            today = self.availability.day(cam.cfg.id, utc_day(now))
            if today["availability"] is not None:
                m.availability_today.labels(cam.cfg.id).set(today["availability"])
            for ref in self.references.states(cam.cfg.id, now):
                m.reference_looks.labels(cam.cfg.id, ref.hazard.value, ref.mode).set(ref.looks)
                m.reference_ready.labels(cam.cfg.id, ref.hazard.value, ref.mode).set(1 if ref.ready else 0)
            m.reference_bytes.labels(cam.cfg.id).set(self.references.nbytes(cam.cfg.id))
        for (cam_id, hazard), interval in self.scheduler.intervals(now).items():
            m.interval.labels(cam_id, hazard.value).set(interval)
            risk = self.scheduler.risk(cam_id, hazard, now)
            m.risk.labels(cam_id, hazard.value).set(RISK_CODES[risk.level] if risk else 0)
        m.outbox_depth.set(self.outbox.depth())
        for kind, count in self.outbox.dropped().items():
            m.outbox_dropped.labels(kind).set(count)
        m.mqtt_connected.set(1 if self.link and self.link.connected else 0)
        m.mqtt_published.set(self.link.published if self.link else 0)

    def camera_views(self) -> list[dict]:
        now = time.time()
        views = []
        for cam in self.cameras.values():
            h = cam.health
            views.append(
                {
                    "id": cam.cfg.id,
                    "name": cam.cfg.name,
                    "mode": cam.cfg.mode,
                    "source": cam.source.safe_url,
                    "state": h.state.value if h.state else "starting",
                    "reason": h.reason,
                    "since": h.since or None,
                    "last_frame_at": h.last_frame_at,
                    "last_frame_age_s": round(now - h.last_frame_at, 3) if h.last_frame_at else None,
                    "frames": h.frames,
                    "failures": h.failures,
                    "diagnoses": h.diagnosis.all_confidences(),
                    "night": h.diagnosis.night,
                    "diagnosis_raw": (
                        {k: round(v, 3) for k, v in cam.diagnoser.current.raw.items()} if cam.diagnoser else {}
                    ),
                    "availability": {
                        "today": self.availability.day(cam.cfg.id, utc_day(now)),
                        "recent_days": self.availability.recent(cam.cfg.id, 7),
                    },
                    "scores": {k.value: round(v, 4) for k, v in cam.scores.items()},
                    "references": [
                        {**asdict(ref), "hazard": ref.hazard.value}
                        for ref in self.references.states(cam.cfg.id, now)
                    ],
                    "hazards": {
                        hz.value: {
                            "interval_s": self.scheduler.interval(cam.cfg.id, hz, now),
                            "risk": (r.level.value if (r := self.scheduler.risk(cam.cfg.id, hz, now)) else "normal"),
                        }
                        for hz in cam.cfg.hazards
                        if cam.cfg.hazards[hz].enabled
                    },
                }
            )
        return views
