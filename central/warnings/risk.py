"""Warning lifecycle and the per-camera watch level it implies.

CAP lifecycle: an `Alert` starts a warning, an `Update` replaces the warnings it references, a `Cancel`
ends them, and `expires` ends a warning by itself. Messages may arrive out of order (an index feed
lists an Update before its original has been fetched), so a message that some stored message already
references is stored as replaced or cancelled straight away.

Each active warning maps (event, severity) to a level per hazard through the configured rules; the
target for a camera and hazard is the highest level among the warnings covering it, until the latest
expiry among those at that level. `weather_watch` keeps the target next to what was last sent, so a
set_risk command goes out only when a camera's level (or its end time) changes, is resent when its
edge comes back online, and survives a central restart. Everything runs in one transaction under the
`weather` lock, so several central instances on one PostgreSQL agree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hazardwatch.central.config import WeatherConfig, WeatherRule
from hazardwatch.central.store import Tx
from hazardwatch.central.warnings.areas import CameraKey, CameraPlace, GeocodeEntry, GeocodeTable, cameras_in_area
from hazardwatch.central.warnings.cap_parse import Area, CapAlert, Info
from hazardwatch.contract import Hazard, RiskLevel

LEVEL_RANK = {RiskLevel.NORMAL: 0, RiskLevel.ELEVATED: 1, RiskLevel.HIGH: 2}
ACTIVE = "active"
WatchKey = tuple[str, str, str]  # edge_id, camera_id, hazard


@dataclass(frozen=True)
class Outcome:
    """What one CAP message did; returned by the push endpoint and logged for feeds."""

    result: str  # started | replaced | cancelled | duplicate | ignored | expired
    warning_id: int | None
    reason: str = ""
    affected: tuple[int, ...] = ()
    deviations: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "warning_id": self.warning_id,
            "reason": self.reason,
            "affected": list(self.affected),
            "deviations": list(self.deviations),
        }


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


# -- rules -------------------------------------------------------------------------------------------
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
        cams = frozenset(tuple(c.split("/", 1)) for c in g.cameras or [])  # type: ignore[misc]
        poly = (tuple((float(a), float(b)) for a, b in g.polygon),) if g.polygon else ()
        table[key] = GeocodeEntry(old.polygons + poly, old.cameras | cams)
    return table


# -- storing messages --------------------------------------------------------------------------------
def _ref_tokens(alert: CapAlert) -> str:
    return " ".join(f"{r.sender},{r.identifier}," for r in alert.references)


def _event(tx: Tx, now: float, kind: str, warning_id: int | None, detail: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO weather_events(at, kind, warning_id, detail) VALUES (?, ?, ?, ?)",
        (now, kind, warning_id, json.dumps(detail, ensure_ascii=False)),
    )


def record_rejection(tx: Tx, now: float, source: str, code: str, reason: str) -> None:
    _event(tx, now, "rejected", None, {"source": source[:300], "code": code, "reason": reason[:500]})


def store_alert(tx: Tx, alert: CapAlert, cfg: WeatherConfig, source: str, now: float) -> Outcome:
    """Apply one CAP message to the warning table (the caller reconciles the watch afterwards)."""
    tx.lock("weather")
    if tx.one("SELECT id FROM weather_warnings WHERE sender = ? AND identifier = ?", (alert.sender, alert.identifier)):
        return Outcome("duplicate", None, "already received", deviations=alert.deviations)
    infos = []
    for info in alert.infos:
        start = info.effective if info.effective is not None else alert.sent
        infos.append(
            {
                "event": info.event[:200],
                "severity": info.severity,
                "urgency": info.urgency,
                "certainty": info.certainty,
                "headline": info.headline,
                "effective": start,
                "expires": info.expires if info.expires is not None else start + cfg.default_duration_s,
                "levels": levels_for(info, cfg.rules),
                "areas": [a.as_dict() for a in info.areas],
            }
        )
    effective = min((i["effective"] for i in infos), default=alert.sent)
    expires = max((i["expires"] for i in infos), default=alert.sent + cfg.default_duration_s)
    acts = alert.status in cfg.statuses and alert.msg_type in ("Alert", "Update", "Cancel")
    if not acts:
        state, reason = "ignored", f"{alert.status} {alert.msg_type} messages are recorded, not acted on"
    elif alert.msg_type == "Cancel":
        state, reason = "cancelled", "a Cancel message"
    elif not any(i["levels"] for i in infos):
        events = ", ".join(sorted({i["event"] for i in infos})) or "(no info block)"
        state, reason = "ignored", f"no rule maps {events} to a hazard"
    elif expires <= now:
        state, reason = "expired", "already expired when received"
    else:
        state, reason = ACTIVE, ""
    first = alert.infos[0] if alert.infos else None
    row = tx.one(
        "INSERT INTO weather_warnings(sender, identifier, sent, msg_type, status, event, severity, headline, "
        "effective, expires, infos, refs, state, reason, source, deviations, received_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            alert.sender,
            alert.identifier,
            alert.sent,
            alert.msg_type,
            alert.status,
            first.event[:200] if first else "",
            first.severity if first else "",
            (first.headline if first else "")[:500],
            effective,
            expires,
            json.dumps(infos, ensure_ascii=False),
            _ref_tokens(alert),
            state,
            reason,
            source[:300],
            json.dumps(list(alert.deviations)),
            now,
            now,
        ),
    )
    assert row is not None
    wid = int(row[0])
    affected: list[int] = []
    if acts and alert.msg_type in ("Update", "Cancel"):
        new_state = "replaced" if alert.msg_type == "Update" else "cancelled"
        for ref in alert.references:
            for (old_id,) in tx.execute(
                "SELECT id FROM weather_warnings WHERE sender = ? AND identifier = ? "
                "AND state IN ('active', 'ignored')",
                (ref.sender, ref.identifier),
            ):
                tx.execute(
                    "UPDATE weather_warnings SET state = ?, replaced_by = ?, reason = ?, updated_at = ? WHERE id = ?",
                    (new_state, wid, f"{alert.msg_type} {alert.identifier}"[:300], now, old_id),
                )
                _event(tx, now, new_state, old_id, {"by": wid})
                affected.append(int(old_id))
    # Out of order: a message already stored may reference this one.
    if state == ACTIVE:
        token = f"{alert.sender},{alert.identifier},"
        for later_id, later_type, later_status, refs in tx.execute(
            "SELECT id, msg_type, status, refs FROM weather_warnings WHERE refs LIKE ? AND id <> ?",
            (f"%{alert.identifier}%", wid),
        ):
            if token in refs.split() and later_status in cfg.statuses:
                state = "replaced" if later_type == "Update" else "cancelled"
                tx.execute(
                    "UPDATE weather_warnings SET state = ?, replaced_by = ?, reason = ? WHERE id = ?",
                    (state, later_id, "a later message that references it arrived first", wid),
                )
                break
    result = {
        ACTIVE: "started" if alert.msg_type == "Alert" else "replaced",
        "cancelled": "cancelled" if alert.msg_type == "Cancel" else "superseded",
        "replaced": "superseded",
    }.get(state, state)
    _event(
        tx,
        now,
        "received",
        wid,
        {"result": result, "state": state, "msg_type": alert.msg_type, "source": source[:300], "affected": affected},
    )
    return Outcome(result, wid, reason, tuple(affected), alert.deviations)


def expire_due(tx: Tx, now: float) -> list[int]:
    tx.lock("weather")
    rows = tx.execute("SELECT id FROM weather_warnings WHERE state = ? AND expires <= ?", (ACTIVE, now))
    ids = [int(r[0]) for r in rows]
    for wid in ids:
        tx.execute(
            "UPDATE weather_warnings SET state = 'expired', reason = 'expired', updated_at = ? WHERE id = ?", (now, wid)
        )
        _event(tx, now, "expired", wid, {})
    return ids


# -- targets -----------------------------------------------------------------------------------------
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
        _event(
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
    return pending_commands(tx, now)


def pending_commands(tx: Tx, now: float) -> list[Command]:
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
    _event(
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


# -- read models -------------------------------------------------------------------------------------
def warnings_view(tx: Tx, now: float, state: str | None = None, limit: int = 100) -> dict[str, Any]:
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    rows = tx.execute(
        "SELECT id, sender, identifier, sent, msg_type, status, event, severity, headline, effective, expires, infos, "
        f"state, reason, replaced_by, source, deviations, received_at, updated_at FROM weather_warnings {where} "
        "ORDER BY CASE state WHEN 'active' THEN 0 ELSE 1 END, updated_at DESC, id DESC LIMIT ?",
        [*params, limit],
    )
    items = []
    for r in rows:
        infos = json.loads(r[11])
        items.append(
            {
                "id": r[0],
                "sender": r[1],
                "identifier": r[2],
                "sent": r[3],
                "msg_type": r[4],
                "status": r[5],
                "event": r[6],
                "severity": r[7],
                "headline": r[8],
                "effective": r[9],
                "expires": r[10],
                "state": r[12],
                "in_force": r[12] == ACTIVE and r[9] <= now < r[10],
                "reason": r[13],
                "replaced_by": r[14],
                "source": r[15],
                "deviations": json.loads(r[16]),
                "received_at": r[17],
                "updated_at": r[18],
                "levels": _merge_levels(i["levels"] for i in infos),
                "areas": [a["desc"] for i in infos for a in i["areas"]][:50],
            }
        )
    rejected = [
        {"at": at, **json.loads(detail)}
        for at, detail in tx.execute(
            "SELECT at, detail FROM weather_events WHERE kind = 'rejected' ORDER BY id DESC LIMIT 20"
        )
    ]
    return {"items": items, "rejected": rejected}


def _merge_levels(levels: Iterable[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for lv in levels:
        for h, v in lv.items():
            if LEVEL_RANK[RiskLevel(v)] > LEVEL_RANK[RiskLevel(out.get(h, "normal"))]:
                out[h] = v
    return out


def watch_view(tx: Tx, limit: int = 50) -> dict[str, Any]:
    rows = tx.execute(
        "SELECT edge_id, camera_id, hazard, level, until, reason, warnings, changed_at, sent_level, sent_at "
        "FROM weather_watch WHERE level <> 'normal' ORDER BY edge_id, camera_id, hazard"
    )
    items = [
        {
            "edge_id": r[0],
            "camera_id": r[1],
            "hazard": r[2],
            "level": r[3],
            "until": r[4],
            "reason": r[5],
            "warnings": json.loads(r[6]),
            "changed_at": r[7],
            "delivered": r[8] == r[3],
            "sent_at": r[9],
        }
        for r in rows
    ]
    history = [
        {"at": at, **json.loads(detail)}
        for at, detail in tx.execute(
            "SELECT at, detail FROM weather_events WHERE kind = 'watch' ORDER BY id DESC LIMIT ?", (limit,)
        )
    ]
    return {"items": items, "history": history}
