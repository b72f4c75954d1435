"""The evidence index: one SQLite row per saved file, with what the uploader and retention need.

It survives restarts (WAL), so unsent evidence is resumed and never mistaken for a cache. Safe to
call from the loop, encoder and uploader threads (one lock around the connection).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    hazard TEXT NOT NULL,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    captured_at REAL NOT NULL,
    created_at REAL NOT NULL,
    uploaded_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS evidence_pending ON evidence(uploaded_at, created_at);
"""
KEYS = (
    "id",
    "alert_id",
    "camera_id",
    "hazard",
    "state",
    "kind",
    "path",
    "content_type",
    "size",
    "sha256",
    "captured_at",
    "uploaded_at",
    "meta",
)


@dataclass(frozen=True)
class EvidenceRow:
    """What is recorded of one saved file."""

    id: str
    alert_id: str
    camera_id: str
    hazard: str
    state: str
    kind: str
    path: str
    content_type: str
    size: int
    sha256: str
    captured_at: float
    meta: dict[str, Any]


class EvidenceIndex:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, row: EvidenceRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO evidence(id, alert_id, camera_id, hazard, state, kind, path, content_type, size, sha256, "
                "captured_at, created_at, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    row.alert_id,
                    row.camera_id,
                    row.hazard,
                    row.state,
                    row.kind,
                    row.path,
                    row.content_type,
                    row.size,
                    row.sha256,
                    row.captured_at,
                    time.time(),
                    json.dumps(row.meta),
                ),
            )

    def used_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM evidence").fetchone()[0])

    def uploaded_oldest_first(self) -> list[tuple[str, str, int]]:
        """(id, file name, size) of files central already has: the only ones retention may delete."""
        with self._lock:
            return self._db.execute(
                "SELECT id, path, size FROM evidence WHERE uploaded_at IS NOT NULL ORDER BY created_at"
            ).fetchall()

    def delete(self, ident: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM evidence WHERE id = ?", (ident,))

    def items(self, *, unsent_only: bool = False) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(KEYS)} FROM evidence"
        if unsent_only:
            sql += " WHERE uploaded_at IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at").fetchall()
        return [dict(zip(KEYS, r, strict=True)) for r in rows]

    def mark_uploaded(self, ident: str) -> None:
        with self._lock:
            self._db.execute("UPDATE evidence SET uploaded_at = ? WHERE id = ?", (time.time(), ident))

    def note_attempt(self, ident: str) -> None:
        with self._lock:
            self._db.execute("UPDATE evidence SET attempts = attempts + 1 WHERE id = ?", (ident,))
