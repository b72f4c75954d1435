"""Payload models of the MQTT contract, schema version 1.

Every payload carries `schema_version` and `kind`, so a consumer can reject an unknown version
before reading further. Models forbid unknown fields: a change to the contract is a new version,
never a silent extension. Sizes are bounded so a hostile payload cannot exhaust a consumer.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict

SCHEMA_VERSION: Final = 1
MAX_PAYLOAD_BYTES = 512 * 1024
MAX_SNAPSHOT_B64 = 400 * 1024
MAX_INT = 2**63 - 1  # what every store (SQLite INTEGER, PostgreSQL BIGINT) can hold

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Text = Annotated[str, Field(max_length=256)]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]


def _integral(value: object) -> object:
    """JSON Schema counts 2.0 as an integer; so does the strict parser (but never true or "2")."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT:
        return int(value)
    return value


WireInt = Annotated[int, BeforeValidator(_integral)]


def _not_bool(value: object) -> object:
    """`Literal[1]` alone takes true for 1 (True == 1 in Python); the contract's version is a number."""
    if isinstance(value, bool):
        raise ValueError("schema_version must be the number 1, not a boolean")
    return value


# A JSON object whose keys must all match: `patternProperties` alone would let other keys through.
_ONLY_PATTERN_KEYS: JsonDict = {"additionalProperties": False}


def _require_envelope(schema: JsonDict, cls: type) -> None:
    """`schema_version` and `kind` have defaults for producers, but a payload must carry both."""
    required = schema.get("required", [])
    rest = [r for r in required if r != "kind"] if isinstance(required, list) else []
    schema["required"] = ["schema_version", "kind", *rest]


class Hazard(StrEnum):
    SMOKE = "smoke"
    FIRE = "fire"
    WATERLOGGING = "waterlogging"
    FALLEN_TREE = "fallen_tree"


class AlertState(StrEnum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


class CameraState(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class RiskLevel(StrEnum):
    """Raised watch shortens a hazard's revisit interval (see the edge's patrol settings)."""

    NORMAL = "normal"
    ELEVATED = "elevated"
    HIGH = "high"


class _Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, json_schema_extra=_require_envelope
    )  # JSON has no NaN or Infinity

    schema_version: Annotated[Literal[1], BeforeValidator(_not_bool)] = SCHEMA_VERSION
    edge_id: Id
    sent_at: float = Field(description="Unix time (s) the edge created this message")


class Box(BaseModel):
    """A region in relative image coordinates (0..1), top-left origin; x2 >= x1 and y2 >= y1 (a check
    JSON Schema cannot express: the only way the parser is stricter than the published schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # JSON has no NaN or Infinity

    x1: UnitFloat
    y1: UnitFloat
    x2: UnitFloat
    y2: UnitFloat
    score: UnitFloat

    @field_validator("x2")
    @classmethod
    def _x_order(cls, v: float, info: ValidationInfo) -> float:
        if "x1" in info.data and v < info.data["x1"]:
            raise ValueError("x2 must be >= x1")
        return v

    @field_validator("y2")
    @classmethod
    def _y_order(cls, v: float, info: ValidationInfo) -> float:
        if "y1" in info.data and v < info.data["y1"]:
            raise ValueError("y2 must be >= y1")
        return v


class Alert(_Message):
    """One lifecycle event of an alert; `seq` increases by one per edge across all alert events."""

    kind: Literal["alert"] = "alert"
    alert_id: Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    seq: WireInt = Field(ge=0, le=MAX_INT, description="Per-edge sequence number of alert events (dedup and order)")
    state: AlertState
    camera_id: Id
    camera_name: Text = ""
    site: Text = ""
    hazard: Hazard
    score: UnitFloat
    boxes: list[Box] = Field(default_factory=list, max_length=64)
    zone: Id | None = None
    first_frame_at: float
    last_frame_at: float
    model_name: Text
    model_version: Text
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    bearing_deg: float | None = Field(default=None, ge=0, lt=360)
    fov_deg: float | None = Field(default=None, gt=0, le=360)
    snapshot_jpeg_b64: str | None = Field(default=None, max_length=MAX_SNAPSHOT_B64)


NormalPhase = Literal["learning", "warming", "ready"]


class CameraStatus(_Message):
    """A camera's health and placement. `diagnoses`, `night` and the placement fields (position, bearing,
    field of view, height, tilt, view range) are optional additions within version 1: producers leave them
    out when empty/false/None, so a payload without them is exactly as before."""

    kind: Literal["camera_status"] = "camera_status"
    camera_id: Id
    state: CameraState
    reason: Text = ""
    since: float
    last_frame_at: float | None = None
    diagnoses: dict[Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")], UnitFloat] = Field(
        default_factory=dict,
        max_length=16,
        json_schema_extra=_ONLY_PATTERN_KEYS,
        description="Diagnoses in effect with their confidence: black, overexposed, blank, covered, blurred, "
        "view_shifted, frozen (the camera is degraded) or night_ir, fog (informational, it stays online)",
    )
    night: bool = Field(default=False, description="The camera is in night / infrared (greyscale) mode")
    normal: dict[Hazard, NormalPhase] = Field(
        default_factory=dict,
        description="How far the camera has learnt its normal, per hazard whose model compares each look with it "
        "(docs/models.md): learning (the model runs alone, at its cold-start threshold), warming (compared with "
        "a reference still learning, at a stricter threshold) or ready",
    )
    camera_name: Text | None = Field(default=None, description="The camera's name in its edge's config")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Where the camera stands (its edge's config)")
    lon: float | None = Field(default=None, ge=-180, le=180)
    bearing_deg: float | None = Field(default=None, ge=0, lt=360, description="Where it looks, clockwise from north")
    fov_deg: float | None = Field(default=None, gt=0, le=360, description="Horizontal field of view")
    height_m: float | None = Field(default=None, gt=0, le=10000, description="Lens height above the ground it sees")
    tilt_deg: float | None = Field(default=None, ge=-90, le=90, description="Downward pitch of the view's centre")
    view_range_m: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="Terrain hint: nearest and farthest ground distance the view covers (m)"
    )

    def wire_json(self) -> str:
        """JSON without the optional fields at their defaults, so older strict consumers still accept it."""
        unset = {k for k in PLACEMENT if getattr(self, k) is None}  # 0.0 is a position, None is not
        exclude = unset | {k for k in ("diagnoses", "night", "normal") if not getattr(self, k)}
        return self.model_dump_json(exclude=exclude)

    @field_validator("view_range_m")
    @classmethod
    def _range_order(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[1] <= v[0]:
            raise ValueError("view_range_m must be [nearest, farthest] with farthest > nearest")
        return v


PLACEMENT = ("camera_name", "lat", "lon", "bearing_deg", "fov_deg", "height_m", "tilt_deg", "view_range_m")


class Availability(_Message):
    kind: Literal["availability"] = "availability"
    state: Literal["online", "offline"]


class Heartbeat(_Message):
    kind: Literal["heartbeat"] = "heartbeat"
    uptime_s: float = Field(ge=0)
    cameras_total: WireInt = Field(ge=0, le=MAX_INT)
    cameras_online: WireInt = Field(ge=0, le=MAX_INT)
    outbox_depth: WireInt = Field(ge=0, le=MAX_INT)
    models: dict[Id, Text] = Field(
        default_factory=dict, max_length=32, description="model name -> version", json_schema_extra=_ONLY_PATTERN_KEYS
    )


class SetRiskCommand(_Message):
    """Central raises or restores the watch level of a hazard on some (or all) cameras of an edge."""

    kind: Literal["set_risk"] = "set_risk"
    command_id: Id
    hazard: Hazard
    level: RiskLevel
    cameras: list[Id] | None = Field(default=None, max_length=10000, description="None: every camera")
    until: float | None = Field(default=None, description="Unix time the level falls back to normal")
    reason: Text = ""


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class RolloutCommand(_Message):
    """Central asks an edge to fetch a registered model over HTTP, check it, and switch to it.

    The edge builds the download URLs from its own configured central URL, so a command can never
    point it at another host (docs/retraining.md)."""

    kind: Literal["rollout"] = "rollout"
    command_id: Id
    rollout_id: Id
    hazard: Hazard
    model_name: Id
    model_version: Id
    sha256: Sha256
    size: WireInt = Field(gt=0, le=1 << 31, description="Model file size in bytes")


class LearnNormalCommand(_Message):
    """An operator marked an alert a false alarm: the edge teaches that camera's reference that what
    it saw there is normal (docs/models.md, "Each camera learns its normal")."""

    kind: Literal["learn_normal"] = "learn_normal"
    command_id: Id
    camera_id: Id
    hazard: Hazard
    alert_id: Id = Field(description="The edge's alert whose look is normal for this camera")
    box: Box | None = Field(default=None, description="Only this region is normal; None: the alert's own regions")
    reason: Text = ""


class ModelStatus(_Message):
    """The edge reports a rollout step or its running model for one hazard (retained per hazard)."""

    kind: Literal["model_status"] = "model_status"
    hazard: Hazard
    rollout_id: Id | None = None
    state: Literal["downloading", "loaded", "active", "failed", "rolled_back"]
    model_name: Id
    model_version: Text = Field(description="The version now running for this hazard")
    target_version: Text = Field(default="", description="The version the rollout asked for")
    detail: Text = ""


Command = SetRiskCommand | RolloutCommand | LearnNormalCommand
AnyMessage = Annotated[
    Alert
    | CameraStatus
    | Availability
    | Heartbeat
    | SetRiskCommand
    | RolloutCommand
    | LearnNormalCommand
    | ModelStatus,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


class ContractError(ValueError):
    """A payload that is not a valid v1 message; the text names the field and the reason."""


def parse_message(
    payload: bytes | str,
) -> Alert | CameraStatus | Availability | Heartbeat | Command | ModelStatus:
    """Validate one payload with size and version checks before field validation.

    A valid payload is parsed once, by pydantic: a `schema_version` it was given is `Literal[1]`, so it
    passed the version check too (a missing one has a default for producers, so its presence is checked).
    Only a rejected payload is parsed again, to name the first check it fails in the contract's order:
    size, JSON, object, version, then the field."""
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(raw)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}")
    try:
        # Strict, as the published JSON Schema reads: no "77001" for an integer, no true for a number.
        parsed = _ADAPTER.validate_json(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where, why = ".".join(str(p) for p in first["loc"]) or "(root)", first["msg"]
    else:
        if "schema_version" in parsed.model_fields_set:
            return parsed
        where, why = "schema_version", "Field required"
    _check_envelope(raw)
    raise ContractError(f"{where}: {why}") from None


def _check_envelope(raw: bytes) -> None:
    """Raise the ContractError of a payload that is not JSON, not an object or of another version."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ContractError("payload nests too deeply") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer over Python's 4300-digit limit
        raise ContractError(f"payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ContractError("payload must be a JSON object")
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int | float) or version != SCHEMA_VERSION:
        raise ContractError(f"schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")


def contract_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every v1 payload, for third parties."""
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://hazardwatch.example/schemas/mqtt-contract-v1.json"
    schema["title"] = "hazardwatch MQTT contract v1"
    schema["description"] = (
        "Payloads on hazardwatch/v1/{edge_id}/... topics: alert, camera_status, availability, "
        "heartbeat, model_status (edge to central) and set_risk, rollout, learn_normal (central to edge). "
        "See docs/contract.md."
    )
    return schema
