"""Build the engine's parts from the config: models, cameras, references, predictor, evidence.

Everything here runs once at start-up and fails with an `EngineSetupError` (or the detector's own
ManifestError) naming what to change, before any camera is visited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hazardwatch.contract import Hazard
from hazardwatch.edge.central_client import CentralClient
from hazardwatch.edge.config import CameraConfig, EdgeConfig, PatrolConfig
from hazardwatch.edge.detect import Detector
from hazardwatch.edge.detect.registry import build_detector
from hazardwatch.edge.diagnose import CameraDiagnoser
from hazardwatch.edge.evidence import EvidenceStore, EvidenceUploader
from hazardwatch.edge.health import CameraHealth
from hazardwatch.edge.predictor import Predictor
from hazardwatch.edge.reference import ReferenceBank, ReferencePolicy
from hazardwatch.edge.reference.store import ReferenceStore
from hazardwatch.edge.sources import FrameSource, PersistentReader, open_source

log = logging.getLogger(__name__)


class EngineSetupError(Exception):
    """The config and the models do not fit together; the text says what to change."""


@dataclass
class CameraRuntime:
    """One enabled camera as the engine holds it: its source, health, diagnosis and latest view."""

    cfg: CameraConfig
    source: FrameSource
    health: CameraHealth
    reader: PersistentReader | None = None
    diagnoser: CameraDiagnoser | None = None
    preview: np.ndarray | None = field(default=None, repr=False)
    scores: dict[Hazard, float] = field(default_factory=dict)
    looked_at: dict[Hazard, float] = field(default_factory=dict)  # capture time of the frame each hazard last saw
    candidates: set[Hazard] = field(default_factory=set)  # hazards whose last look saw a candidate region


def load_detectors(cfg: EdgeConfig) -> dict[Hazard, Detector]:
    """Load and verify every configured model; check every enabled hazard has one."""
    detectors: dict[Hazard, Detector] = {}
    manifests: dict[Hazard, str] = {}
    for ref in cfg.models:
        det = build_detector(ref.manifest, threshold=ref.threshold, threads=ref.threads)
        if det.hazard in detectors:
            raise EngineSetupError(
                f"models: {manifests[det.hazard]} and {ref.manifest} both serve hazard {det.hazard.value}; keep one"
            )
        detectors[det.hazard] = det
        manifests[det.hazard] = str(ref.manifest)
    for cam in cfg.cameras:
        for hazard, settings in cam.hazards.items():
            if settings.enabled and cam.enabled and hazard not in detectors:
                raise EngineSetupError(
                    f"camera {cam.id} enables hazard {hazard.value} but no model under models serves it"
                )
    return detectors


def build_cameras(cfg: EdgeConfig, cams: list[CameraConfig], started: float) -> dict[str, CameraRuntime]:
    """Sources are opened lazily by their visits; a diagnoser only where diagnosis is enabled."""
    return {
        c.id: CameraRuntime(
            c,
            open_source(c, cfg.patrol),
            CameraHealth(c.id, cfg.patrol.offline_after_s, started),
            diagnoser=(
                CameraDiagnoser(d, streaming=c.mode == "persistent") if (d := cfg.diagnose_for(c)).enabled else None
            ),
        )
        for c in cams
    }


def start_readers(cameras: dict[str, CameraRuntime], patrol: PatrolConfig) -> None:
    """One reader thread per persistent camera; snapshot cameras connect per visit instead."""
    for cam in cameras.values():
        if cam.cfg.mode == "persistent":
            cam.reader = PersistentReader(
                cam.source,
                keyframes_only=cam.cfg.decode == "keyframes",
                backoff=patrol.backoff,
                name=cam.cfg.id,
            )
            cam.reader.start()


def build_references(cfg: EdgeConfig, camera_ids: set[str]) -> tuple[ReferenceBank, ReferenceStore]:
    """The learnt normals, loaded from disk; a damaged file costs its camera's learning, not the start."""
    rcfg = cfg.reference
    bank = ReferenceBank(
        ReferencePolicy(
            rcfg.min_looks,
            rcfg.min_interval_s,
            rcfg.horizon_looks,
            rcfg.settle_looks,
            rcfg.warmup,
            rcfg.warming_learn_share,
        )
    )
    store = ReferenceStore(rcfg.path or cfg.outbox.path.parent / "references")
    for problem in store.load(bank, camera_ids):
        log.warning("%s", problem)
    return bank, store


def build_predictor(
    cfg: EdgeConfig,
    cams: list[CameraConfig],
    detectors: dict[Hazard, Detector],
    references: ReferenceBank,
    on_inference: Callable[[str, float], None] | None = None,
) -> Predictor:
    rcfg = cfg.reference
    return Predictor(
        cams,
        detectors,
        {(c.id, h): cfg.confirm_for(c, h) for c in cams for h in c.hazards},
        references,
        rcfg.learn_below,
        learn=rcfg.enabled,
        on_inference=on_inference,
    )


def build_evidence(cfg: EdgeConfig) -> EvidenceStore | None:
    """The evidence store, with an uploader when central is configured and uploads are on."""
    if not cfg.evidence.enabled:
        return None
    uploader = None
    if cfg.central and cfg.evidence.upload:
        uploader = EvidenceUploader(CentralClient(cfg.central), cfg.edge_id, cfg.evidence.chunk_bytes)
    return EvidenceStore(cfg, uploader)
