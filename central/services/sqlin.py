"""Matching a column against a batch's values with one SQL text whatever the batch's size.

`IN (?, ?, ...)` is a new statement for every length: psycopg parses a statement of over 50 parameters
again each time (a millisecond or more for a batch's 500 values) and PostgreSQL never prepares it. On
PostgreSQL the values travel as one array (`= ANY(?)`, or `unnest` for pairs), so the text repeats and
both caches serve it; SQLite, which has no arrays and no round trips, keeps the `IN` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hazardwatch.central.store import Tx
from hazardwatch.central.store.database import int_array


def matching(tx: Tx, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column` is one of `values` (not empty): the condition and its parameters. Integers go as an array
    literal (PostgreSQL types it by the column), which psycopg need not dump element by element."""
    if tx.dialect == "postgres":
        if all(type(v) is int for v in values):
            return f"{column} = ANY(?)", [int_array(values)]
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def matching_pairs(
    tx: Tx, columns: tuple[str, str], types: tuple[str, str], values: Sequence[tuple[Any, Any]]
) -> tuple[str, list[Any]]:
    """`(a, b)` is one of the pairs `values` (not empty), the columns of PostgreSQL types `types`."""
    left = f"({columns[0]}, {columns[1]})"
    if tx.dialect == "postgres":
        firsts, seconds = [v[0] for v in values], [v[1] for v in values]
        arrays = [int_array(a) if t == "bigint" else a for a, t in ((firsts, types[0]), (seconds, types[1]))]
        return f"{left} IN (SELECT * FROM unnest(?::{types[0]}[], ?::{types[1]}[]))", arrays
    return f"{left} IN (VALUES {','.join('(?, ?)' for _ in values)})", [v for pair in values for v in pair]
