"""Central configuration: one YAML file, strict, exported as JSON Schema (configs/schemas/)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hazardwatch.central.ingest.clock import ClockConfig
from hazardwatch.central.map_config import MapConfig
from hazardwatch.central.response_config import ConfidenceConfig, FalseAlarmConfig, ResponseConfig, SeverityRules
from hazardwatch.contract import Hazard, RiskLevel
from hazardwatch.contract.messages import Id
from hazardwatch.kernel import settings as kernel
from hazardwatch.kernel.settings import Secret, Strict, resolve_path

Severity = Literal["minor", "moderate", "severe", "extreme"]
SEVERITY_ORDER: dict[str, int] = {"minor": 0, "moderate": 1, "severe": 2, "extreme": 3}


class TlsConfig(kernel.TlsSettings):
    """Broker TLS; cert_file and key_file together for client certificates."""


class BrokerConfig(kernel.BrokerSettings):
    tls: TlsConfig | None = None
    client_id: str | None = Field(
        default=None,
        description="Default: hazardwatch-central-<instance_id>-<20 hex derived from the broker password>, "
        "stable and unguessable without the password",
    )
    shared_subscription: bool = Field(
        default=True,
        description="Split alerts between instances with $share/<share_group>/...; false for brokers without it "
        "(then run one instance)",
    )
    share_group: str = Field(
        default="hazardwatch-central",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="MQTT 5 shared-subscription group: instances in one group split the load",
    )


class DatabaseConfig(Strict):
    url: str = Field(
        default="sqlite:///var/central.db",
        validate_default=True,
        description="sqlite:///PATH (relative to the config file) or postgresql://user@host/db",
    )
    password: Secret | None = Field(default=None, description="Password for a postgresql URL without one")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        if v.startswith("sqlite:///"):
            path = Path(v.removeprefix("sqlite:///"))
            resolved = resolve_path(path, info)
            return f"sqlite:///{resolved}"
        if v.startswith(("postgresql://", "postgres://")):
            return v
        raise ValueError("use sqlite:///PATH or postgresql://...")


class HttpConfig(kernel.HttpSettings):
    public_url: str | None = Field(default=None, description="Base URL receivers use to fetch evidence")


class TokenConfig(Strict):
    name: str = Field(min_length=1, max_length=64, description="Who uses it; recorded on every action")
    role: Literal["viewer", "operator", "admin", "edge"] = Field(
        description="edge: an edge box (named after its edge_id) that uploads evidence and downloads models"
    )
    token: Secret


class AuthConfig(Strict):
    tokens: list[TokenConfig] = Field(default_factory=list)
    login_rate_per_min: int = Field(default=20, ge=1, description="Failed logins per client per minute")


class CorrelationConfig(Strict):
    same_camera_window_s: float = Field(default=1800, gt=0, description="Same camera+hazard, overlapping regions")
    cross_camera_window_s: float = Field(default=1800, gt=0, description="Same hazard from another camera")
    cross_camera_distance_km: float = Field(default=15.0, gt=0)
    auto_resolve_after_s: float = Field(default=900, gt=0, description="Quiet time after every alert ended")
    reopen_window_s: float = Field(default=1800, ge=0, description="An auto-resolved incident reopens within this")
    region_margin: float = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="Same-camera regions this close (share of the frame) are one place: the neighbouring tiles "
        "of a per-tile model as a fire spreads",
    )


class TimerConfig(Strict):
    """Alertmanager-style notification timers."""

    group_wait_s: float = Field(default=10, ge=0, description="Wait before the first notification")
    group_interval_s: float = Field(default=60, ge=0, description="Least time between updates of one incident")
    repeat_interval_s: float = Field(default=3600, gt=0, description="Re-notify a still-open incident")


class InhibitRule(Strict):
    """While a camera is in one of these states, its hazards are recorded but not notified."""

    camera_states: list[Literal["offline", "degraded"]] = Field(min_length=1)
    hazards: list[Hazard] | None = Field(default=None, description="None: every hazard")


class CircleArea(Strict):
    """A circle on the map: a route's or a silence's area (a CAP warning's area is warnings.cap_model.Area)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0)


class BackoffConfig(kernel.BackoffSettings):
    """Delivery retries (defaults: 1 s doubling to 300 s)."""

    max_s: float = Field(default=300.0, gt=0)


class ReceiverConfig(Strict):
    name: Id
    kind: Literal["webhook", "cap"]
    url: str = Field(pattern=r"^https?://")
    secret: Secret | None = Field(default=None, description="HMAC-SHA256 signing key (webhook and cap)")
    timeout_s: float = Field(default=10, gt=0, le=120)
    deadline_s: float = Field(default=86400, gt=0, description="Give up (dead letter) after this long")
    backoff: BackoffConfig = BackoffConfig()
    group_by: list[Literal["hazard", "severity", "edge", "area"]] = Field(
        default_factory=list,
        description="Alertmanager-style grouping: one notification per group carries all its incidents' changes "
        "(area: a square of group_area_km around the incident's location). Empty: one per incident",
    )
    group_wait_s: float | None = Field(
        default=None, ge=0, description="A new group's first notification waits this long; default timers.group_wait_s"
    )
    group_interval_s: float | None = Field(
        default=None, ge=0, description="Least time between a group's notifications; default timers.group_interval_s"
    )
    group_area_km: float = Field(default=10.0, gt=0, description="Side of the squares that group_by area uses")

    @field_validator("group_by")
    @classmethod
    def _distinct_labels(cls, v: list[str]) -> list[str]:
        if len(v) != len(set(v)):
            raise ValueError(f"group_by lists a label twice: {v}")
        return v


class RouteConfig(Strict):
    receiver: Id
    hazards: list[Hazard] | None = None
    min_severity: Severity = "minor"
    area: CircleArea | None = None


class DashboardConfig(Strict):
    """The duty officer's web page. Its map (tiles, layers, named areas) is configured under `map:`."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: object) -> object:
        return kernel.refuse_removed_keys(
            data, {"tile_url": "map: {tiles: {url: ...}}", "tile_attribution": "map: {tiles: {attribution: ...}}"}
        )


CapStatus = Literal["Actual", "Exercise", "System", "Test", "Draft"]
CapSeverity = Literal["extreme", "severe", "moderate", "minor", "unknown"]


class WeatherFeedConfig(Strict):
    """A CAP document, or an ATOM/RSS index whose entries embed or link to CAP documents."""

    name: Id = Field(description="Metric label and log name")
    url: str = Field(pattern=r"^https?://")
    poll_s: float = Field(default=60, ge=1, le=86400)
    timeout_s: float = Field(default=10, gt=0, le=120, description="Whole request, connect to last byte")
    max_backoff_s: float = Field(default=900, gt=0, description="Longest wait after repeated failures")
    link_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts whose CAP links an index may point to, besides the index's own host",
    )


class WeatherRule(Strict):
    """Warnings whose event matches (and whose severity is listed) raise these hazards to these levels."""

    events: list[str] = Field(
        default_factory=list, description="Case-insensitive substrings of the CAP event, e.g. rainstorm, 暴雨"
    )
    event_codes: list[str] = Field(default_factory=list, description="eventCode values, e.g. SAME codes FFW, TOR")
    severities: list[CapSeverity] | None = Field(default=None, description="None: any severity")
    levels: dict[Hazard, RiskLevel] = Field(min_length=1)

    @model_validator(mode="after")
    def _something(self) -> WeatherRule:
        if not self.events and not self.event_codes:
            raise ValueError("give events or event_codes")
        return self


class GeocodeArea(Strict):
    """A geocode in warnings (valueName + value, e.g. an administrative code) mapped to an area or cameras."""

    value_name: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1, max_length=200)
    polygon: list[tuple[float, float]] | None = Field(default=None, min_length=3, description="[[lat, lon], ...]")
    cameras: list[str] | None = Field(default=None, description="edge_id/camera_id")

    @model_validator(mode="after")
    def _target(self) -> GeocodeArea:
        if not self.polygon and not self.cameras:
            raise ValueError("give polygon or cameras")
        for key in self.cameras or []:
            if key.count("/") != 1 or not all(key.split("/")):
                raise ValueError(f"camera {key!r} must be edge_id/camera_id")
        for lat, lon in self.polygon or []:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"polygon point {lat},{lon} is outside -90..90, -180..180")
        return self


class CameraLocation(Strict):
    edge_id: Id
    camera_id: Id
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


def _default_weather_rules() -> list[WeatherRule]:
    rain = ["rainstorm", "heavy rain", "rainfall", "flash flood", "flood", "暴雨", "洪水", "内涝"]
    wind = ["typhoon", "hurricane", "tropical storm", "tropical cyclone", "台风"]
    fire = ["fire danger", "fire weather", "red flag", "bushfire", "wildfire", "森林火险", "火险"]
    H, L = Hazard, RiskLevel
    return [
        WeatherRule(
            events=rain, severities=["extreme", "severe"], levels={H.WATERLOGGING: L.HIGH, H.FALLEN_TREE: L.ELEVATED}
        ),
        WeatherRule(events=rain, severities=["moderate", "minor", "unknown"], levels={H.WATERLOGGING: L.ELEVATED}),
        WeatherRule(events=wind, levels={H.FALLEN_TREE: L.HIGH, H.WATERLOGGING: L.HIGH}),
        WeatherRule(
            events=["thunderstorm", "high wind", "strong wind", "gale", "大风", "雷电"],
            levels={H.FALLEN_TREE: L.ELEVATED},
        ),
        WeatherRule(events=fire, severities=["extreme", "severe"], levels={H.SMOKE: L.HIGH, H.FIRE: L.HIGH}),
        WeatherRule(events=fire, severities=["moderate", "minor", "unknown"], levels={H.SMOKE: L.ELEVATED}),
    ]


class WeatherConfig(Strict):
    """Public weather warnings (CAP) raise the patrol rate of the cameras in the warned area."""

    enabled: bool = False
    feeds: list[WeatherFeedConfig] = Field(default_factory=list)
    push_role: Literal["operator", "admin"] = Field(
        default="operator", description="Least role that may POST /api/v1/warnings"
    )
    max_document_bytes: int = Field(default=1024 * 1024, ge=1024, le=8 * 1024 * 1024)
    strict: bool = Field(default=False, description="Reject every deviation from CAP 1.2 (see docs/weather.md)")
    statuses: list[CapStatus] = Field(
        default_factory=lambda: list[CapStatus](["Actual"]),
        description="CAP status values that act; others are recorded only",
    )
    default_duration_s: float = Field(default=6 * 3600, gt=0, description="Lifetime of a warning without expires")
    reconcile_s: float = Field(default=5, gt=0, le=300, description="Expiry check and command resend period")
    rules: list[WeatherRule] = Field(default_factory=_default_weather_rules)
    geocodes: list[GeocodeArea] = Field(default_factory=list)
    cameras: list[CameraLocation] = Field(
        default_factory=list, description="Camera positions for edges that do not report them in camera_status"
    )

    @model_validator(mode="after")
    def _unique(self) -> WeatherConfig:
        names = [f.name for f in self.feeds]
        if len(names) != len(set(names)):
            raise ValueError("feed names must be unique")
        return self


class CentralConfig(Strict):
    instance_id: Id = "central-1"
    site: str = ""
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Asia/Shanghai")
    broker: BrokerConfig | None = Field(default_factory=BrokerConfig)
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    auth: AuthConfig = AuthConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    timers: TimerConfig = TimerConfig()
    inhibit: list[InhibitRule] = Field(
        default_factory=lambda: [InhibitRule(camera_states=["offline"])],
        description="Default: an offline camera's hazards are not notified",
    )
    severity: dict[Hazard, Severity] = Field(
        default_factory=lambda: dict[Hazard, Severity]({
            Hazard.FIRE: "severe",
            Hazard.SMOKE: "moderate",
            Hazard.WATERLOGGING: "moderate",
            Hazard.FALLEN_TREE: "moderate",
        }),
        description="Base severity per hazard; severity_rules move it with the situation",
    )
    severity_rules: SeverityRules = SeverityRules()
    confidence: ConfidenceConfig = ConfidenceConfig()
    response: ResponseConfig = ResponseConfig()
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    dashboard: DashboardConfig = DashboardConfig()
    map: MapConfig = Field(default_factory=MapConfig, description="Tiles, GeoJSON layers and named areas")
    weather: WeatherConfig = WeatherConfig()
    false_alarm: FalseAlarmConfig = FalseAlarmConfig()
    clock: ClockConfig = Field(
        default_factory=ClockConfig, description="What central trusts of edge clocks (docs/security.md)"
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        """A misspelt zone would otherwise pass the check and fail at run time (situation hours, warnings)."""
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "America"
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as Asia/Shanghai or UTC") from None
        return v

    @model_validator(mode="before")
    @classmethod
    def _defaults_relative_to_file(cls, data: object) -> object:
        if isinstance(data, dict) and "database" not in data:
            data = {**data, "database": {}}
        return data

    @model_validator(mode="after")
    def _cross(self) -> CentralConfig:
        names = [r.name for r in self.receivers]
        if len(names) != len(set(names)):
            raise ValueError("receiver names must be unique")
        for i, route in enumerate(self.routes):
            if route.receiver not in names:
                raise ValueError(f"routes.{i}.receiver names unknown receiver {route.receiver!r}")
        return self
