"""Numbered migrations, applied once each, in their own transaction, and recorded.

Generic: any package (sync's own tables, the domain's schema) passes a namespace and an
ordered list of :class:`Migration`. Re-running is a no-op; a database whose recorded version in
a namespace is newer than the code knows is refused with :class:`SchemaTooNew`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.errors import MigrationError, SchemaTooNew

Step = str | Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    step: Step
    """SQL script (statements separated by ';') or a function run inside the transaction."""


def from_directory(directory: Path) -> list[Migration]:
    """Migrations from files named ``NNNN_name.sql``, in version order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit():
            raise MigrationError(f"migration file {path.name} does not start with a number")
        found.append(Migration(int(number), name, path.read_text(encoding="utf-8")))
    return found


_LEDGER = """
CREATE TABLE IF NOT EXISTS migrations (
    namespace TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, version)
)
"""


def current_version(conn: sqlite3.Connection, namespace: str) -> int:
    conn.execute(_LEDGER)
    row = conn.execute("SELECT max(version) FROM migrations WHERE namespace = ?", (namespace,)).fetchone()
    return int(row[0] or 0)


def _statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer)
            buffer = ""
    if buffer.strip():
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {buffer[:80]!r}")
    return statements


def apply(conn: sqlite3.Connection, namespace: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations of ``namespace`` not yet recorded; return the versions applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``): each migration runs in its
    own ``BEGIN IMMEDIATE`` transaction, so a failure leaves the database at the previous version.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise MigrationError(f"{namespace}: migration versions must be unique and ascending")
    have = current_version(conn, namespace)
    known = versions[-1] if versions else 0
    if have > known:
        raise SchemaTooNew(
            f"the database is at {namespace} schema version {have}, but this software only knows "
            f"up to version {known}: upgrade motcua before opening it"
        )
    applied = []
    for migration in migrations:
        if migration.version <= have:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(migration.step):
                migration.step(conn)
            else:
                for statement in _statements(migration.step):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations (namespace, version, name, applied_at) VALUES (?, ?, ?, ?)",
                (namespace, migration.version, migration.name, int(time.time())),
            )
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise MigrationError(
                f"{namespace} migration {migration.version} ({migration.name}) failed: {exc}"
            ) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(migration.version)
    return applied
