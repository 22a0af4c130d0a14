"""The upstream outbox: filled by the fold, in the replica's own transaction.

The city opens its node with :data:`CITY_KINDS`: the domain's kinds, the dossier's projector
followed by :func:`project_outbox`. Whatever brings a dossier op to the city (a box's push, a
USB bundle, a city admin's action) folds it in a transaction that also writes the outbox, so
the outbox can never miss a state the city committed, nor hold one it did not.

``upstream_outbox`` (in motcua.db, migration namespace "upstream"): one row per (dossier, op),
``op`` "sync" (the whole record, ``DongBoHoSoMC``) and, once a dossier has moved past its
creation, "progress" (its newest step, ``CapNhatTienDoHoSoMC``). A newer state replaces the
row (coalesced: the portal only ever needs the newest) with the dossier's newest stamp and a
new ``serial``, the position a sender's cursor follows (:mod:`central.upstream.store`).
Dossiers the city held before the table existed are put in by the migration.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from schema import KINDS, migrate
from schema.projection import project_dossiers
from sync.fold import Kind, State
from sync.migrations import Migration, apply

NAMESPACE = "upstream"
SYNC, PROGRESS = "sync", "progress"

MIGRATIONS = [
    Migration(
        1,
        "outbox",
        """
        CREATE TABLE upstream_outbox (
            dossier TEXT NOT NULL,
            op TEXT NOT NULL,
            stamp INTEGER NOT NULL,
            serial INTEGER NOT NULL,
            PRIMARY KEY (dossier, op)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX upstream_outbox_serial ON upstream_outbox (serial);
        INSERT INTO upstream_outbox (dossier, op, stamp, serial)
            SELECT id, 'sync', updated_stamp, rid FROM dossiers;
        """,
    )
]


def migrate_city(conn: sqlite3.Connection) -> object:
    """The domain's migrations, then the outbox's."""
    done = migrate(conn)
    apply(conn, NAMESPACE, MIGRATIONS)
    return done


def project_outbox(conn: sqlite3.Connection, items: Sequence[tuple[str, State]]) -> None:
    row = conn.execute("SELECT COALESCE(MAX(serial), 0) FROM upstream_outbox").fetchone()
    serial = int(row[0])
    rows: list[tuple[str, str, int, int]] = []
    for entity, state in items:
        if not state.get("_created"):
            continue
        stamp = int(state["_stamp"])
        serial += 1
        rows.append((entity, SYNC, stamp, serial))
        if len(state.get("steps") or ()) > 1:
            serial += 1
            rows.append((entity, PROGRESS, stamp, serial))
    if rows:
        conn.executemany(
            "INSERT INTO upstream_outbox (dossier, op, stamp, serial) VALUES (?,?,?,?) "
            "ON CONFLICT (dossier, op) DO UPDATE SET stamp = excluded.stamp, serial = excluded.serial "
            "WHERE excluded.stamp != upstream_outbox.stamp",
            rows,
        )


def _both(first: Callable[..., None], second: Callable[..., None]) -> Callable[..., None]:
    def project(conn: sqlite3.Connection, items: Sequence[tuple[str, State]]) -> None:
        first(conn, items)
        second(conn, items)

    return project


def _city_kinds() -> list[Kind]:
    out = []
    for kind in KINDS:
        if kind.name == "dossier":
            kind = dataclasses.replace(kind, project=_both(project_dossiers, project_outbox))
        out.append(kind)
    return out


CITY_KINDS: list[Kind] = _city_kinds()


def pending_after(conn: sqlite3.Connection, serial: int, limit: int) -> list[tuple[Any, ...]]:
    """Outbox rows after ``serial`` in serial order: (dossier, op, stamp, serial)."""
    return conn.execute(
        "SELECT dossier, op, stamp, serial FROM upstream_outbox WHERE serial > ? ORDER BY serial LIMIT ?",
        (serial, limit),
    ).fetchall()
