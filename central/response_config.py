"""Configuration of how central judges and answers an incident: false-alarm suppression, severity rules,
response procedures and contacts. Kept apart from `config.py` (connections, timers) because the duty
officer's bureau tunes these, not the operator of the machines. Rules are described in docs/central.md.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import Field, model_validator

from hazardwatch.contract import Hazard
from hazardwatch.kernel.settings import Strict

Level = Literal["minor", "moderate", "severe", "extreme"]
WatchLevel = Literal["elevated", "high"]
Importance = Literal["normal", "high", "critical"]


def _watch_steps() -> dict[WatchLevel, int]:
    return {"elevated": 1, "high": 1}


def _importance_steps() -> dict[Importance, int]:
    return {"normal": 0, "high": 1, "critical": 2}


def _confirm_close() -> list[Level]:
    return ["severe", "extreme"]
LEVELS: tuple[str, ...] = ("minor", "moderate", "severe", "extreme")


class FalseAlarmConfig(Strict):
    """What "false alarm" silences: the same camera, hazard and image region, for a limited time.

    A detection in that region stays quiet (recorded, counted, visible) unless it is clearly stronger:
    its score exceeds the false alarm's best by `break_score_margin`, or its region is `break_area_factor`
    times the false alarm's largest region.
    """

    suppress_s: float = Field(default=2 * 3600, ge=0, le=7 * 86400, description="Default suppression; 0: none")
    max_suppress_s: float = Field(default=24 * 3600, gt=0, le=30 * 86400, description="Longest an operator may ask")
    break_score_margin: float = Field(default=0.15, gt=0, le=1, description="Score rise that breaks through")
    break_area_factor: float = Field(default=2.0, gt=1, le=100, description="Region growth that breaks through")

    @model_validator(mode="after")
    def _bounds(self) -> FalseAlarmConfig:
        if self.suppress_s > self.max_suppress_s:
            raise ValueError(f"suppress_s ({self.suppress_s}) exceeds max_suppress_s ({self.max_suppress_s})")
        return self


class CameraImportance(Strict):
    """What a camera watches, and how much that matters to the severity of what it sees."""

    importance: Literal["normal", "high", "critical"] = "normal"
    watches: str = Field(default="", max_length=200, description="Shown as the reason, e.g. 'primary school'")


class TimeWindow(Strict):
    """Local hours (site time zone) in which a hazard is more (or less) severe."""

    hazards: list[Hazard] = Field(min_length=1)
    from_hour: int = Field(ge=0, le=23)
    to_hour: int = Field(ge=0, le=24, description="Exclusive; a window past midnight wraps (22 -> 6)")
    delta: int = Field(default=1, ge=-3, le=3)
    label: str = Field(min_length=1, max_length=200)
    label_zh: str = Field(default="", max_length=200, description="The label on the Chinese page")


def _default_windows() -> list[TimeWindow]:
    fire, road = [Hazard.FIRE, Hazard.SMOKE], [Hazard.FALLEN_TREE, Hazard.WATERLOGGING]
    rows = [
        (fire, 22, 6, "night: few people to see or report it", "夜间：少有人发现或报告"),
        (road, 7, 9, "morning rush hour", "早高峰"),
        (road, 17, 19, "evening rush hour", "晚高峰"),
    ]
    return [TimeWindow(hazards=h, from_hour=a, to_hour=b, label=en, label_zh=zh) for h, a, b, en, zh in rows]


class SeverityRules(Strict):
    """Severity from the situation: the hazard's base severity (`severity`) moved up or down one level per
    fact. The result is clamped to minor..extreme and every step is recorded as a reason."""

    multi_camera: int = Field(default=1, ge=0, le=3, description="Levels added when two or more cameras see it")
    growth_factor: float = Field(default=2.0, gt=1, description="Region this many times its first size: growing")
    growth: int = Field(default=1, ge=0, le=3, description="Levels added while it grows")
    low_confidence_below: float = Field(default=0.5, ge=0, le=1, description="Calibrated confidence under this")
    low_confidence: int = Field(default=-1, ge=-3, le=0, description="Levels added (negative) at low confidence")
    weather_watch: dict[WatchLevel, int] = Field(
        default_factory=_watch_steps,
        description="Levels added while a weather warning raises the watch on one of its cameras",
    )
    importance: dict[Importance, int] = Field(default_factory=_importance_steps)
    time_windows: list[TimeWindow] = Field(default_factory=_default_windows)
    cameras: dict[str, CameraImportance] = Field(
        default_factory=dict, description="edge_id/camera_id -> what it watches and how important that is"
    )

    @model_validator(mode="after")
    def _keys(self) -> SeverityRules:
        for key in self.cameras:
            if key.count("/") != 1 or not all(key.split("/")):
                raise ValueError(f"cameras: {key!r} must be edge_id/camera_id")
        return self


class ConfidenceConfig(Strict):
    """One calibrated confidence per alert: the probability that a confirmed alert of this model with this
    vote score is a real hazard, read off a table measured on labelled outcomes (piecewise linear)."""

    calibration: dict[str, list[tuple[float, float]]] = Field(
        default_factory=dict,
        description="model name -> [[vote score, probability], ...] with rising scores; models without one "
        "show their vote score, marked uncalibrated",
    )

    @model_validator(mode="after")
    def _tables(self) -> ConfidenceConfig:
        for name, points in self.calibration.items():
            if len(points) < 2:
                raise ValueError(f"calibration.{name}: give at least two [score, probability] points")
            xs = [p[0] for p in points]
            if xs != sorted(xs) or len(set(xs)) != len(xs):
                raise ValueError(f"calibration.{name}: scores must rise strictly")
            if not all(0 <= v <= 1 for p in points for v in p):
                raise ValueError(f"calibration.{name}: scores and probabilities lie in 0..1")
        return self

    def calibrate(self, model: str, score: float) -> tuple[float, bool]:
        """(confidence, calibrated?) for a vote score of `model` ("name@version" or "name")."""
        points = self.calibration.get(model.split("@", 1)[0])
        if not points:
            return score, False
        if score <= points[0][0]:
            return points[0][1], True
        for (x0, y0), (x1, y1) in pairwise(points):
            if score <= x1:
                return y0 + (y1 - y0) * (score - x0) / (x1 - x0), True
        return points[-1][1], True


class Contact(Strict):
    name: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=64, description="Empty: the page says no number is configured")
    note: str = Field(default="", max_length=500)


class Procedure(Strict):
    """A short checklist for a hazard from a severity up, and whom to call."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    title: str = Field(min_length=1, max_length=200)
    title_zh: str = Field(default="", max_length=200)
    hazards: list[Hazard] = Field(min_length=1)
    min_severity: Level = "minor"
    steps: list[str] = Field(min_length=1, max_length=20)
    steps_zh: list[str] = Field(default_factory=list, max_length=20)
    contacts: list[str] = Field(default_factory=list, description="Keys of response.contacts")

    @model_validator(mode="after")
    def _zh(self) -> Procedure:
        if self.steps_zh and len(self.steps_zh) != len(self.steps):
            raise ValueError(f"procedure {self.id}: steps_zh needs one line per step ({len(self.steps)})")
        return self


def _default_contacts() -> dict[str, Contact]:
    return {
        "forest_fire_brigade": Contact(name="Forest-fire brigade", name_zh="森林消防队"),
        "duty_leader": Contact(name="District duty leader", name_zh="区值班领导"),
        "drainage_team": Contact(name="Drainage emergency team", name_zh="排水抢险队"),
        "traffic_police": Contact(name="Traffic police", name_zh="交警"),
        "road_maintenance": Contact(name="Road and greenery maintenance unit", name_zh="道路园林养护队"),
        "power_grid": Contact(name="Power grid repair", name_zh="供电抢修"),
    }


def _default_procedures() -> list[Procedure]:
    fire = (Hazard.FIRE, Hazard.SMOKE)
    return [
        Procedure(
            id="fire-watch",
            title="Smoke or fire: verify and call the brigade",
            title_zh="烟火：核实并通知消防",
            hazards=list(fire),
            steps=[
                "Verify on the live view and on nearby cameras",
                "Call the forest-fire brigade with the location and snapshot",
                "Report to the district duty leader",
                "Keep watching the spread; update the brigade every 15 min",
            ],
            steps_zh=[
                "在实时画面和附近摄像机上核实",
                "通知森林消防队，告知位置并发送快照",
                "报告区值班领导",
                "持续关注火势蔓延，每 15 分钟向消防队通报",
            ],
            contacts=["forest_fire_brigade", "duty_leader"],
        ),
        Procedure(
            id="fire-severe",
            title="Severe smoke or fire: brigade, leader, evacuation",
            title_zh="严重烟火：消防、领导、疏散",
            hazards=list(fire),
            min_severity="severe",
            steps=[
                "Call the forest-fire brigade now with the location and snapshot",
                "Report to the district duty leader",
                "Ask the traffic police to close forest access roads",
                "Prepare the evacuation of nearby residents",
                "Update the brigade every 10 min until it is out",
            ],
            steps_zh=[
                "立即通知森林消防队，告知位置并发送快照",
                "报告区值班领导",
                "请交警封闭进山道路",
                "做好周边居民疏散准备",
                "每 10 分钟向消防队通报，直至扑灭",
            ],
            contacts=["forest_fire_brigade", "duty_leader", "traffic_police"],
        ),
        Procedure(
            id="waterlogging",
            title="Waterlogging: verify depth, drainage, traffic",
            title_zh="积水：核实水深、排水、交通",
            hazards=[Hazard.WATERLOGGING],
            steps=[
                "Estimate the depth against kerbs and wheels on the live view",
                "Call the drainage team",
                "Above the kerb: ask the traffic police to divert traffic",
                "Check again every 10 min",
            ],
            steps_zh=[
                "对照路缘和车轮在实时画面估计水深",
                "通知排水抢险队",
                "超过路缘：请交警疏导绕行",
                "每 10 分钟复查一次",
            ],
            contacts=["drainage_team", "traffic_police"],
        ),
        Procedure(
            id="fallen-tree",
            title="Fallen tree: road, power lines, clearing",
            title_zh="倒树：道路、电线、清障",
            hazards=[Hazard.FALLEN_TREE],
            steps=[
                "Check whether the road is blocked and power lines are involved",
                "Call the road and greenery maintenance unit",
                "Power lines involved: call the power grid repair",
                "Road blocked: ask the traffic police to close the lane",
            ],
            steps_zh=[
                "核实道路是否阻断、是否涉及电线",
                "通知道路园林养护队",
                "涉及电线：通知供电抢修",
                "道路阻断：请交警封闭车道",
            ],
            contacts=["road_maintenance", "power_grid", "traffic_police"],
        ),
    ]


class ResponseConfig(Strict):
    """Procedures and contacts per hazard and severity: shown with each incident, in CAP (`instruction`,
    `contact`) and in the webhook. The procedure with the highest `min_severity` not above the incident's
    severity applies."""

    contacts: dict[str, Contact] = Field(default_factory=_default_contacts)
    procedures: list[Procedure] = Field(default_factory=_default_procedures)
    confirm_close: list[Level] = Field(
        default_factory=_confirm_close,
        description="Closing an incident of these severities needs a confirmation and a note",
    )

    @model_validator(mode="after")
    def _refs(self) -> ResponseConfig:
        ids = [p.id for p in self.procedures]
        if len(ids) != len(set(ids)):
            raise ValueError("procedure ids must be unique")
        for p in self.procedures:
            for c in p.contacts:
                if c not in self.contacts:
                    raise ValueError(f"procedure {p.id}: contact {c!r} is not in response.contacts")
        return self

    def select(self, hazard: str, severity: str) -> Procedure | None:
        fits = [
            p for p in self.procedures if hazard in p.hazards and LEVELS.index(p.min_severity) <= LEVELS.index(severity)
        ]
        return max(fits, key=lambda p: LEVELS.index(p.min_severity)) if fits else None

    def snapshot(self, hazard: str, severity: str) -> dict | None:
        """What an incident keeps of its procedure (text and contacts), so later config edits do not
        rewrite what the officer saw and ticked."""
        p = self.select(hazard, severity)
        if p is None:
            return None
        return {
            "id": p.id,
            "title": p.title,
            "title_zh": p.title_zh,
            "steps": [
                {"index": i, "text": text, "text_zh": p.steps_zh[i] if p.steps_zh else ""}
                for i, text in enumerate(p.steps)
            ],
            "contacts": [{"id": c, **self.contacts[c].model_dump()} for c in p.contacts],
        }
