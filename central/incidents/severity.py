"""Severity from the situation, with its reasons. Pure; the rules and defaults are `SeverityRules`
(central config `severity_rules`) and docs/central.md explains them.

The hazard's base severity moves one level per fact that makes it worse or less certain: several
cameras confirm it, it grows, its calibrated confidence is low, a weather warning raises the watch on
one of its cameras, the hour, and what the camera watches (a school, a dam). Each step is a reason
with a machine code (the dashboard translates it) and an English text (CAP and webhook).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hazardwatch.central.response_config import LEVELS, SeverityRules


@dataclass(frozen=True)
class Facts:
    hazard: str
    base: str
    cameras: tuple[str, ...]
    confidence: float | None
    growth: float | None  # largest ratio of a camera's latest region to its first, None when unknown
    weather: tuple[tuple[str, str, str], ...] = ()  # (camera, level, reason) of raised watches
    local_hour: int | None = None


def _in_window(hour: int, start: int, end: int) -> bool:
    return start <= hour < end if start < end else hour >= start or hour < end


def assess(f: Facts, rules: SeverityRules) -> tuple[str, list[dict[str, Any]]]:
    reasons: list[dict[str, Any]] = [
        {"code": "base", "delta": 0, "level": f.base, "text": f"{f.hazard.replace('_', ' ')} starts at {f.base}"}
    ]

    def add(code: str, delta: int, text: str, **extra: Any) -> None:
        if delta:
            reasons.append({"code": code, "delta": delta, "text": text, **extra})

    if len(f.cameras) >= 2:
        add("multi_camera", rules.multi_camera, f"confirmed by {len(f.cameras)} cameras", n=len(f.cameras))
    if f.growth is not None and f.growth >= rules.growth_factor:
        add("growth", rules.growth, f"region grew {f.growth:.1f}x since the first look", factor=round(f.growth, 1))
    if f.confidence is not None and f.confidence < rules.low_confidence_below:
        add(
            "low_confidence",
            rules.low_confidence,
            f"low confidence {f.confidence:.2f}",
            confidence=round(f.confidence, 2),
        )
    if f.weather:
        level: Literal["elevated", "high"] = "high" if any(w[1] == "high" for w in f.weather) else "elevated"
        camera, _lvl, why = next(w for w in f.weather if w[1] == level)
        add(
            "weather",
            rules.weather_watch.get(level, 0),
            f"weather warning ({level} watch): {why}".rstrip(": "),
            level=level,
            reason=why,
            camera=camera,
        )
    best = _most_important(f.cameras, rules)
    if best is not None:
        camera, imp = best
        add(
            "importance",
            rules.importance.get(imp.importance, 0),
            f"camera watches {imp.watches or 'an important site'} ({imp.importance})",
            importance=imp.importance,
            watches=imp.watches,
            camera=camera,
        )
    if f.local_hour is not None:
        for w in rules.time_windows:
            if f.hazard in w.hazards and _in_window(f.local_hour, w.from_hour, w.to_hour):
                add("time", w.delta, w.label, label=w.label, label_zh=w.label_zh, hour=f.local_hour)
                break
    index = LEVELS.index(f.base) + sum(r["delta"] for r in reasons)
    return LEVELS[max(0, min(len(LEVELS) - 1, index))], reasons


def _most_important(cameras: Sequence[str], rules: SeverityRules) -> tuple[str, Any] | None:
    rank = {"normal": 0, "high": 1, "critical": 2}
    known = [(c, rules.cameras[c]) for c in cameras if c in rules.cameras]
    known = [k for k in known if k[1].importance != "normal"]
    return max(known, key=lambda k: rank[k[1].importance]) if known else None
