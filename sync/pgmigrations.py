"""Numbered migrations on PostgreSQL: the rules of :mod:`sync.migrations`, for a shared server.

The same rules as on SQLite: each namespace (``fleet``, later ``sync`` and ``schema``) has an
ordered list of :class:`Migration`; each one runs once, in its own transaction, and is recorded in
the ``migrations`` table; a failure leaves the database at the previous version; a database whose
recorded version is newer than the code knows is refused with :class:`SchemaTooNew`.

What a shared server adds: several city processes may start at once against one database. Each
migration's transaction first takes a transaction-scoped advisory lock and reads the version
again, so two processes never run the same migration, and the one that waited finds it applied.

Imported as a module (``from sync import pgmigrations``): only a city on PostgreSQL loads psycopg.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from sync.errors import MigrationError, SchemaTooNew

Connection = psycopg.Connection[Any]
Step = str | Callable[[Connection], None]

LOCK_KEY = 0x6D6F74637561  # "motcua": the advisory lock every migration transaction takes


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    step: Step
    """SQL script (several statements may follow each other: no parameters) or a function run
    inside the transaction."""


_LEDGER = """
CREATE TABLE IF NOT EXISTS migrations (
    namespace TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, version)
)
"""


def _locked_version(conn: Connection, namespace: str) -> int:
    """Inside a transaction: take the migrations lock, make sure the ledger exists, read it."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    conn.execute(_LEDGER)
    row = conn.execute("SELECT max(version) FROM migrations WHERE namespace = %s", (namespace,)).fetchone()
    return int(row[0] or 0) if row else 0


def current_version(conn: Connection, namespace: str) -> int:
    """The recorded version of ``namespace`` (0: none applied). ``conn`` is in autocommit mode."""
    with conn.transaction():
        return _locked_version(conn, namespace)


def _too_new(namespace: str, have: int, known: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"the database is at {namespace} schema version {have}, but this software only knows "
        f"up to version {known}: upgrade motcua before opening it"
    )


def apply(conn: Connection, namespace: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations of ``namespace`` not yet recorded; return the versions applied here.

    ``conn`` must be in autocommit mode: each migration runs in its own transaction."""
    if not conn.autocommit:
        raise MigrationError("migrations need a connection in autocommit mode (one transaction each)")
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise MigrationError(f"{namespace}: migration versions must be unique and ascending")
    known = versions[-1] if versions else 0
    have = current_version(conn, namespace)
    if have > known:
        raise _too_new(namespace, have, known)
    applied = []
    for migration in migrations:
        if migration.version <= have:
            continue
        try:
            with conn.transaction():
                have = _locked_version(conn, namespace)  # another process may have run it meanwhile
                if have > known:
                    raise _too_new(namespace, have, known)
                if migration.version <= have:
                    continue
                if callable(migration.step):
                    migration.step(conn)
                else:
                    conn.execute(migration.step.encode())
                conn.execute(
                    "INSERT INTO migrations (namespace, version, name, applied_at) VALUES (%s, %s, %s, %s)",
                    (namespace, migration.version, migration.name, int(time.time())),
                )
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) and conn.closed:
                raise  # the connection is gone: not the migration's fault, the caller says so
            message = " ".join(str(exc).split())
            raise MigrationError(
                f"{namespace} migration {migration.version} ({migration.name}) failed: {message}"
            ) from exc
        have = migration.version
        applied.append(migration.version)
    return applied
