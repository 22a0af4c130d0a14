"""The domain schema's migrations, applied through :mod:`sync.migrations` (namespace "schema")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sync.migrations import Migration, apply, current_version, from_directory

NAMESPACE = "schema"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATIONS: list[Migration] = from_directory(MIGRATIONS_DIR)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the domain tables up to date; return the versions applied (empty: nothing to do).

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises
    :class:`sync.errors.SchemaTooNew` if newer software already migrated this database.
    """
    return apply(conn, NAMESPACE, MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The domain schema version recorded in the database (0 if never migrated)."""
    return current_version(conn, NAMESPACE)
