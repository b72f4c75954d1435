"""Incident operations on the store: operator actions, auto-resolve, the timeline; alerts are folded
into incidents by `correlation` and aggregates recomputed by `aggregates` (re-exported here).

Every function takes an open transaction (`Tx`) so callers decide the unit of durability: the
ingest path writes a whole batch of MQTT messages in one transaction before acknowledging them.
"""

from __future__ import annotations

import json

from hazardwatch.central.config import CentralConfig
from hazardwatch.central.incidents.correlate import OPEN_STATES, SYSTEM
from hazardwatch.central.services import suppressions
from hazardwatch.central.services.aggregates import refresh, refresh_many, sightings_of
from hazardwatch.central.services.correlation import AlertBatch, AlertOutcome, apply_alert
from hazardwatch.central.services.errors import Conflict, Invalid, NotFound
from hazardwatch.central.store import Tx


def add_event(tx: Tx, incident_id: int, at: float, kind: str, actor: str, detail: dict) -> None:
    tx.execute(
        "INSERT INTO incident_events(incident_id, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (incident_id, at, kind, actor, json.dumps(detail, separators=(",", ":"))),
    )


# -- operator actions ---------------------------------------------------------------------------------
ALLOWED = {
    "acknowledge": ("open",),
    "resolve": ("open", "acknowledged"),
    "false_alarm": ("open", "acknowledged", "resolved"),
    "reopen": ("resolved", "false_alarm"),
}


def act(
    tx: Tx,
    incident_id: int,
    action: str,
    actor: str,
    note: str,
    now: float,
    suppress_s: float = 0.0,
    note_to_close: tuple[str, ...] = (),
) -> None:
    """Acknowledge, resolve, mark false alarm or reopen; every action records who and why.

    A false alarm suppresses the same camera, hazard and region for `suppress_s` (docs/central.md); a
    reopen ends the incident's suppressions. Closing an incident whose severity is in `note_to_close`
    needs a note."""
    tx.lock(f"incident:{incident_id}")
    row = tx.one("SELECT state, severity FROM incidents WHERE id = ?", (incident_id,))
    if row is None:
        raise NotFound(f"incident {incident_id} does not exist")
    state, severity = row
    if state not in ALLOWED[action]:
        raise Conflict(f"cannot {action.replace('_', ' ')} an incident that is {state}")
    if action in ("resolve", "false_alarm") and severity in note_to_close and not note.strip():
        raise Invalid(f"note: closing a {severity} incident needs a note (what was done, who confirmed it)")
    if action == "acknowledge":
        tx.execute(
            "UPDATE incidents SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, "
            "version = version + 1, updated_at = ? WHERE id = ?",
            (actor, now, now, incident_id),
        )
    elif action in ("resolve", "false_alarm"):
        new_state = "resolved" if action == "resolve" else "false_alarm"
        tx.execute(
            "UPDATE incidents SET state = ?, resolved_by = ?, resolved_at = ?, note = ?, version = version + 1, "
            "updated_at = ? WHERE id = ?",
            (new_state, actor, now, note, now, incident_id),
        )
    else:
        tx.execute(
            "UPDATE incidents SET state = 'open', resolved_by = NULL, resolved_at = NULL, version = version + 1, "
            "updated_at = ? WHERE id = ?",
            (now, incident_id),
        )
    detail: dict = {"from": state, "note": note}
    if action == "false_alarm":
        suppressions.end_for_incident(tx, incident_id, actor, "marked false alarm again", now)
        ids = suppressions.create_for_incident(tx, incident_id, actor, suppress_s, now)
        detail.update(suppression_ids=ids, suppress_until=now + suppress_s if ids else None)
    elif action == "reopen":
        suppressions.end_for_incident(tx, incident_id, actor, "incident reopened", now)
    add_event(tx, incident_id, now, action, actor, detail)


def auto_resolve(tx: Tx, cfg: CentralConfig, now: float) -> list[int]:
    """Resolve open incidents whose alerts all ended and that stayed quiet long enough (in id order, as
    every writer of several incidents locks them)."""
    quiet_s = cfg.correlation.auto_resolve_after_s
    rows = tx.execute(
        "SELECT id FROM incidents WHERE state IN ('open', 'acknowledged') AND active_alerts = 0 "
        "AND last_alert_at < ? AND updated_at < ? ORDER BY id",
        (now - quiet_s, now - quiet_s),
    )
    ids = [r[0] for r in rows]
    tx.executemany(
        "UPDATE incidents SET state = 'resolved', resolved_by = ?, resolved_at = ?, version = version + 1, "
        "updated_at = ? WHERE id = ? AND state IN ('open', 'acknowledged')",
        [(SYSTEM, now, now, i) for i in ids],
    )
    detail = json.dumps({"quiet_s": quiet_s}, separators=(",", ":"))
    tx.executemany(
        "INSERT INTO incident_events(incident_id, at, kind, actor, detail) VALUES (?, ?, 'auto_resolved', ?, ?)",
        [(i, now, SYSTEM, detail) for i in ids],
    )
    return ids


__all__ = [
    "OPEN_STATES",
    "AlertBatch",
    "AlertOutcome",
    "act",
    "add_event",
    "apply_alert",
    "auto_resolve",
    "refresh",
    "refresh_many",
    "sightings_of",
]
