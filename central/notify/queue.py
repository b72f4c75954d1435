"""The persistent delivery queue: SQL over the `deliveries` table, one code path for SQLite and PostgreSQL.

Why it is shaped like this:
- A notification leaves the queue only when a receiver accepted it (`mark_delivered`), so a crash at
  any point loses nothing: an unfinished attempt's lease simply expires and another worker takes it.
- Per (receiver, incident) notifications go out in order: `claim_due` only ever offers the oldest
  pending row of each chain, so a pending older row blocks newer ones; a dead row does not. A grouped
  notification (`group_key`, several incidents in one message) chains with its group's others instead.
- Each claim increments `attempts`; the value returned with the claimed row is a fencing token that every
  `mark_*` call checks, so a worker whose lease expired (and whose row another instance re-claimed)
  cannot overwrite the newer attempt's outcome.
- Claims are serialised across instances with a transaction-scoped advisory lock on PostgreSQL
  (SQLite serialises writers itself), so two instances never hold the same row at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hazardwatch.central.store.database import Tx

State = Literal["pending", "delivered", "dead"]
STATES: tuple[State, ...] = ("pending", "delivered", "dead")
CLAIM_LOCK = "hazardwatch.deliveries.claim"

_COLUMNS = (
    "id, receiver, incident_id, idempotency_key, msg_type, payload, state, attempts, next_attempt_at, "
    "lease_until, last_error, created_at, delivered_at, group_key"
)
# The chain a row belongs to: its group when it is a grouped notification, else its incident.
CHAIN = "COALESCE(group_key, CAST(incident_id AS TEXT))"


@dataclass(frozen=True)
class Delivery:
    """One row of `deliveries`. `attempts` after a claim is the fencing token for the mark_* calls."""

    id: int
    receiver: str
    incident_id: int
    idempotency_key: str
    msg_type: str
    payload: str
    state: str
    attempts: int
    next_attempt_at: float
    lease_until: float | None
    last_error: str
    created_at: float
    delivered_at: float | None
    group_key: str | None = None  # set for a grouped notification: the payload holds several incidents

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Delivery:
        return cls(
            id=int(row[0]),
            receiver=row[1],
            incident_id=int(row[2]),
            idempotency_key=row[3],
            msg_type=row[4],
            payload=row[5],
            state=row[6],
            attempts=int(row[7]),
            next_attempt_at=float(row[8]),
            lease_until=None if row[9] is None else float(row[9]),
            last_error=row[10] or "",
            created_at=float(row[11]),
            delivered_at=None if row[12] is None else float(row[12]),
            group_key=row[13],
        )

    def view(self) -> dict[str, Any]:
        """The incident view stored with the row (the incident as it was at that change)."""
        return json.loads(self.payload)

    def to_dict(self, *, include_payload: bool = False) -> dict[str, Any]:
        """JSON-ready form for the API; the payload is large, so only on request (and parsed)."""
        data = asdict(self)
        data.pop("payload")
        if include_payload:
            data["incident"] = self.view()
        return data


def _in(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def claim_due(
    tx: Tx,
    now: float,
    limit: int,
    lease_s: float,
    *,
    receivers: Sequence[str] | None = None,
) -> list[Delivery]:
    """Lease and return the deliveries to attempt now: the head of each (receiver, incident) chain.

    A row qualifies when it is pending, due (`next_attempt_at <= now`), not leased by anyone
    (`lease_until` empty or past) and no older pending row of the same receiver and incident exists.
    `receivers` limits the claim to receivers this instance knows, so an instance with an older config
    leaves other receivers' rows alone. Exclusivity comes from the lease plus the fencing token.
    """
    if limit <= 0 or (receivers is not None and not receivers):
        return []
    tx.lock(CLAIM_LOCK)
    # The heads of the chains first (one aggregate over pending rows), then which of them are due and free.
    # This shape keeps a linear plan even when the planner's statistics are stale after a burst; the
    # NOT EXISTS form degraded to a quadratic nested loop on PostgreSQL (0.7 s for 1,000 pending rows).
    params: list[Any] = []
    receiver_sql = ""
    if receivers is not None:
        receiver_sql = f" AND receiver IN ({_in(receivers)})"
        params.extend(receivers)
    params.extend([now, now, int(limit)])
    ids = [
        int(r[0])
        for r in tx.execute(
            "SELECT d.id FROM deliveries d JOIN ("
            f"SELECT MIN(id) AS id FROM deliveries WHERE state = 'pending'{receiver_sql} "
            f"GROUP BY receiver, {CHAIN}) h ON h.id = d.id "
            "WHERE d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until <= ?) "
            "ORDER BY d.next_attempt_at, d.id LIMIT ?",
            params,
        )
    ]
    if not ids:
        return []
    rows = tx.execute(
        f"UPDATE deliveries SET lease_until = ?, attempts = attempts + 1 WHERE id IN ({_in(ids)}) "
        "AND state = 'pending' AND (lease_until IS NULL OR lease_until <= ?) "
        f"RETURNING {_COLUMNS}",
        [now + lease_s, *ids, now],
    )
    return sorted((Delivery.from_row(r) for r in rows), key=lambda d: (d.next_attempt_at, d.id))


def mark_delivered(tx: Tx, delivery_id: int, attempt: int, now: float) -> bool:
    """The receiver accepted it: the row leaves the queue. False when this attempt lost its lease."""
    rows = tx.execute(
        "UPDATE deliveries SET state = 'delivered', delivered_at = ?, lease_until = NULL "
        "WHERE id = ? AND attempts = ? AND state = 'pending' RETURNING id",
        (now, delivery_id, attempt),
    )
    return bool(rows)


def mark_retry(tx: Tx, delivery_id: int, attempt: int, next_attempt_at: float, error: str) -> bool:
    """A transient failure: try again at `next_attempt_at`; the row keeps blocking its chain meanwhile."""
    rows = tx.execute(
        "UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL, last_error = ? "
        "WHERE id = ? AND attempts = ? AND state = 'pending' RETURNING id",
        (next_attempt_at, error[:2000], delivery_id, attempt),
    )
    return bool(rows)


def mark_dead(tx: Tx, delivery_id: int, attempt: int, error: str) -> bool:
    """A permanent failure (4xx, deadline): a dead letter that no longer blocks its chain."""
    rows = tx.execute(
        "UPDATE deliveries SET state = 'dead', lease_until = NULL, last_error = ? "
        "WHERE id = ? AND attempts = ? AND state = 'pending' RETURNING id",
        (error[:2000], delivery_id, attempt),
    )
    return bool(rows)


def release(tx: Tx, delivery_id: int, attempt: int) -> bool:
    """Give a claimed row back at once (graceful stop), instead of waiting for its lease to expire."""
    rows = tx.execute(
        "UPDATE deliveries SET lease_until = NULL WHERE id = ? AND attempts = ? AND state = 'pending' RETURNING id",
        (delivery_id, attempt),
    )
    return bool(rows)


def list_deliveries(
    tx: Tx,
    state: State | None = None,
    limit: int = 100,
    offset: int = 0,
    *,
    receiver: str | None = None,
    incident_id: int | None = None,
) -> list[Delivery]:
    """Newest first, for the API's deliveries listing (filters are optional and combine with AND)."""
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        if state not in STATES:
            raise ValueError(f"unknown delivery state {state!r}: use one of {', '.join(STATES)}")
        where.append("state = ?")
        params.append(state)
    if receiver is not None:
        where.append("receiver = ?")
        params.append(receiver)
    if incident_id is not None:
        where.append("incident_id = ?")
        params.append(incident_id)
    sql = f"SELECT {_COLUMNS} FROM deliveries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
    params.extend([max(0, int(limit)), max(0, int(offset))])
    return [Delivery.from_row(r) for r in tx.execute(sql, params)]


def counts_by_state(tx: Tx) -> dict[str, int]:
    """{"pending": n, "delivered": n, "dead": n}, every state present."""
    counts: dict[str, int] = dict.fromkeys(STATES, 0)
    for state, n in tx.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"):
        counts[state] = int(n)
    return counts


def counts_by_receiver(tx: Tx, states: Sequence[State] = ("pending", "dead")) -> dict[tuple[str, str], int]:
    """{(receiver, state): n} for the metrics gauges (pending backlog, dead letters) per receiver."""
    rows = tx.execute(
        f"SELECT receiver, state, COUNT(*) FROM deliveries WHERE state IN ({_in(states)}) GROUP BY receiver, state",
        list(states),
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}


def earlier_delivered(tx: Tx, delivery: Delivery) -> list[Delivery]:
    """Messages of the same chain (incident, or group) this receiver already accepted, oldest first (CAP
    `references`)."""
    key: int | str
    if delivery.group_key is None:
        chain, key = "incident_id = ? AND group_key IS NULL", delivery.incident_id
    else:
        chain, key = "group_key = ?", delivery.group_key
    rows = tx.execute(
        f"SELECT {_COLUMNS} FROM deliveries WHERE receiver = ? AND {chain} AND id < ? AND state = 'delivered' "
        "ORDER BY id",
        (delivery.receiver, key, delivery.id),
    )
    return [Delivery.from_row(r) for r in rows]


def retry_dead(tx: Tx, delivery_id: int, now: float | None = None) -> bool:
    """Re-queue a dead letter for an immediate attempt (admin action). False when it is not dead.

    The deadline still counts from `created_at`, so a re-queued letter gets one attempt now and goes
    back to the dead letters if that attempt fails; the attempts count keeps its history.
    """
    rows = tx.execute(
        "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL "
        "WHERE id = ? AND state = 'dead' RETURNING id",
        (time.time() if now is None else now, delivery_id),
    )
    return bool(rows)
