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
from dataclasses import dataclass

from hazardwatch.central.config import SEVERITY_ORDER, CentralConfig, ReceiverConfig
from hazardwatch.central.incidents.geo import haversine_km
from hazardwatch.central.services import silences
from hazardwatch.central.services.incidents import add_event
from hazardwatch.central.services.views import incident_view
from hazardwatch.central.store import Tx

SYSTEM = "system"


@dataclass(frozen=True)
class Planned:
    incident_id: int
    msg_type: str
    receivers: tuple[str, ...]
    suppressed: str | None = None


def due(tx: Tx, cfg: CentralConfig, now: float, limit: int = 200) -> list[int]:
    rows = tx.execute(
        "SELECT id FROM incidents WHERE version > notified_version OR (state IN ('open', 'acknowledged') "
        "AND notified_version > 0 AND notified_at <= ?) ORDER BY updated_at LIMIT ?",
        (now - cfg.timers.repeat_interval_s, limit),
    )
    return [r[0] for r in rows]


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


def _inhibited(tx: Tx, cfg: CentralConfig, hazard: str, camera_keys: list[str]) -> dict | None:
    if not cfg.inhibit or not camera_keys:
        return None
    states = {
        f"{e}/{c}": s
        for e, c, s in tx.execute("SELECT edge_id, camera_id, state FROM cameras")
        if f"{e}/{c}" in camera_keys
    }
    for rule in cfg.inhibit:
        if rule.hazards and hazard not in rule.hazards:
            continue
        if all(states.get(k) in rule.camera_states for k in camera_keys):
            states = list(rule.camera_states)
            return {"reason": f"inhibited: every camera is {'/'.join(states)}", "inhibit_states": states}
    return None


def plan(tx: Tx, incident_id: int, cfg: CentralConfig, now: float, base_url: str) -> Planned | None:
    """Enqueue the notifications one incident needs now, if any."""
    tx.lock(f"incident:{incident_id}")
    row = tx.one(
        "SELECT version, notified_version, notified_at, state, opened_at, hazard, severity, cameras, "
        "suppressed_version, notify_count, COALESCE(est_lat, lat), COALESCE(est_lon, lon) FROM incidents WHERE id = ?",
        (incident_id,),
    )
    if row is None:
        return None
    (
        version,
        notified_version,
        notified_at,
        state,
        opened_at,
        hazard,
        severity,
        cams,
        suppressed_v,
        count,
        lat,
        lon,
    ) = row
    camera_keys = json.loads(cams)
    never = notified_version == 0
    changed = version > notified_version
    closed = state in ("resolved", "false_alarm")
    if never and closed:
        # Nothing was ever sent, so there is nothing to cancel.
        tx.execute("UPDATE incidents SET notified_version = version WHERE id = ?", (incident_id,))
        return None
    if never and now < opened_at + cfg.timers.group_wait_s:
        return None
    if not never and changed and notified_at is not None and now < notified_at + cfg.timers.group_interval_s:
        return None
    if not changed and (closed or notified_at is None or now < notified_at + cfg.timers.repeat_interval_s):
        return None
    msg_type = "Cancel" if closed else ("Alert" if never else "Update")
    if msg_type != "Cancel":
        held = _inhibited(tx, cfg, hazard, camera_keys)
        if held is None:
            for s in silences.active(tx, now):
                if s.matches(hazard, camera_keys, lat, lon):
                    held = {
                        "reason": f"silenced by #{s.id} ({s.created_by}: {s.comment})",
                        "silence_id": s.id,
                        "by": s.created_by,
                        "comment": s.comment,
                    }
                    break
        if held:
            if suppressed_v < version:
                tx.execute("UPDATE incidents SET suppressed_version = version WHERE id = ?", (incident_id,))
                add_event(tx, incident_id, now, "suppressed", SYSTEM, {**held, "version": version})
            return Planned(incident_id, msg_type, (), suppressed=held["reason"])
    receivers = route(cfg, hazard, severity, lat, lon)
    key = f"inc{incident_id}-v{version}" + ("" if changed else f"-repeat{count}")
    if receivers:
        view = incident_view(tx, incident_id, base_url, cfg.site)
        payload = json.dumps(view, separators=(",", ":"))
        for r in receivers:
            tx.execute(
                "INSERT INTO deliveries(receiver, incident_id, idempotency_key, msg_type, payload, state, "
                "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "
                "ON CONFLICT (receiver, idempotency_key) DO NOTHING",
                (r.name, incident_id, key, msg_type, payload, now, now),
            )
    tx.execute(
        "UPDATE incidents SET notified_version = ?, notified_at = ?, notify_count = notify_count + 1 WHERE id = ?",
        (version, now, incident_id),
    )
    # "notified" only when someone was: with no receiver configured or routed, the timeline says so.
    add_event(
        tx,
        incident_id,
        now,
        "notified" if receivers else "not_notified",
        SYSTEM,
        {"msg_type": msg_type, "idempotency_key": key, "receivers": [r.name for r in receivers]},
    )
    return Planned(incident_id, msg_type, tuple(r.name for r in receivers))
