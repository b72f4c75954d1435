"""Edge configuration: one YAML file, validated strictly, exported as JSON Schema.

Unknown keys are errors (`extra="forbid"`), cross-checks run after field validation, and paths are
resolved relative to the config file so a config can be moved with its models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from hazardwatch.contract import Hazard, RiskLevel
from hazardwatch.contract.messages import Id

# Re-exported: the per-camera models are read from here by the engine, predictor and scheduler.
from hazardwatch.edge.camera_config import CameraConfig, ConfirmConfig, DiagnoseConfig, HazardSettings, Location, Zone
from hazardwatch.kernel.settings import (
    BackoffSettings,
    BrokerSettings,
    HttpSettings,
    Secret,
    Strict,
    TlsSettings,
    refuse_removed_keys,
    resolve_path,
)

__all__ = [
    "BackoffConfig",
    "BrokerConfig",
    "CameraConfig",
    "CentralLinkConfig",
    "ConfirmConfig",
    "DiagnoseConfig",
    "EdgeConfig",
    "EvidenceConfig",
    "HazardSettings",
    "Location",
    "PatrolConfig",
    "RolloutConfig",
    "SnapshotConfig",
    "Zone",
    "model_problems",
    "source_problems",
]


class TlsConfig(TlsSettings):
    insecure_skip_hostname_check: bool = False


class BrokerConfig(BrokerSettings):
    tls: TlsConfig | None = None
    client_id: str | None = Field(default=None, description="Default: hazardwatch-edge-<edge_id>")
    topic_prefix: str = Field(default="hazardwatch", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    max_inflight: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _reconnect(self) -> BrokerConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class BackoffConfig(BackoffSettings):
    """Reconnects to a camera that failed (defaults: 1 s doubling to 60 s)."""


class PatrolConfig(Strict):
    intervals_s: dict[Hazard, float] = Field(
        default_factory=lambda: {
            Hazard.SMOKE: 30.0,
            Hazard.FIRE: 30.0,
            Hazard.WATERLOGGING: 60.0,
            Hazard.FALLEN_TREE: 60.0,
        },
        description="Default revisit interval per hazard",
    )
    burst_interval_s: float = Field(default=2.0, gt=0, description="Re-check cadence after a candidate")
    phase_jitter_s: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="Random delay added to each next look, so looks do not lock onto the stream's key-frame "
        "phase and wait a whole key-frame interval every visit (see bench/README.md)",
    )
    risk_factors: dict[RiskLevel, float] = Field(
        default_factory=lambda: {RiskLevel.NORMAL: 1.0, RiskLevel.ELEVATED: 0.5, RiskLevel.HIGH: 0.25},
        description="Interval multiplier per risk level",
    )
    workers: int = Field(default=2, ge=1, le=64, description="Threads for connect, decode and inference")
    max_concurrent_visits: int = Field(default=16, ge=1, le=1024, description="Snapshot visits in flight")
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)
    offline_after_s: float = Field(default=15.0, gt=0, description="No frame for this long: offline")
    backoff: BackoffConfig = BackoffConfig()

    @model_validator(mode="after")
    def _factors(self) -> PatrolConfig:
        for level in RiskLevel:
            if level not in self.risk_factors:
                raise ValueError(f"risk_factors needs a value for {level.value}")
        return self


class ModelRef(Strict):
    manifest: Path = Field(description="Path to the model's manifest JSON (the ONNX file sits beside it)")
    threshold: float | None = Field(default=None, gt=0, lt=1, description="Override the manifest's threshold")
    threads: int = Field(default=2, ge=1, le=64, description="ONNX Runtime intra-op threads")

    _path = field_validator("manifest")(resolve_path)


class OutboxConfig(Strict):
    path: Path = Field(default=Path("var/edge-outbox.db"), validate_default=True)
    max_messages: int = Field(default=100_000, ge=100)

    _path = field_validator("path")(resolve_path)


class HttpConfig(HttpSettings):
    port: int = Field(default=8090, ge=0, le=65535, description="0 picks a free port")


class SnapshotConfig(Strict):
    max_side: int = Field(default=640, ge=64, le=4096)
    jpeg_quality: int = Field(default=80, ge=20, le=100)
    max_bytes: int = Field(default=200_000, ge=10_000, le=300_000)


class CentralLinkConfig(Strict):
    """Central's HTTP API, for evidence upload and model downloads (docs/retraining.md)."""

    url: str = Field(pattern=r"^https?://[^\s]+$", description="Base URL, e.g. https://central.example:8080")
    token: Secret = Field(description="Edge token (role edge, named after edge_id): {env: NAME} or {file: PATH}")
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    ca_file: Path | None = Field(default=None, description="CA bundle for an https URL with a private CA")

    _paths = field_validator("ca_file")(resolve_path)

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return refuse_removed_keys(data, {"token_env": "token: {env: NAME}", "token_file": "token: {file: PATH}"})


class EvidenceConfig(Strict):
    """Clips and full-resolution snapshots of alerts (edge/evidence.py)."""

    enabled: bool = True
    path: Path | None = Field(default=None, description="Evidence folder; default: evidence/ beside the outbox")
    buffer_frames: int = Field(default=6, ge=1, le=200, description="Looked-at frames kept per camera")
    buffer_bytes: int = Field(default=32 << 20, ge=1 << 20, description="Memory bound of one camera's buffer")
    buffer_max_side: int = Field(default=960, ge=64, le=4096, description="Buffered frames are downscaled to this")
    frames_after: int = Field(default=3, ge=0, le=100, description="Looks after the alert event added to its clip")
    finish_after_s: float = Field(default=60.0, gt=0, description="Close a clip after this even if looks are missing")
    clip_fps: float = Field(default=2.0, gt=0, le=30)
    max_bytes: int = Field(default=2 << 30, ge=1 << 20, description="Disk budget of the evidence folder")
    upload: bool = Field(default=True, description="Upload to central (needs the central section)")
    chunk_bytes: int = Field(default=1 << 20, ge=16 << 10, le=16 << 20)
    quiet_share: float = Field(
        default=0.0,
        ge=0,
        le=0.1,
        description="Share of looks that raised nothing uploaded as quiet snapshots for labelling, so misses can "
        "be found (0.002: about one look in 500; 0 = off)",
    )

    _path = field_validator("path")(resolve_path)


class RolloutConfig(Strict):
    """Model rollouts from central (edge/rollout.py)."""

    path: Path | None = Field(default=None, description="Downloaded models + active.json; default beside outbox")
    health_frames: int = Field(default=4, ge=1, le=64, description="Recent frames the new model must score")
    probation_batches: int = Field(default=3, ge=0, le=1000, description="Batches the new model runs on trial")
    max_model_bytes: int = Field(default=512 << 20, ge=1 << 10)

    _path = field_validator("path")(resolve_path)


class ReferenceConfig(Strict):
    """Each camera learns its normal for models that can use it (manifest `reference`; edge/reference/).

    Memory: 3 float32 arrays of the model's embedding per camera, hazard and light mode (day, IR):
    about 346 KB per mode for the shipped smoke model (28,800 floats), so at most about 0.66 MiB per camera,
    plus up to settle_looks + 1 float16 looks waiting to be learnt (58 KB each): about 0.82 MiB.
    """

    enabled: bool = Field(default=True, description="False: every camera runs the cold-start model only")
    path: Path | None = Field(default=None, description="Folder of the saved references; default beside the outbox")
    min_looks: int = Field(
        default=16,
        ge=2,
        le=10_000,
        description="Quiet looks before a reference is ready (used at the model's own threshold; learnt exactly "
        "until then, after that following slow change)",
    )
    warmup: bool = Field(
        default=True,
        description="Compare looks with a reference still learning, from the first warm-up step its model's manifest "
        "gives (reference.warmup, at that step's stricter threshold); False: run cold until min_looks",
    )
    min_interval_s: float = Field(
        default=120.0,
        ge=0,
        description="Quiet looks closer than this to the last one learnt are skipped, so "
        "a reference spans time (clouds, light) rather than a few minutes",
    )
    horizon_looks: int = Field(
        default=500,
        ge=10,
        le=1_000_000,
        description="Once ready, the reference follows slow change over this many looks",
    )
    learn_below: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="A look is learnt only when its score stays under this share of the "
        "operating threshold and nothing votes or alerts on that camera and hazard",
    )
    settle_looks: int = Field(
        default=2,
        ge=0,
        le=20,
        description="A quiet look is learnt only after the camera stayed quiet for this many min_interval_s "
        "after it (any look that is not quiet drops the waiting ones), so a plume too faint to flag at first "
        "does not become the camera's normal; waiting looks cost 2 bytes per embedding element each",
    )
    warming_learn_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="While a reference warms up, a look is learnt only under learn_below x a bar this share of "
        "the way from the ready reference's threshold up to the warm-up step's stricter one (0: the ready "
        "threshold; 1: the step's own, the rule before this option), so the first minutes of a fire that starts "
        "while a camera learns are not learnt as its normal",
    )
    save_interval_s: float = Field(default=300.0, gt=0, description="How often references are written to disk")

    _path = field_validator("path")(resolve_path)


class EdgeConfig(Strict):
    edge_id: Id
    site: str = ""
    broker: BrokerConfig | None = Field(
        default_factory=BrokerConfig, description="null: no MQTT; alerts wait in the outbox"
    )
    cameras: list[CameraConfig] = Field(min_length=1, max_length=5000)
    patrol: PatrolConfig = PatrolConfig()
    confirm: dict[Hazard, ConfirmConfig] = Field(default_factory=dict, description="Per-hazard defaults")
    models: list[ModelRef] = Field(min_length=1)
    outbox: OutboxConfig = OutboxConfig()
    http: HttpConfig = HttpConfig()
    snapshot: SnapshotConfig = SnapshotConfig()
    heartbeat_s: float = Field(default=30.0, gt=0)
    diagnose: DiagnoseConfig = DiagnoseConfig()
    central: CentralLinkConfig | None = Field(default=None, description="Central's HTTP API (evidence, models)")
    evidence: EvidenceConfig = EvidenceConfig()
    rollout: RolloutConfig = RolloutConfig()
    reference: ReferenceConfig = ReferenceConfig()

    @model_validator(mode="before")
    @classmethod
    def _defaults_relative_to_file(cls, data: object) -> object:
        # Validating an explicit empty section resolves its default paths against the config file.
        if isinstance(data, dict) and "outbox" not in data:
            data = {**data, "outbox": {}}
        return data

    @model_validator(mode="after")
    def _cross(self) -> EdgeConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        return self

    def diagnose_for(self, camera: CameraConfig) -> DiagnoseConfig:
        return camera.diagnose or self.diagnose

    def confirm_for(self, camera: CameraConfig, hazard: Hazard) -> ConfirmConfig:
        settings = camera.hazards.get(hazard)
        if settings and settings.confirm:
            return settings.confirm
        return self.confirm.get(hazard, ConfirmConfig())


def model_problems(cfg: EdgeConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Each model whose manifest or model file is missing or corrupt, keyed by its `models[i].manifest` entry.

    Run by `config check` and at edge start, so the error names the config line, not only the file.
    """
    from hazardwatch.manifest import ManifestError, verify_model_file

    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, ref in enumerate(cfg.models):
        try:
            verify_model_file(ref.manifest)
        except ManifestError as exc:
            found.append((("models", i, "manifest"), str(exc)))
    return found


def source_problems(cfg: EdgeConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Each camera whose local folder or file does not exist (rtsp/http URLs are not probed here).

    Not a field validator: a container may render its frames after the config is read (docker/).
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, cam in enumerate(cfg.cameras):
        local = cam.source
        if "://" in local:
            scheme, local = local.split("://", 1)
            if scheme.lower() != "file":
                continue
        if not Path(local).exists():
            found.append((("cameras", i, "source"), f"{local} does not exist (a folder of images or a video file)"))
    return found
