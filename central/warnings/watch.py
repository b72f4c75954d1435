"""The per-camera watch level the active warnings imply, and the set_risk commands that tell edges.

Each active warning maps (event, severity) to a level per hazard through the rules; the target for a
camera and hazard is the highest level among the warnings covering it, until the latest expiry among
those at that level. `weather_watch` keeps the target next to what was last sent, so a set_risk
command goes out only when a camera's level (or its end time) changes, is resent when its edge comes
back online, and survives a central restart. Reconciling runs under the `weather` lock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hazardwatch.central.config import WeatherConfig
from hazardwatch.central.store import Tx
from hazardwatch.central.warnings.areas import CameraKey, CameraPlace, GeocodeTable, cameras_in_area
from hazardwatch.central.warnings.cap_model import Area
from hazardwatch.central.warnings.lifecycle import ACTIVE, record_event
from hazardwatch.central.warnings.rules import LEVEL_RANK
from hazardwatch.contract import Hazard, RiskLevel

WatchKey = tuple[str, str, str]  # edge_id, camera_id, hazard


@dataclass
class Target:
    level: RiskLevel
    until: float | None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        names = [f"{w['event']} ({w['severity']})" for w in self.warnings if w["level"] == self.level.value]
        return "; ".join(dict.fromkeys(names))[:256]


@dataclass(frozen=True)
class Command:
    """One set_risk command to send: the same level for some cameras of one edge and hazard."""

    edge_id: str
    hazard: Hazard
    level: RiskLevel
    until: float | None
    reason: str
    cameras: tuple[str, ...]
    command_id: str


def camera_places(tx: Tx, cfg: WeatherConfig) -> list[CameraPlace]:
    """Cameras central knows (positions from alerts), with configured positions taking precedence."""
    places = {
        (e, c): CameraPlace(e, c, lat, lon)
        for e, c, lat, lon in tx.execute("SELECT edge_id, camera_id, lat, lon FROM cameras")
    }
    for loc in cfg.cameras:
        places[(loc.edge_id, loc.camera_id)] = CameraPlace(loc.edge_id, loc.camera_id, loc.lat, loc.lon)
    return list(places.values())


def desired_watch(tx: Tx, cameras: list[CameraPlace], geocodes: GeocodeTable, now: float) -> dict[WatchKey, Target]:
    targets: dict[WatchKey, Target] = {}
    rows = tx.execute(
        "SELECT id, infos FROM weather_warnings WHERE state = ? AND effective <= ? AND expires > ? ORDER BY id",
        (ACTIVE, now, now),
    )
    for wid, infos_json in rows:
        for info in json.loads(infos_json):
            if info["expires"] <= now or info["effective"] > now or not info["levels"]:
                continue
            covered: set[CameraKey] = set()
            for area in info["areas"]:
                covered |= cameras_in_area(Area.from_dict(area), cameras, geocodes)
            for edge_id, camera_id in covered:
                for hazard, level_name in info["levels"].items():
                    level = RiskLevel(level_name)
                    key = (edge_id, camera_id, hazard)
                    t = targets.get(key)
                    entry = {
                        "id": int(wid),
                        "event": info["event"],
                        "severity": info["severity"],
                        "level": level.value,
                        "until": info["expires"],
                    }
                    if t is None or LEVEL_RANK[level] > LEVEL_RANK[t.level]:
                        t = targets[key] = Target(level, info["expires"], t.warnings if t else [])
                    elif level == t.level:
                        t.until = max(t.until or 0.0, info["expires"])
                    # One entry per warning (its info blocks in other languages repeat it), at its highest level.
                    same = next((w for w in t.warnings if w["id"] == entry["id"]), None)
                    if same is None:
                        t.warnings.append(entry)
                    elif LEVEL_RANK[level] > LEVEL_RANK[RiskLevel(same["level"])]:
                        same.update(entry)
    return targets


def reconcile(tx: Tx, desired: Mapping[WatchKey, Target], now: float) -> list[Command]:
    """Bring weather_watch to the desired targets (recording each change) and list commands to send."""
    tx.lock("weather")
    current = {
        (r[0], r[1], r[2]): r[3:]
        for r in tx.execute(
            "SELECT edge_id, camera_id, hazard, level, until, sent_level, sent_until, sent_at FROM weather_watch"
        )
    }
    for key in sorted(set(desired) | set(current)):
        want = desired.get(key) or Target(RiskLevel.NORMAL, None)
        have = current.get(key)
        if have is None and want.level == RiskLevel.NORMAL:
            continue
        if have is not None and have[0] == want.level.value and have[1] == want.until:
            if want.level != RiskLevel.NORMAL:  # contributing warnings may change without a level change
                tx.execute(
                    "UPDATE weather_watch SET warnings = ?, reason = ? "
                    "WHERE edge_id = ? AND camera_id = ? AND hazard = ?",
                    (json.dumps(want.warnings, ensure_ascii=False), want.reason, *key),
                )
            continue
        tx.execute(
            "INSERT INTO weather_watch(edge_id, camera_id, hazard, level, until, reason, warnings, changed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (edge_id, camera_id, hazard) DO UPDATE SET "
            "level = excluded.level, until = excluded.until, reason = excluded.reason, "
            "warnings = excluded.warnings, changed_at = excluded.changed_at",
            (*key, want.level.value, want.until, want.reason, json.dumps(want.warnings, ensure_ascii=False), now),
        )
        record_event(
            tx,
            now,
            "watch",
            want.warnings[0]["id"] if want.warnings else None,
            {
                "edge_id": key[0],
                "camera_id": key[1],
                "hazard": key[2],
                "from": have[0] if have else RiskLevel.NORMAL.value,
                "to": want.level.value,
                "until": want.until,
                "warnings": [w["id"] for w in want.warnings],
            },
        )
    return pending_commands(tx)


def pending_commands(tx: Tx) -> list[Command]:
    """Rows whose target differs from what the edge was last told, or whose edge came back since."""
    online_since = {e: since for e, since in tx.execute("SELECT edge_id, since FROM edges WHERE state = 'online'")}
    groups: dict[tuple[str, str, str, float | None, str], list[str]] = {}
    for edge_id, camera_id, hazard, level, until, reason, sent_level, sent_until, sent_at in tx.execute(
        "SELECT edge_id, camera_id, hazard, level, until, reason, sent_level, sent_until, sent_at FROM weather_watch "
        "ORDER BY edge_id, hazard, camera_id"
    ):
        if level == RiskLevel.NORMAL.value and sent_level in (None, RiskLevel.NORMAL.value):
            tx.execute(
                "DELETE FROM weather_watch WHERE edge_id = ? AND camera_id = ? AND hazard = ?",
                (edge_id, camera_id, hazard),
            )
            continue
        changed = (level, until) != (sent_level, sent_until)
        back = (
            level != RiskLevel.NORMAL.value
            and sent_at is not None
            and edge_id in online_since
            and online_since[edge_id] > sent_at
        )
        if changed or back:
            key = (edge_id, hazard, level, until, reason if level != RiskLevel.NORMAL.value else "warning ended")
            groups.setdefault(key, []).append(camera_id)
    return [
        Command(e, Hazard(h), RiskLevel(lv), until, reason, tuple(cams), f"wx-{uuid.uuid4().hex[:16]}")
        for (e, h, lv, until, reason), cams in groups.items()
    ]


def mark_sent(tx: Tx, command: Command, now: float) -> None:
    for cam in command.cameras:
        tx.execute(
            "UPDATE weather_watch SET sent_level = ?, sent_until = ?, sent_at = ?, command_id = ? "
            "WHERE edge_id = ? AND camera_id = ? AND hazard = ? AND level = ?",
            (
                command.level.value,
                command.until,
                now,
                command.command_id,
                command.edge_id,
                cam,
                command.hazard.value,
                command.level.value,
            ),
        )
    tx.execute(
        "DELETE FROM weather_watch WHERE level = 'normal' AND sent_level = 'normal' AND edge_id = ?",
        (command.edge_id,),
    )
    record_event(
        tx,
        now,
        "command",
        None,
        {
            "edge_id": command.edge_id,
            "hazard": command.hazard.value,
            "level": command.level.value,
            "cameras": list(command.cameras),
            "until": command.until,
            "command_id": command.command_id,
        },
    )
