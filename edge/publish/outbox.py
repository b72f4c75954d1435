"""Persistent outbox (SQLite, WAL): a message is stored before it is sent and leaves only when the
broker acknowledged it, so a broker outage or an edge restart loses and reorders nothing.

Bounded: when full, the oldest status message goes first and alerts go last; every drop is counted
(persisted, so the count survives restarts) and logged. A retained status supersedes any unsent
earlier status on the same topic, because only the latest one matters to a reader.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    kind TEXT NOT NULL,
    retain INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

ALERT = "alert"
STATUS = "status"


class OutboxError(Exception):
    """The outbox could not store a message (disk full, file unwritable)."""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    kind: str
    retain: bool


class Outbox:
    """Thread-safe: the engine writes, the MQTT link reads and acknowledges."""

    def __init__(self, path: Path, max_messages: int) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed alert survives power loss, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox database: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ----------------------------------------------------------------------------------
    def put_alert(self, topic: str, build: Callable[[int], bytes]) -> int:
        """Store an alert built with the next per-edge sequence number; return that number."""
        with self._lock, self._tx():
            seq = self._meta("next_alert_seq")
            self._set_meta("next_alert_seq", seq + 1)
            self._insert(topic, build(seq), ALERT, retain=False)
        return seq

    def put_status(self, topic: str, payload: bytes) -> None:
        """Store a retained status, superseding an unsent one on the same topic."""
        with self._lock, self._tx():
            self._db.execute("DELETE FROM outbox WHERE topic = ? AND kind = ?", (topic, STATUS))
            self._insert(topic, payload, STATUS, retain=True)

    def _insert(self, topic: str, payload: bytes, kind: str, retain: bool) -> None:
        depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        while depth >= self.max_messages:
            victim = self._db.execute("SELECT id, kind FROM outbox ORDER BY kind = 'alert', id LIMIT 1").fetchone()
            self._db.execute("DELETE FROM outbox WHERE id = ?", (victim[0],))
            self._set_meta(f"dropped_{victim[1]}", self._meta(f"dropped_{victim[1]}") + 1)
            log.error("outbox %s is full (%d messages): dropped the oldest %s message", self.path, depth, victim[1])
            depth -= 1
        self._db.execute(
            "INSERT INTO outbox(topic, payload, kind, retain, created_at) VALUES (?, ?, ?, ?, ?)",
            (topic, payload, kind, int(retain), time.time()),
        )

    def _tx(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- reading ----------------------------------------------------------------------------------
    def pending(self, after_id: int, limit: int) -> list[OutboxMessage]:
        """Messages with id > after_id in the order they were stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, kind, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxMessage(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def ack(self, message_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def dropped(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._meta(f"dropped_{kind}") for kind in (ALERT, STATUS)}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, turning SQLite failures (disk full) into OutboxError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"{self._path}: cannot write: {exc}") from None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_exc:
                self._rollback()
                raise OutboxError(f"{self._path}: cannot write: {commit_exc}") from None
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise OutboxError(f"{self._path}: cannot write: {exc}") from None

    def _rollback(self) -> None:
        # On SQLITE_FULL or an I/O error SQLite may already have rolled the transaction back itself;
        # a second ROLLBACK would raise and turn a clean OutboxError into a crash of the engine.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("outbox %s: rollback failed: %s", self._path, exc)
