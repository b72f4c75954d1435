"""Edge config, per camera: its source and mode, where it stands, its hazards, zones, masks, vote and
diagnosis settings. Validated strictly like the rest of the edge config (edge/config.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyUrl, Field, ValidationInfo, field_validator, model_validator

from hazardwatch.contract import Hazard
from hazardwatch.contract.messages import Id
from hazardwatch.kernel.settings import Strict, resolve_path

Point = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=256)]


class ConfirmConfig(Strict):
    """Sliding-window vote (after Pyronear): the last `window` looks at a camera decide."""

    window: int = Field(default=5, ge=1, le=50, description="Number of recent looks in the vote")
    min_votes: int = Field(default=3, ge=1, description="Looks whose region must overlap the candidate")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Summed score / window must reach this")
    ongoing_factor: float = Field(default=0.8, gt=0, le=1, description="Threshold factor while alerting")
    min_iou: float = Field(default=0.0, ge=0, lt=1, description="Overlap needed to count as the same region")
    end_after_s: float = Field(default=120.0, gt=0, description="Clear period that ends an alert")
    update_score_delta: float = Field(default=0.1, gt=0, le=1, description="Score rise that sends an update")
    still_seen_s: float = Field(
        default=10.0,
        gt=0,
        description="While an alert is open, a confirmed look sends an update when none was sent for this long, "
        "so central learns the hazard is still there: a closed incident comes back within one patrol interval "
        "for intervals of at least this (a fast persistent camera sends one update per this period, not per look)",
    )

    @model_validator(mode="after")
    def _votes(self) -> ConfirmConfig:
        if self.min_votes > self.window:
            raise ValueError(f"min_votes ({self.min_votes}) cannot exceed window ({self.window})")
        return self


class ZoomConfig(Strict):
    """Look at the camera's horizon band closer (edge/detect/zoom.py): crops of it, each compared with a
    normal of its own, find plumes under 1 % of the frame. Costs one more model run per crop and look, and
    a reference per crop; only models whose manifest has `reference.zoom` use it."""

    band: tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]] = Field(
        default=(0.3, 0.8), description="Top and bottom of the band, shares of the frame's height: where the horizon is"
    )

    @field_validator("band")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[1] - v[0] >= 0.1:
            raise ValueError(f"band must be [top, bottom] with bottom at least 0.1 below top, got {list(v)}")
        return v


class HazardSettings(Strict):
    enabled: bool = True
    interval_s: float | None = Field(default=None, gt=0, description="Revisit interval; default from patrol")
    threshold: float | None = Field(default=None, gt=0, lt=1, description="Per-look threshold override")
    zones: list[Id] | None = Field(default=None, description="Restrict to these zones; None: whole view")
    confirm: ConfirmConfig | None = None
    zoom: ZoomConfig | None = Field(default=None, description="Look at the horizon band closer; None: off")


class Zone(Strict):
    id: Id
    polygon: Polygon


class Location(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class DiagnoseConfig(Strict):
    """Camera diagnosis (docs/diagnose.md): thresholds and hysteresis, defaults tuned on bench/diagnose.py."""

    enabled: bool = True
    enter_looks: int = Field(default=2, ge=1, le=20, description="Consecutive looks that raise a diagnosis")
    leave_looks: int = Field(default=2, ge=1, le=50, description="Consecutive clear looks that end it")
    warmup_looks: int = Field(default=3, ge=1, le=100, description="Looks that build the reference first")
    reference_rate: float = Field(
        default=0.05, gt=0, le=1, description="EMA weight of one healthy look in the learnt reference"
    )
    black_p99: float = Field(default=40, ge=0, le=255, description="99th percentile grey below this: black")
    overexposed_share: float = Field(default=0.5, gt=0, le=1, description="Share of clipped pixels: overexposed")
    blank_std: float = Field(default=4.0, ge=0, description="Grey std below this (not black/white): blank")
    covered_share: float = Field(
        default=0.2, gt=0, le=1, description="Share of the textured view gone blank and unlike the reference"
    )
    blurred_ratio: float = Field(
        default=0.72, gt=0, lt=1, description="Sharpness over the camera's usual sharpness below this: blurred"
    )
    blurred_after_s: float = Field(
        default=15.0,
        ge=0,
        le=3600,
        description="Blur is raised only once it has lasted this long (besides enter_looks looks; a run ends "
        "after leave_looks looks without it): an encoder smooths a static view for a few seconds while "
        "vehicles pass, a defocused lens stays so",
    )
    shift_share: float = Field(
        default=0.025, gt=0, lt=0.5, description="Translation (share of the width) that counts as a turned view"
    )
    mismatch: float = Field(
        default=0.5, gt=0, lt=1, description="Structure correlation below this share of the usual: view changed"
    )
    frozen_diff: float = Field(
        default=0.15, ge=0, description="Mean grey difference from the last look below this: same frame"
    )
    frozen_after_s: float = Field(
        default=300.0,
        ge=0,
        description="Snapshot cameras: the same picture for this long is frozen (a snapshot URL may repeat a cached "
        "picture for a while); persistent streams are frozen after enter_looks identical looks",
    )
    night_saturation: float = Field(default=2.0, ge=0, description="Colourfulness below this: night / IR mode")
    adopt_view_after_s: float = Field(
        default=86400.0, gt=0, description="A shifted view that persists this long becomes the new reference"
    )


class CameraConfig(Strict):
    id: Id
    name: str = ""
    source: str = Field(description="rtsp://..., http(s)://... JPEG snapshot, a video file or image folder")
    mode: Literal["snapshot", "persistent"] = Field(
        default="snapshot", description="snapshot: connect, one frame, disconnect; persistent: stay open"
    )
    decode: Literal["keyframes", "all"] = Field(
        default="keyframes", description="Persistent mode: decode key frames only (cheap) or every frame"
    )
    enabled: bool = True
    location: Location | None = None
    bearing_deg: float | None = Field(default=None, ge=0, lt=360)
    fov_deg: float | None = Field(default=None, gt=0, le=360)
    height_m: float | None = Field(default=None, gt=0, le=10000, description="Lens height above the ground it sees")
    tilt_deg: float | None = Field(default=None, ge=-90, le=90, description="Downward pitch of the view's centre")
    view_range_m: tuple[float, float] | None = Field(
        default=None, description="Terrain hint: nearest and farthest ground distance the view covers, in metres"
    )
    hazards: dict[Hazard, HazardSettings] = Field(min_length=1)
    zones: list[Zone] = Field(default_factory=list, max_length=64)
    masks: list[Polygon] = Field(default_factory=list, max_length=64, description="Regions never analysed")
    diagnose: DiagnoseConfig | None = Field(default=None, description="Per-camera diagnosis settings; None: edge's")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str, info: ValidationInfo) -> str:
        if "://" in v:
            scheme = v.split("://", 1)[0].lower()
            if scheme not in ("rtsp", "rtsps", "http", "https", "file"):
                raise ValueError(f"unsupported source scheme {scheme!r}: use rtsp, http(s) or a local path")
            AnyUrl(v)
            return v
        resolved = resolve_path(Path(v), info)
        return str(resolved)

    @model_validator(mode="after")
    def _zones(self) -> CameraConfig:
        if self.view_range_m is not None and not 0 <= self.view_range_m[0] < self.view_range_m[1]:
            raise ValueError("view_range_m must be [nearest, farthest] metres with 0 <= nearest < farthest")
        ids = [z.id for z in self.zones]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"zone ids must be unique within a camera; repeated: {', '.join(dupes)}")
        for hazard, settings in self.hazards.items():
            for zone in settings.zones or []:
                if zone not in ids:
                    raise ValueError(f"hazards.{hazard.value}.zones names unknown zone {zone!r}")
        return self
