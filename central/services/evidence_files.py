"""Evidence files (clips, full-resolution snapshots) uploaded by edges, resumable.

The edge PUTs a file in chunks with `Content-Range: bytes START-END/TOTAL`; a HEAD answers how many
bytes central has (`Upload-Offset`), so an upload cut by a network failure resumes where it stopped.
A chunk that does not start at central's offset is refused (409) and the edge asks again. The sha256
sent with the file is checked on the last chunk. Central never deletes evidence (docs/retraining.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from hazardwatch.central.services.errors import Conflict, Damaged, Invalid, TooLarge
from hazardwatch.central.store import Tx

MAX_FILE_BYTES = 64 << 20
RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
EMPTY_RANGE = re.compile(r"^bytes \*/0$")
KINDS = ("clip", "snapshot")
STATES = ("new", "end", "quiet")


@dataclass(frozen=True)
class Meta:
    alert_id: str
    camera_id: str
    hazard: str
    state: str
    kind: str
    content_type: str
    sha256: str
    captured_at: float
    extra: dict

    @classmethod
    def parse(cls, raw: str) -> Meta:
        try:
            doc = json.loads(raw)
            meta = cls(
                alert_id=str(doc["alert_id"])[:64],
                camera_id=str(doc["camera_id"])[:64],
                hazard=str(doc["hazard"])[:32],
                state=str(doc["state"]),
                kind=str(doc["kind"]),
                content_type=str(doc["content_type"])[:100],
                sha256=str(doc["sha256"]),
                captured_at=float(doc["captured_at"]),
                extra=doc.get("meta") if isinstance(doc.get("meta"), dict) else {},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise Invalid(f"X-Evidence-Meta: {exc}") from None
        if meta.kind not in KINDS or meta.state not in STATES or not re.fullmatch(r"[0-9a-f]{64}", meta.sha256):
            raise Invalid("X-Evidence-Meta: kind, state or sha256 is invalid")
        if meta.content_type not in ("image/jpeg", "video/mp4", "application/x-tar"):
            raise Invalid(f"content type {meta.content_type} is not accepted")
        return meta


def parse_range(header: str | None) -> tuple[int, int, int]:
    """(start, end exclusive, total)."""
    if header and EMPTY_RANGE.match(header):
        return 0, 0, 0
    m = RANGE.match(header or "")
    if not m:
        raise Invalid("Content-Range: bytes START-END/TOTAL is required")
    start, last, total = (int(g) for g in m.groups())
    if last < start or last >= total:
        raise Invalid("Content-Range is inconsistent")
    if total > MAX_FILE_BYTES:
        raise TooLarge(f"file over {MAX_FILE_BYTES} bytes")
    return start, last + 1, total


def offset(tx: Tx, edge_id: str, ident: str) -> tuple[int, bool] | None:
    row = tx.one("SELECT received, complete FROM evidence_files WHERE edge_id = ? AND id = ?", (edge_id, ident))
    return None if row is None else (int(row[0]), bool(row[1]))


def put_chunk(
    tx: Tx, edge_id: str, ident: str, rng: tuple[int, int, int], body: bytes, meta: Meta, now: float
) -> dict[str, Any]:
    start, end, total = rng
    if len(body) != end - start:
        raise Invalid(f"body has {len(body)} bytes, Content-Range says {end - start}")
    row = tx.one(
        "SELECT received, complete, size, data FROM evidence_files WHERE edge_id = ? AND id = ?", (edge_id, ident)
    )
    if row is None:
        if start != 0:
            raise Conflict("central has 0 bytes of this file")
        tx.execute(
            "INSERT INTO evidence_files(edge_id, id, alert_id, camera_id, hazard, alert_state, kind, content_type, "
            "size, received, sha256, captured_at, meta, data, complete, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, 0, ?, ?)",
            (
                edge_id,
                ident,
                meta.alert_id,
                meta.camera_id,
                meta.hazard,
                meta.state,
                meta.kind,
                meta.content_type,
                total,
                meta.sha256,
                meta.captured_at,
                json.dumps(meta.extra),
                b"",
                now,
                now,
            ),
        )
        received, complete, size, data = 0, False, total, b""
    else:
        received, complete, size, data = int(row[0]), bool(row[1]), int(row[2]), bytes(row[3])
    if complete:
        return {"received": received, "complete": True}
    if size != total:
        raise Conflict(f"total {total} differs from the {size} bytes announced before")
    if start != received:
        raise Conflict(f"central has {received} bytes; resend from there")
    data += body
    received = len(data)
    done = received == size
    if done and hashlib.sha256(data).hexdigest() != meta.sha256:
        tx.execute("DELETE FROM evidence_files WHERE edge_id = ? AND id = ?", (edge_id, ident))
        raise Damaged("sha256 of the assembled file does not match; upload it again")
    tx.execute(
        "UPDATE evidence_files SET data = ?, received = ?, complete = ?, updated_at = ? WHERE edge_id = ? AND id = ?",
        (data, received, int(done), now, edge_id, ident),
    )
    return {"received": received, "complete": done}


def for_incident(tx: Tx, incident_id: int) -> list[dict]:
    """Complete evidence files of an incident's alerts (matched through the alerts it holds)."""
    rows = tx.execute(
        "SELECT f.edge_id, f.id, f.alert_id, f.camera_id, f.alert_state, f.kind, f.content_type, f.size, "
        "f.captured_at, f.meta FROM evidence_files f JOIN incident_alerts ia ON ia.edge_id = f.edge_id AND "
        "ia.alert_id = f.alert_id WHERE ia.incident_id = ? AND f.complete = 1 ORDER BY f.captured_at, f.id",
        (incident_id,),
    )
    return [_row(r) for r in rows]


def _row(r: tuple) -> dict:
    return {
        "edge_id": r[0],
        "id": r[1],
        "alert_id": r[2],
        "camera_id": r[3],
        "alert_state": r[4],
        "kind": r[5],
        "content_type": r[6],
        "size": r[7],
        "captured_at": r[8],
        "meta": json.loads(r[9]),
        "url": f"/api/v1/evidence-files/{r[0]}/{r[1]}",
    }


def quiet_frames(tx: Tx, limit: int) -> list[dict]:
    rows = tx.execute(
        "SELECT edge_id, id, alert_id, camera_id, alert_state, kind, content_type, size, captured_at, meta "
        "FROM evidence_files WHERE alert_state = 'quiet' AND complete = 1 ORDER BY captured_at DESC LIMIT ?",
        (limit,),
    )
    return [_row(r) for r in rows]


def content(tx: Tx, edge_id: str, ident: str) -> tuple[str, bytes] | None:
    row = tx.one(
        "SELECT content_type, data FROM evidence_files WHERE edge_id = ? AND id = ? AND complete = 1", (edge_id, ident)
    )
    return None if row is None else (row[0], bytes(row[1]))
