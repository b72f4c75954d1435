"""An officer's follow-up on an incident besides its state: the procedure (checklist and contacts, chosen
by hazard and severity; `ResponseConfig`) with the steps ticked, and lifting the incident's false-alarm
suppressions. Both are timeline events, so who and when is recorded once.

Lifting lives here, not in `suppressions`, because `incidents` imports `suppressions`."""

from __future__ import annotations

import json
from typing import Any

from hazardwatch.central.services import suppressions
from hazardwatch.central.services.errors import Conflict, Invalid, NotFound
from hazardwatch.central.services.incidents import add_event
from hazardwatch.central.services.sqlin import matching
from hazardwatch.central.store import Tx


def procedure_views(tx: Tx, raw: dict[int, str]) -> dict[int, dict[str, Any]]:
    """Incidents' procedures (their stored JSON by incident) with the steps ticked, from one query."""
    if not raw:
        return {}
    where, params = matching(tx, "incident_id", sorted(raw))
    procs = {iid: json.loads(text) for iid, text in raw.items()}
    latest: dict[int, dict[int, dict[str, Any]]] = {}
    for iid, at, actor, detail in tx.execute(
        f"SELECT incident_id, at, actor, detail FROM incident_events WHERE kind = 'step' AND {where} ORDER BY id",
        params,
    ):
        d = json.loads(detail)
        if d.get("procedure") == procs[iid]["id"]:
            latest.setdefault(iid, {})[int(d["index"])] = {"done": bool(d["done"]), "by": actor, "at": at}
    for iid, p in procs.items():
        ticks = latest.get(iid, {})
        for step in p["steps"]:
            t = ticks.get(step["index"])
            step.update(done=bool(t and t["done"]), by=t["by"] if t else None, at=t["at"] if t else None)
        p["done"] = sum(1 for s in p["steps"] if s["done"])
    return procs


def tick(
    tx: Tx, incident_id: int, procedure_id: str, index: int, done: bool, actor: str, note: str, now: float
) -> None:
    """Tick (or untick) one step of the incident's current procedure; recorded with who and when."""
    tx.lock(f"incident:{incident_id}")
    row = tx.one("SELECT procedure FROM incidents WHERE id = ?", (incident_id,))
    if row is None:
        raise NotFound(f"incident {incident_id} does not exist")
    p = json.loads(row[0]) if row[0] else None
    if p is None or p["id"] != procedure_id:
        raise Conflict(f"incident {incident_id} now follows {p['id'] if p else 'no procedure'}, not {procedure_id}")
    if not 0 <= index < len(p["steps"]):
        raise Invalid(f"index: procedure {procedure_id} has steps 0..{len(p['steps']) - 1}")
    add_event(
        tx,
        incident_id,
        now,
        "step",
        actor,
        {
            "procedure": procedure_id,
            "index": index,
            "text": p["steps"][index]["text"],
            "text_zh": p["steps"][index].get("text_zh", ""),
            "done": done,
            "note": note,
        },
    )
    tx.execute("UPDATE incidents SET updated_at = ? WHERE id = ?", (now, incident_id))  # the page refreshes


def lift_suppression(tx: Tx, suppression_id: int, actor: str, now: float) -> bool:
    """End an active suppression early and note it in its incident's timeline; False: none to lift."""
    incident_id = tx.scalar("SELECT incident_id FROM suppressions WHERE id = ?", (suppression_id,))
    if incident_id is None or not suppressions.end(tx, suppression_id, actor, "lifted by an operator", now):
        return False
    add_event(tx, incident_id, now, "suppression_lifted", actor, {"suppression_id": suppression_id})
    return True
