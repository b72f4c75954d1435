"""Model registry and rollouts.

Why stored this way: a model version is its manifest plus its file, kept together in the database
(a blob), so every central instance serves the same bytes and a backup of the database is a backup of
the registry. Versions are immutable: the same name and version can never point at other bytes.

A rollout sends a `rollout` command to one canary edge first; only when the canary reports the new
version `active` (loaded, health-checked and through its probation on live frames) do the other edges
get it. A canary that fails or rolls back stops the rollout, so one bad model reaches one edge at most.
The driver (`advance`) is a pure function of the database, safe to run in every central instance:
each step is a state transition under a lock, and repeating a command is harmless (the edge dedupes by
rollout id).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from hazardwatch.central.services import comparisons
from hazardwatch.central.services.errors import Conflict, Invalid, NotFound, TooLarge
from hazardwatch.central.store import Tx
from hazardwatch.contract import ModelStatus, RolloutCommand
from hazardwatch.manifest import ModelManifest

MAX_MODEL_BYTES = 256 << 20
RESEND_AFTER_S = 30.0
EDGE_TIMEOUT_S = 900.0
TERMINAL = ("active", "failed", "rolled_back")
EDGE_STATES = ("waiting", "sent", "downloading", "loaded", *TERMINAL)


# -- versions ----------------------------------------------------------------------------------------
def register(tx: Tx, manifest_raw: bytes, data: bytes, who: str, note: str, now: float) -> dict:
    """Check a manifest against its file and store both; the same name+version twice is a conflict."""
    try:
        manifest = ModelManifest.model_validate_json(manifest_raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise Invalid(f"manifest: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    if manifest.runtime != "onnx":
        raise Invalid("only onnx models can be rolled out (scene_change has no file)")
    if not data:
        raise Invalid("the model file is empty")
    if len(data) > MAX_MODEL_BYTES:
        raise TooLarge(f"model file over {MAX_MODEL_BYTES} bytes")
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.sha256:
        raise Invalid(f"file sha256 {digest[:12]}... does not match the manifest's {manifest.sha256[:12]}...")
    if tx.one("SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (manifest.name, manifest.version)):
        raise Conflict(f"{manifest.name}@{manifest.version} is already registered; bump the version")
    tx.execute(
        "INSERT INTO model_versions(name, version, hazard, sha256, size, threshold, manifest, metrics, registered_by, "
        "registered_at, note, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            manifest.name,
            manifest.version,
            manifest.hazard.value,
            digest,
            len(data),
            manifest.threshold,
            manifest.model_dump_json(),
            json.dumps(manifest.metrics),
            who,
            now,
            note,
            data,
        ),
    )
    found = get_version(tx, manifest.name, manifest.version)
    assert found is not None
    return found


_VERSION_COLS = (
    "id, name, version, hazard, sha256, size, threshold, metrics, registered_by, registered_at, note, "
    "comparison, compared_by, compared_at"
)


def _version_row(r: Sequence[Any]) -> dict:
    return {
        "id": r[0],
        "name": r[1],
        "version": r[2],
        "hazard": r[3],
        "sha256": r[4],
        "size": r[5],
        "threshold": r[6],
        "metrics": json.loads(r[7]),
        "registered_by": r[8],
        "registered_at": r[9],
        "note": r[10],
        "comparison": comparisons.view(r[11], r[12], r[13]),
    }


def list_versions(tx: Tx, hazard: str | None = None) -> list[dict]:
    sql = f"SELECT {_VERSION_COLS} FROM model_versions"
    rows = (
        tx.execute(sql + " WHERE hazard = ? ORDER BY id DESC", (hazard,))
        if hazard
        else tx.execute(sql + " ORDER BY id DESC")
    )
    return [_version_row(r) for r in rows]


def get_version(tx: Tx, name: str, version: str) -> dict | None:
    r = tx.one(f"SELECT {_VERSION_COLS}, manifest FROM model_versions WHERE name = ? AND version = ?", (name, version))
    if r is None:
        return None
    out = _version_row(r)
    out["manifest"] = json.loads(r[14])
    return out


def model_file(tx: Tx, name: str, version: str) -> tuple[str, bytes] | None:
    """(file name from the manifest, bytes)."""
    r = tx.one("SELECT manifest, data FROM model_versions WHERE name = ? AND version = ?", (name, version))
    if r is None:
        return None
    return json.loads(r[0])["file"], bytes(r[1])


def threshold_for(tx: Tx, hazard: str) -> float | None:
    """Operating threshold of the newest registered model of a hazard (for the labelling sampler)."""
    return tx.scalar("SELECT threshold FROM model_versions WHERE hazard = ? ORDER BY id DESC LIMIT 1", (hazard,))


# -- rollouts ----------------------------------------------------------------------------------------
def create_rollout(
    tx: Tx, name: str, version: str, edges: Sequence[str], canary: str | None, who: str, now: float
) -> dict:
    model = get_version(tx, name, version)
    if model is None:
        raise NotFound(f"{name}@{version} is not registered")
    targets = list(dict.fromkeys(edges))
    if not targets:
        raise Invalid("name at least one edge")
    canary = canary or targets[0]
    if canary not in targets:
        raise Invalid(f"canary {canary} is not among the edges")
    busy = tx.execute(
        "SELECT re.edge_id FROM rollout_edges re JOIN rollouts r ON r.id = re.rollout_id JOIN model_versions m "
        "ON m.id = r.model_id WHERE r.state IN ('canary', 'rolling') AND m.hazard = ? AND re.state NOT IN "
        "('active', 'failed', 'rolled_back')",
        (model["hazard"],),
    )
    clash = sorted({b[0] for b in busy} & set(targets))
    if clash:
        raise Conflict(f"edges {', '.join(clash)} are in another {model['hazard']} rollout")
    rid = tx.scalar(
        "INSERT INTO rollouts(model_id, state, canary_edge, created_by, created_at, updated_at) "
        "VALUES (?, 'canary', ?, ?, ?, ?) RETURNING id",
        (model["id"], canary, who, now, now),
    )
    for edge in targets:
        tx.execute(
            "INSERT INTO rollout_edges(rollout_id, edge_id, wave, state, updated_at) VALUES (?, ?, ?, 'waiting', ?)",
            (rid, edge, 0 if edge == canary else 1, now),
        )
    view = get_rollout(tx, rid)
    assert view is not None
    return view


def get_rollout(tx: Tx, rid: int) -> dict | None:
    r = tx.one(
        "SELECT r.id, r.state, r.canary_edge, r.created_by, r.created_at, r.updated_at, r.detail, m.name, m.version, "
        "m.hazard, m.sha256 FROM rollouts r JOIN model_versions m ON m.id = r.model_id WHERE r.id = ?",
        (rid,),
    )
    if r is None:
        return None
    edges = tx.execute(
        "SELECT edge_id, wave, state, detail, running_version, sends, sent_at, updated_at FROM rollout_edges "
        "WHERE rollout_id = ? ORDER BY wave, edge_id",
        (rid,),
    )
    return {
        "id": r[0],
        "state": r[1],
        "canary": r[2],
        "created_by": r[3],
        "created_at": r[4],
        "updated_at": r[5],
        "detail": r[6],
        "model": {"name": r[7], "version": r[8], "hazard": r[9], "sha256": r[10]},
        "edges": [
            {
                "edge_id": e[0],
                "role": "canary" if e[1] == 0 else "wave",
                "state": e[2],
                "detail": e[3],
                "running_version": e[4],
                "sends": e[5],
                "sent_at": e[6],
                "updated_at": e[7],
            }
            for e in edges
        ],
    }


def list_rollouts(tx: Tx, limit: int = 50) -> list[dict]:
    ids = [r[0] for r in tx.execute("SELECT id FROM rollouts ORDER BY id DESC LIMIT ?", (limit,))]
    return [v for i in ids if (v := get_rollout(tx, i)) is not None]


@dataclass(frozen=True)
class Send:
    """A command to publish after the transaction that decided it committed."""

    edge_id: str
    payload: bytes


def advance(tx: Tx, now: float) -> list[Send]:
    """Move every running rollout one step: send to whoever needs it, promote or stop waves."""
    tx.lock("rollouts")
    sends: list[Send] = []
    running = tx.execute(
        "SELECT r.id, r.state, m.name, m.version, m.hazard, m.sha256, m.size FROM rollouts r "
        "JOIN model_versions m ON m.id = r.model_id WHERE r.state IN ('canary', 'rolling') ORDER BY r.id"
    )
    for rid, state, name, version, hazard, sha, size in running:
        edges = tx.execute(
            "SELECT edge_id, wave, state, sent_at, updated_at FROM rollout_edges WHERE rollout_id = ?", (rid,)
        )
        wave = 0 if state == "canary" else 1
        current = [e for e in edges if e[1] <= wave]
        # Edges that never answer fail after EDGE_TIMEOUT_S; the rest get (re)sent their command.
        for edge_id, _, e_state, sent_at, updated_at in current:
            if e_state in TERMINAL:
                continue
            if sent_at is not None and now - sent_at > EDGE_TIMEOUT_S and now - updated_at > EDGE_TIMEOUT_S:
                _edge_state(tx, rid, edge_id, "failed", f"no report within {EDGE_TIMEOUT_S:.0f} s", None, now)
                continue
            if e_state == "waiting" or (e_state == "sent" and now - (sent_at or 0) > RESEND_AFTER_S):
                cmd = RolloutCommand(
                    edge_id=edge_id,
                    sent_at=now,
                    command_id=f"ro{rid}-{secrets.token_hex(4)}",
                    rollout_id=f"rollout-{rid}",
                    hazard=hazard,
                    model_name=name,
                    model_version=version,
                    sha256=sha,
                    size=size,
                )
                sends.append(Send(edge_id, cmd.model_dump_json().encode()))
                tx.execute(
                    "UPDATE rollout_edges SET state = 'sent', sends = sends + 1, sent_at = ?, updated_at = ? "
                    "WHERE rollout_id = ? AND edge_id = ?",
                    (now, now, rid, edge_id),
                )
        states = {
            e[0]: e[1]
            for e in tx.execute(
                "SELECT edge_id, state FROM rollout_edges WHERE rollout_id = ? AND wave <= ?", (rid, wave)
            )
        }
        if state == "canary":
            canary_state = next(iter(states.values()), "waiting")
            if canary_state == "active":
                has_wave = tx.scalar("SELECT COUNT(*) FROM rollout_edges WHERE rollout_id = ? AND wave = 1", (rid,))
                _rollout_state(tx, rid, "rolling" if has_wave else "done", "canary healthy", now)
            elif canary_state in ("failed", "rolled_back"):
                _rollout_state(tx, rid, "failed", f"canary {canary_state}; the other edges were not touched", now)
        elif all(s in TERMINAL for s in states.values()):
            bad = sorted(e for e, s in states.items() if s != "active")
            _rollout_state(tx, rid, "failed" if bad else "done", f"failed on {', '.join(bad)}" if bad else "", now)
    return sends


def _rollout_state(tx: Tx, rid: int, state: str, detail: str, now: float) -> None:
    tx.execute("UPDATE rollouts SET state = ?, detail = ?, updated_at = ? WHERE id = ?", (state, detail, now, rid))


def _edge_state(tx: Tx, rid: int, edge_id: str, state: str, detail: str, running: str | None, now: float) -> None:
    tx.execute(
        "UPDATE rollout_edges SET state = ?, detail = ?, running_version = COALESCE(?, running_version), "
        "updated_at = ? WHERE rollout_id = ? AND edge_id = ?",
        (state, detail[:500], running, now, rid, edge_id),
    )


def apply_model_status(tx: Tx, msg: ModelStatus, now: float) -> None:
    """An edge's report: remember what it runs, and move its rollout row (never backwards from terminal)."""
    tx.execute(
        "INSERT INTO edge_models(edge_id, hazard, state, model_name, model_version, rollout_id, detail, reported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (edge_id, hazard) DO UPDATE SET state = excluded.state, "
        "model_name = excluded.model_name, model_version = excluded.model_version, rollout_id = excluded.rollout_id, "
        "detail = excluded.detail, reported_at = excluded.reported_at WHERE edge_models.reported_at <= "
        "excluded.reported_at",
        (
            msg.edge_id,
            msg.hazard.value,
            msg.state,
            msg.model_name,
            msg.model_version,
            msg.rollout_id,
            msg.detail,
            msg.sent_at,
        ),
    )
    if not msg.rollout_id or not msg.rollout_id.startswith("rollout-"):
        return
    try:
        rid = int(msg.rollout_id.removeprefix("rollout-"))
    except ValueError:
        return
    row = tx.one("SELECT state FROM rollout_edges WHERE rollout_id = ? AND edge_id = ?", (rid, msg.edge_id))
    if row is None or row[0] in TERMINAL:
        return
    _edge_state(tx, rid, msg.edge_id, msg.state, msg.detail, msg.model_version, now)


def edge_models(tx: Tx) -> list[dict]:
    rows = tx.execute(
        "SELECT edge_id, hazard, state, model_name, model_version, rollout_id, detail, reported_at FROM edge_models "
        "ORDER BY edge_id, hazard"
    )
    keys = ("edge_id", "hazard", "state", "model_name", "model_version", "rollout_id", "detail", "reported_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]
