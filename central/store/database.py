"""A thin, synchronous database layer shared by SQLite and PostgreSQL.

SQL is written once with `?` placeholders and a portable subset (ON CONFLICT, RETURNING, TEXT JSON);
the PostgreSQL path rewrites placeholders. Callers run it from worker threads (asyncio.to_thread),
so the event loop never blocks on I/O. Multi-instance safety on PostgreSQL comes from row
constraints and transaction-scoped advisory locks (`Tx.lock`); SQLite serialises writers itself.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgres"]
_TYPES = {
    "sqlite": {"{id}": "INTEGER PRIMARY KEY AUTOINCREMENT", "{blob}": "BLOB"},
    "postgres": {"{id}": "BIGSERIAL PRIMARY KEY", "{blob}": "BYTEA"},
}
MIGRATION_LOCK = 815_247_001
# Parameters one statement may carry on PostgreSQL (its protocol counts them in 16 bits); SQLite says
# its own (SQLITE_LIMIT_VARIABLE_NUMBER: 32,766 by default since 3.32, 999 before).
PG_MAX_PARAMS = 65_535


class StoreError(Exception):
    """The database cannot be opened or migrated; the text names the URL (without password)."""


def safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class Tx:
    """One transaction. `execute` returns all rows as tuples (empty for statements without rows)."""

    def __init__(
        self,
        cursor: Any,
        dialect: Dialect,
        pipeline_conn: Any = None,
        raw_cursor: Any = None,
        max_params: int = PG_MAX_PARAMS,
    ) -> None:
        self._cur = cursor
        self.dialect = dialect
        self._max_params = max_params
        self._pipeline_conn = pipeline_conn
        self._raw = raw_cursor  # PostgreSQL: takes `$n` placeholders as they are (`write_rows`)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        if self.dialect == "postgres":
            sql = sql.replace("%", "%%").replace("?", "%s")
        if self._pipeline_conn is not None:
            # Pipelined: a read gets a cursor of its own, because a result of an earlier statement that
            # arrives late lands on the cursor that sent it; the description is only known once the result
            # arrived, so fetching (which waits for it) tells rows from none.
            with self._pipeline_conn.cursor() as cur:
                cur.execute(sql, tuple(params))
                try:
                    return list(cur.fetchall())
                except Exception as exc:  # psycopg.ProgrammingError: a statement without rows
                    if type(exc).__name__ != "ProgrammingError":
                        raise
                    return []
        self._cur.execute(sql, tuple(params))
        return list(self._cur.fetchall()) if self._cur.description else []

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A statement whose result nobody reads: in a pipelined transaction it goes out without waiting."""
        if self.dialect == "postgres":
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._cur.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows; psycopg sends them pipelined, in one round trip."""
        if not rows:
            return
        if self.dialect == "postgres":
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._cur.executemany(sql, [tuple(r) for r in rows])

    def write_rows(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows, whose result nobody reads: `sql` holds `{rows}` where the rows'
        VALUES list goes. The server parses, plans and runs one statement (per chunk of as many rows as
        the parameter limit allows) instead of one per row, and the client dumps the parameters of all
        rows in one call; in a pipelined transaction it goes out without waiting. Every row has the width
        of the first. PostgreSQL types a VALUES column by its values (text where all are NULL), so SQL
        that reads them other than as an INSERT's values casts them."""
        if not rows:
            return
        width = len(rows[0])
        per = max(1, self._max_params // width)
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            params = [value for row in chunk for value in row]
            if self.dialect == "postgres":
                # A raw cursor: psycopg parses `%s` placeholders in Python, slowly for thousands of them.
                self._raw.execute(sql.replace("{rows}", _values_list(len(chunk), width, True)), params)
            else:
                self._cur.execute(sql.replace("{rows}", _values_list(len(chunk), width, False)), params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None

    def lock(self, key: str) -> None:
        """Serialise a critical section across central instances (PostgreSQL advisory lock)."""
        if self.dialect == "postgres":
            self._cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def lock_all(self, keys: Iterable[str]) -> int:
        """Take several advisory locks in one round trip and in one fixed order (by lock number), so two
        transactions that want overlapping sets queue instead of deadlocking. Returns how many."""
        if self.dialect != "postgres":
            return 0
        ids = sorted({lock_number(k) for k in keys})
        if ids:
            self._cur.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS t(k)", (int_array(ids),)
            )
        return len(ids)

    def for_update(self) -> str:
        """` FOR UPDATE` on PostgreSQL (row locks until commit); SQLite already serialises writers."""
        return " FOR UPDATE" if self.dialect == "postgres" else ""


@functools.lru_cache(maxsize=64)
def _values_list(count: int, width: int, numbered: bool) -> str:
    """`(?, ?), (?, ?)` for 2 rows of 2, or `($1, $2), ($3, $4)` numbered (batches repeat their sizes)."""
    if not numbered:
        row = f"({', '.join('?' * width)})"
        return ", ".join([row] * count)
    return ", ".join(
        f"({', '.join(f'${base + k}' for k in range(1, width + 1))})" for base in range(0, count * width, width)
    )


def int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers: the server parses it, where psycopg would dump a list in
    Python one element at a time (1.8 ms for a batch's 3,000 lock numbers, 0.3 ms this way)."""
    return "{" + ",".join(map(str, map(int, values))) + "}"


@functools.lru_cache(maxsize=1 << 16)
def lock_number(key: str) -> int:
    """A stable signed 64-bit advisory lock number for a key (the same in every instance); a camera's
    and its cells' keys come again with each of its alerts, hence the cache."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class Database:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        self.dialect: Dialect
        self._sqlite: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pool: Any = None
        self._raw_cursor: Any = None
        try:
            if url.startswith("sqlite:///"):
                self.dialect = "sqlite"
                path = Path(url.removeprefix("sqlite:///"))
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a process crash (kill -9); FULL also survives power loss.
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                self._sqlite = conn
            elif url.startswith(("postgresql://", "postgres://")):
                from psycopg import RawCursor
                from psycopg_pool import ConnectionPool

                self.dialect = "postgres"
                self._raw_cursor = RawCursor
                self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=30)
                self._pool.wait(timeout=30)
            else:
                raise StoreError(f"unsupported database URL {safe_url(url)}: use sqlite:///PATH or postgresql://...")
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open database {safe_url(url)}: {exc}") from None

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pool is not None:
            self._pool.close()

    @contextmanager
    def tx(self, *, pipeline: bool = False) -> Iterator[Tx]:
        """A write transaction; commits on success, rolls back on any exception.

        `pipeline` (PostgreSQL): statements whose results are not read (`write`, `executemany`) are sent
        without waiting for the server, so they ride along with the next read; an error in one of them
        surfaces at that read or at commit, and still rolls the whole transaction back."""
        if self._sqlite is not None:
            with self._lock:
                cur = self._sqlite.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(cur, "sqlite", max_params=self._sqlite.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                else:
                    cur.execute("COMMIT")
            return
        with self._pool.connection() as conn, contextlib.ExitStack() as stack:
            if pipeline:
                stack.enter_context(conn.pipeline())
            stack.enter_context(conn.transaction())
            cursor, raw = stack.enter_context(conn.cursor()), stack.enter_context(self._raw_cursor(conn))
            yield Tx(cursor, "postgres", conn if pipeline else None, raw)

    # -- migrations -------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply every migration not yet applied, in order; return the schema version."""
        files = sorted(
            (
                f
                for f in resources.files("hazardwatch.central.store").joinpath("migrations").iterdir()
                if f.name.endswith(".sql")
            ),
            key=lambda f: f.name,
        )
        with self.tx() as tx:
            if self.dialect == "postgres":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
            applied = {row[0] for row in tx.execute("SELECT version FROM schema_migrations")}
            version = max(applied, default=0)
            for f in files:
                number = int(f.name.split("_", 1)[0])
                if number in applied:
                    continue
                # Comments go first: statements are split on ';'.
                sql = "\n".join(
                    ln for ln in f.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("--")
                )
                for placeholder, real in _TYPES[self.dialect].items():
                    sql = sql.replace(placeholder, real)
                for statement in (s.strip() for s in sql.split(";")):
                    if statement:
                        tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, "
                    + ("strftime('%s','now')" if self.dialect == "sqlite" else "extract(epoch from now())")
                    + ")",
                    (number, f.name),
                )
                log.info("applied migration %s", f.name)
                version = number
        return version
