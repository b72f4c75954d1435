"""The CAP lifecycle on the store: an `Alert` starts a warning, an `Update` replaces the warnings it
references, a `Cancel` ends them, and `expires` ends a warning by itself.

Messages may arrive out of order (an index feed lists an Update before its original has been
fetched), so a message that some stored message already references is stored as replaced or
cancelled straight away. Every change is a `weather_events` row; all of it runs under the `weather`
lock, so several central instances on one PostgreSQL agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hazardwatch.central.config import WeatherConfig
from hazardwatch.central.store import Tx
from hazardwatch.central.warnings.cap_model import CapAlert
from hazardwatch.central.warnings.rules import levels_for

ACTIVE = "active"


@dataclass(frozen=True)
class CapEffect:
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


def _ref_tokens(alert: CapAlert) -> str:
    return " ".join(f"{r.sender},{r.identifier}," for r in alert.references)


def record_event(tx: Tx, now: float, kind: str, warning_id: int | None, detail: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO weather_events(at, kind, warning_id, detail) VALUES (?, ?, ?, ?)",
        (now, kind, warning_id, json.dumps(detail, ensure_ascii=False)),
    )


def record_rejection(tx: Tx, now: float, source: str, code: str, reason: str) -> None:
    record_event(tx, now, "rejected", None, {"source": source[:300], "code": code, "reason": reason[:500]})


def store_alert(tx: Tx, alert: CapAlert, cfg: WeatherConfig, source: str, now: float) -> CapEffect:
    """Apply one CAP message to the warning table (the caller reconciles the watch afterwards)."""
    tx.lock("weather")
    if tx.one("SELECT id FROM weather_warnings WHERE sender = ? AND identifier = ?", (alert.sender, alert.identifier)):
        return CapEffect("duplicate", None, "already received", deviations=alert.deviations)
    infos: list[dict[str, Any]] = []
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
                record_event(tx, now, new_state, old_id, {"by": wid})
                affected.append(int(old_id))
    # Out of order: a message already stored may reference this one.
    if state == ACTIVE:
        token = f"{alert.sender},{alert.identifier},"
        for later_id, later_type, later_status, refs in tx.execute(
            "SELECT id, msg_type, status, refs FROM weather_warnings WHERE refs LIKE ? AND id <> ? "
            "AND msg_type IN ('Update', 'Cancel')",  # an Ack or Error references a message without ending it
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
    record_event(
        tx,
        now,
        "received",
        wid,
        {"result": result, "state": state, "msg_type": alert.msg_type, "source": source[:300], "affected": affected},
    )
    return CapEffect(result, wid, reason, tuple(affected), alert.deviations)


def expire_due(tx: Tx, now: float) -> list[int]:
    tx.lock("weather")
    rows = tx.execute("SELECT id FROM weather_warnings WHERE state = ? AND expires <= ?", (ACTIVE, now))
    ids = [int(r[0]) for r in rows]
    for wid in ids:
        tx.execute(
            "UPDATE weather_warnings SET state = 'expired', reason = 'expired', updated_at = ? WHERE id = ?", (now, wid)
        )
        record_event(tx, now, "expired", wid, {})
    return ids
