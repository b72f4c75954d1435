"""Central's storage: one code path over SQLite (embedded default) and PostgreSQL (production)."""

from hazardwatch.central.store.database import Database, Tx

__all__ = ["Database", "Tx"]
