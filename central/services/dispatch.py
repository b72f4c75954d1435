"""Notification planning (Alertmanager's timers, silences and inhibition, per incident).

- group_wait: the first notification of an incident waits, so alerts from several cameras arriving
  together make one notification;
- group_interval: the least time between two notifications of one incident's changes;
- repeat_interval: a still-open incident is notified again, even unchanged.
A silenced or inhibited incident is recorded but not notified; a Cancel always goes out to close what
a receiver already knows. Planning one incident happens in one transaction under an incident lock,
so several central instances never enqueue the same notification (the idempotency key is unique per
receiver as a second line of defence). Delivery itself is `hazardwatch.central.notify`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from hazardwatch.central.config import SEVERITY_ORDER, CentralConfig, ReceiverConfig
from hazardwatch.central.incidents.geo import haversine_km
from hazardwatch.central.services import grouping, places, silences
from hazardwatch.central.services.places import NamedArea
from hazardwatch.central.services.views import incident_views
from hazardwatch.central.store import Tx

SYSTEM = "system"


@dataclass(frozen=True)
class Planned:
    incident_id: int
    msg_type: str
    receivers: tuple[str, ...]
    suppressed: str | None = None


_DUE = (
    "(notified_version = 0 AND (state IN ('resolved', 'false_alarm') OR opened_at <= ?)) "
    "OR (notified_version > 0 AND version > notified_version AND (notified_at IS NULL OR notified_at <= ?)) "
    "OR (state IN ('open', 'acknowledged') AND notified_version > 0 AND version = notified_version "
    "AND notified_at <= ?)"
)
_ROW = (
    "id, version, notified_version, notified_at, state, opened_at, hazard, severity, cameras, suppressed_version, "
    "notify_count, COALESCE(est_lat, lat), COALESCE(est_lon, lon)"
)


class _Row(NamedTuple):
    """An incident as planning reads it (the columns of `_ROW`, in order)."""

    id: int
    version: int
    notified_version: int
    notified_at: float | None
    state: str
    opened_at: float
    hazard: str
    severity: str
    cameras: str  # JSON list of "edge/camera" keys
    suppressed_version: int
    notify_count: int
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class _Pending:
    """A notification planned for some receivers; its payload (the incident view) is read per batch."""

    incident_id: int
    key: str
    msg_type: str
    row: _Row
    camera_keys: list[str]
    receivers: list[ReceiverConfig]


def _due_params(cfg: CentralConfig, now: float) -> list[float]:
    t = cfg.timers
    return [now - t.group_wait_s, now - t.group_interval_s, now - t.repeat_interval_s]


def route(cfg: CentralConfig, hazard: str, severity: str, lat: float | None, lon: float | None) -> list[ReceiverConfig]:
    """Receivers whose routes match; with no routes configured every receiver gets everything."""
    if not cfg.routes:
        return list(cfg.receivers)
    by_name = {r.name: r for r in cfg.receivers}
    names: list[str] = []
    for r in cfg.routes:
        if r.hazards and hazard not in r.hazards:
            continue
        if SEVERITY_ORDER[severity] < SEVERITY_ORDER[r.min_severity]:
            continue
        if r.area and (lat is None or lon is None or haversine_km(lat, lon, r.area.lat, r.area.lon) > r.area.radius_km):
            continue
        if r.receiver not in names:
            names.append(r.receiver)
    return [by_name[n] for n in names]


@dataclass
class _Batch:
    """What a planning batch reads once (silences, cameras that are not online) and writes together."""

    silences: list[silences.Silence]
    camera_states: dict[str, str]
    pinned: dict[tuple[str, int], str]  # (receiver, incident) -> the group it was first put in
    deliveries: list[tuple] = field(default_factory=list)
    group_items: list[tuple] = field(default_factory=list)
    groups: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    notified: list[tuple] = field(default_factory=list)
    quiet: list[tuple] = field(default_factory=list)  # closed before anyone was told: nothing to cancel
    suppressed: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    # Notifications whose payload (the incident's view) is read for the whole batch at once.
    pending: list[_Pending] = field(default_factory=list)

    @classmethod
    def read(cls, tx: Tx, cfg: CentralConfig, now: float, incident_ids: list[int]) -> _Batch:
        states = {
            f"{e}/{c}": s
            for e, c, s in tx.execute("SELECT edge_id, camera_id, state FROM cameras WHERE state <> 'online'")
        }
        grouped = any(r.group_by for r in cfg.receivers)
        return cls(silences.active(tx, now), states, grouping.pinned(tx, incident_ids) if grouped else {})

    def group_key(self, r: ReceiverConfig, p: _Pending) -> str:
        """The incident's group for a grouped receiver: the one it was first put in, else from its labels."""
        if (r.name, p.incident_id) in self.pinned:
            return self.pinned[(r.name, p.incident_id)]
        group = grouping.group_of(r, p.row.hazard, p.row.severity, p.camera_keys, p.row.lat, p.row.lon)
        self.groups[(r.name, group.key)] = group.labels
        self.pinned[(r.name, p.incident_id)] = group.key
        return group.key

    def event(self, incident_id: int, at: float, kind: str, detail: dict) -> None:
        self.events.append((incident_id, at, kind, SYSTEM, json.dumps(detail, separators=(",", ":"))))

    def enqueue(self, tx: Tx, now: float, base_url: str, site: str, areas: Sequence[NamedArea]) -> None:
        """Read the pending notifications' incident views in one set of queries, each with its `place`
        (named area, line-of-sight stretch), and queue a delivery (or group item) per receiver."""
        views = list(incident_views(tx, [p.incident_id for p in self.pending], base_url, site).values())
        places.annotate(tx, views, areas)
        payloads = {v["id"]: json.dumps(v, separators=(",", ":")) for v in views}
        for p in self.pending:
            payload = payloads.get(p.incident_id, "null")
            for r in p.receivers:
                if r.group_by:
                    group_key = self.group_key(r, p)
                    self.group_items.append((r.name, group_key, p.incident_id, p.key, p.msg_type, payload, now))
                else:
                    self.deliveries.append((r.name, p.incident_id, p.key, p.msg_type, payload, now, now))
        self.pending.clear()

    def write(self, tx: Tx) -> None:
        tx.executemany("UPDATE incidents SET notified_version = version WHERE id = ?", self.quiet)
        tx.executemany("UPDATE incidents SET suppressed_version = version WHERE id = ?", self.suppressed)
        tx.executemany(
            "INSERT INTO deliveries(receiver, incident_id, idempotency_key, msg_type, payload, state, "
            "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT (receiver, idempotency_key) DO NOTHING",
            self.deliveries,
        )
        tx.executemany(
            "UPDATE incidents SET notified_version = ?, notified_at = ?, notify_count = notify_count + 1 WHERE id = ?",
            self.notified,
        )
        grouping.enqueue(tx, self.group_items, self.groups)
        tx.executemany(
            "INSERT INTO incident_events(incident_id, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)", self.events
        )


def _inhibited(batch: _Batch, cfg: CentralConfig, hazard: str, camera_keys: list[str]) -> dict | None:
    if not cfg.inhibit or not camera_keys:
        return None
    for rule in cfg.inhibit:
        if rule.hazards and hazard not in rule.hazards:
            continue
        if all(batch.camera_states.get(k, "online") in rule.camera_states for k in camera_keys):
            states = list(rule.camera_states)
            return {"reason": f"inhibited: every camera is {'/'.join(states)}", "inhibit_states": states}
    return None


def _held(
    batch: _Batch, cfg: CentralConfig, hazard: str, camera_keys: list[str], lat: float | None, lon: float | None
) -> dict | None:
    """Why an incident is held back (inhibited, silenced), or None."""
    held = _inhibited(batch, cfg, hazard, camera_keys)
    if held is not None:
        return held
    for s in batch.silences:
        if s.matches(hazard, camera_keys, lat, lon):
            return {
                "reason": f"silenced by #{s.id} ({s.created_by}: {s.comment})",
                "silence_id": s.id,
                "by": s.created_by,
                "comment": s.comment,
            }
    return None


def plan(
    tx: Tx, incident_id: int, cfg: CentralConfig, now: float, base_url: str, areas: Sequence[NamedArea] = ()
) -> Planned | None:
    """Enqueue the notifications one incident needs now, if any (waits for the incident's row lock)."""
    row = tx.one(f"SELECT {_ROW} FROM incidents WHERE id = ?{tx.for_update()}", (incident_id,))
    if row is None:
        return None
    batch = _Batch.read(tx, cfg, now, [incident_id])
    planned = _plan_row(_Row(*row), cfg, now, batch)
    batch.enqueue(tx, now, base_url, cfg.site, areas)
    batch.write(tx)
    return planned


def plan_due(
    tx: Tx, cfg: CentralConfig, now: float, base_url: str, limit: int = 200, areas: Sequence[NamedArea] = ()
) -> tuple[list[Planned], int]:
    """Plan every due incident (up to `limit`) in this one transaction; return what was planned and how many
    incidents were examined (`limit` of them: more may be due). Rows another instance is planning are
    skipped, not waited for: that instance plans them."""
    skip = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
    rows = tx.execute(
        f"SELECT {_ROW} FROM incidents WHERE {_DUE} ORDER BY updated_at LIMIT ?{skip}",
        [*_due_params(cfg, now), limit],
    )
    if not rows:
        return [], 0
    batch = _Batch.read(tx, cfg, now, [r[0] for r in rows])
    out = [p for row in rows if (p := _plan_row(_Row(*row), cfg, now, batch)) is not None]
    batch.enqueue(tx, now, base_url, cfg.site, areas)
    batch.write(tx)
    return out, len(rows)


def _plan_row(row: _Row, cfg: CentralConfig, now: float, batch: _Batch) -> Planned | None:
    incident_id, version, notified_at, hazard = row.id, row.version, row.notified_at, row.hazard
    camera_keys = json.loads(row.cameras)
    never = row.notified_version == 0
    changed = version > row.notified_version
    closed = row.state in ("resolved", "false_alarm")
    if never and closed:
        batch.quiet.append((incident_id,))  # nothing was ever sent, so there is nothing to cancel
        return None
    if never and now < row.opened_at + cfg.timers.group_wait_s:
        return None
    if not never and changed and notified_at is not None and now < notified_at + cfg.timers.group_interval_s:
        return None
    if not changed and (closed or notified_at is None or now < notified_at + cfg.timers.repeat_interval_s):
        return None
    msg_type = "Cancel" if closed else ("Alert" if never else "Update")
    if msg_type != "Cancel":
        held = _held(batch, cfg, hazard, camera_keys, row.lat, row.lon)
        if held:
            if row.suppressed_version < version:
                batch.suppressed.append((incident_id,))
                batch.event(incident_id, now, "suppressed", {**held, "version": version})
            return Planned(incident_id, msg_type, (), suppressed=held["reason"])
    receivers = route(cfg, hazard, row.severity, row.lat, row.lon)
    key = f"inc{incident_id}-v{version}" + ("" if changed else f"-repeat{row.notify_count}")
    if receivers:
        batch.pending.append(_Pending(incident_id, key, msg_type, row, camera_keys, receivers))
    batch.notified.append((version, now, incident_id))
    # "notified" only when someone was: with no receiver configured or routed, the timeline says so.
    batch.event(
        incident_id,
        now,
        "notified" if receivers else "not_notified",
        {"msg_type": msg_type, "idempotency_key": key, "receivers": [r.name for r in receivers]},
    )
    return Planned(incident_id, msg_type, tuple(r.name for r in receivers))
