"""Grouped notifications, after Alertmanager's `group_by`: a receiver that sets `group_by` gets one
message per group (say, per hazard and area) carrying the changes of all its incidents, so a typhoon's
thousand incidents reach the command platform as a handful of messages.

- Dispatch plans as for any receiver, but a grouped receiver's notification waits in `group_items`
  under its group's key; an incident keeps the group it was first put in (for that receiver), so its
  changes stay in one chain and in order even if its severity or location moves later.
- `flush` turns a group's waiting items into one delivery: a new group waits `group_wait_s` for more
  incidents, later messages of the group at least `group_interval_s` apart. The group row is locked
  (`FOR UPDATE SKIP LOCKED`), so two instances never flush one group twice; the group's deliveries form
  one chain in the queue (`deliveries.group_key`), delivered in order like an incident's.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from hazardwatch.central.config import CentralConfig, ReceiverConfig
from hazardwatch.central.store import Tx

KM_PER_DEG = 111.0


@dataclass(frozen=True)
class Group:
    key: str
    labels: dict[str, str]


def area_label(lat: float | None, lon: float | None, side_km: float) -> str:
    """A square of about `side_km` on a side: `row:col` on a grid whose columns narrow with latitude."""
    if lat is None or lon is None:
        return "unknown"
    dlat = side_km / KM_PER_DEG
    row = math.floor(lat / dlat)
    dlon = side_km / (KM_PER_DEG * max(0.05, math.cos(math.radians((row + 0.5) * dlat))))
    return f"{row}:{math.floor(lon / dlon)}"


def group_of(
    receiver: ReceiverConfig, hazard: str, severity: str, cameras: Sequence[str], lat: float | None, lon: float | None
) -> Group:
    values = {
        "hazard": hazard,
        "severity": severity,
        "edge": cameras[0].split("/", 1)[0] if cameras else "unknown",
        "area": area_label(lat, lon, receiver.group_area_km),
    }
    labels: dict[str, str] = {name: values[name] for name in receiver.group_by}
    return Group("|".join(f"{k}={v}" for k, v in labels.items()), labels)


def pinned(tx: Tx, incident_ids: Sequence[int]) -> dict[tuple[str, int], str]:
    """The group each (receiver, incident) was first put in."""
    if not incident_ids:
        return {}
    rows = tx.execute(
        "SELECT receiver, incident_id, group_key FROM group_items WHERE id IN (SELECT MIN(id) FROM group_items "
        f"WHERE incident_id IN ({','.join('?' * len(incident_ids))}) GROUP BY receiver, incident_id)",
        list(incident_ids),
    )
    return {(r[0], int(r[1])): r[2] for r in rows}


def enqueue(tx: Tx, items: Sequence[tuple], groups: dict[tuple[str, str], dict[str, str]]) -> None:
    """Write planned items `(receiver, group_key, incident_id, key, msg_type, payload, created_at)` and make
    sure their groups exist."""
    tx.executemany(
        "INSERT INTO delivery_groups(receiver, group_key, labels, flushes) VALUES (?, ?, ?, 0) "
        "ON CONFLICT (receiver, group_key) DO NOTHING",
        [(r, k, json.dumps(labels, separators=(",", ":"))) for (r, k), labels in sorted(groups.items())],
    )
    tx.executemany(
        "INSERT INTO group_items(receiver, group_key, incident_id, idempotency_key, msg_type, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (receiver, idempotency_key) DO NOTHING",
        items,
    )


def group_idempotency_key(group_key: str, number: int) -> str:
    return f"group-{hashlib.sha256(group_key.encode()).hexdigest()[:16]}-n{number}"


def flush(tx: Tx, cfg: CentralConfig, now: float) -> int:
    """Turn every group whose timer ran out into one delivery; return how many deliveries were made."""
    receivers = {r.name: r for r in cfg.receivers if r.group_by}
    if not receivers:
        return 0
    waiting = tx.execute(
        "SELECT g.receiver, g.group_key, g.flushes, g.last_flush_at, MIN(i.created_at) FROM group_items i "
        "JOIN delivery_groups g ON g.receiver = i.receiver AND g.group_key = i.group_key "
        "WHERE i.delivery_id IS NULL GROUP BY g.receiver, g.group_key, g.flushes, g.last_flush_at"
    )
    made = 0
    skip = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
    for name, key, flushes, last_flush_at, oldest in sorted(waiting, key=lambda r: (r[0], r[1])):
        r = receivers.get(name)
        if r is None:
            continue  # a receiver this instance's config no longer has: left to an instance that has it
        wait = cfg.timers.group_wait_s if r.group_wait_s is None else r.group_wait_s
        interval = cfg.timers.group_interval_s if r.group_interval_s is None else r.group_interval_s
        if (flushes == 0 and now < oldest + wait) or (flushes > 0 and now < (last_flush_at or 0) + interval):
            continue
        group = tx.one(
            f"SELECT flushes, labels FROM delivery_groups WHERE receiver = ? AND group_key = ?{skip}", (name, key)
        )
        if group is None or group[0] != flushes:
            continue  # another instance is flushing it, or just did
        _flush_one(tx, name, key, int(flushes) + 1, json.loads(group[1]), now)
        made += 1
    return made


def _flush_one(tx: Tx, receiver: str, key: str, number: int, labels: dict, now: float) -> None:
    items = tx.execute(
        "SELECT id, incident_id, idempotency_key, msg_type, payload, created_at FROM group_items "
        "WHERE receiver = ? AND group_key = ? AND delivery_id IS NULL ORDER BY id",
        (receiver, key),
    )
    payload = {
        "group": {"key": key, "labels": labels, "number": number},
        "notifications": [
            {"msg_type": m, "idempotency_key": k, "created_at": at, "incident": json.loads(p)}
            for _id, _inc, k, m, p, at in items
        ],
    }
    delivery_id = tx.scalar(
        "INSERT INTO deliveries(receiver, incident_id, idempotency_key, msg_type, payload, state, next_attempt_at, "
        "created_at, group_key) VALUES (?, ?, ?, 'Group', ?, 'pending', ?, ?, ?) RETURNING id",
        (
            receiver,
            items[0][1],
            group_idempotency_key(key, number),
            json.dumps(payload, separators=(",", ":")),
            now,
            now,
            key,
        ),
    )
    tx.execute(
        f"UPDATE group_items SET delivery_id = ? WHERE id IN ({','.join('?' * len(items))})",
        [delivery_id, *(i[0] for i in items)],
    )
    tx.execute(
        "UPDATE delivery_groups SET flushes = ?, last_flush_at = ? WHERE receiver = ? AND group_key = ?",
        (number, now, receiver, key),
    )
