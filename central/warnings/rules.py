"""Which weather warnings raise which hazard's watch: configured rules map a CAP info block's event
(name or code) and severity to a level per hazard; geocodes name places cameras are in."""

from __future__ import annotations

from collections.abc import Iterable

from hazardwatch.central.config import WeatherConfig, WeatherRule
from hazardwatch.central.warnings.areas import GeocodeEntry
from hazardwatch.central.warnings.cap_model import Info
from hazardwatch.contract import Hazard, RiskLevel

LEVEL_RANK = {RiskLevel.NORMAL: 0, RiskLevel.ELEVATED: 1, RiskLevel.HIGH: 2}


def rule_matches(rule: WeatherRule, info: Info) -> bool:
    if rule.severities is not None and info.severity.lower() not in rule.severities:
        return False
    event = info.event.lower()
    if any(e.lower() in event for e in rule.events if e):
        return True
    codes = {v.strip().upper() for _, v in info.event_codes}
    return any(c.upper() in codes for c in rule.event_codes)


def levels_for(info: Info, rules: Iterable[WeatherRule]) -> dict[str, str]:
    """Highest level per hazard over every matching rule."""
    out: dict[Hazard, RiskLevel] = {}
    for rule in rules:
        if rule_matches(rule, info):
            for hazard, level in rule.levels.items():
                if LEVEL_RANK[level] > LEVEL_RANK.get(out.get(hazard, RiskLevel.NORMAL), 0):
                    out[hazard] = level
    return {h.value: lv.value for h, lv in out.items() if lv != RiskLevel.NORMAL}


def geocode_table(cfg: WeatherConfig) -> dict[tuple[str, str], GeocodeEntry]:
    table: dict[tuple[str, str], GeocodeEntry] = {}
    for g in cfg.geocodes:
        key = (g.value_name.strip(), g.value.strip())
        old = table.get(key, GeocodeEntry())
        cams = frozenset((edge, cam) for edge, cam in (c.split("/", 1) for c in g.cameras or []))
        poly = (tuple((float(a), float(b)) for a, b in g.polygon),) if g.polygon else ()
        table[key] = GeocodeEntry(old.polygons + poly, old.cameras | cams)
    return table
