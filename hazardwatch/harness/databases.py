"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ADMIN_URL = os.environ.get("HAZARDWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_unavailable_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"


@contextmanager
def temporary_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a database URL of `kind` ('sqlite' or 'postgres') that is gone afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'central.db'}"
        return
    import psycopg

    name = f"hw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
