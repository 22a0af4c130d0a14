"""The local write: :class:`Writer` appends this node's ops inside one transaction.

A writer knows its replica only through :class:`Appends`, the handful of operations a local
write needs; the replica hands it one (see :meth:`sync.replica.Replica.write`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Protocol

from sync.fold import Conflict, Kind, Rejected, State, apply
from sync.ops import Op, Payload
from sync.replica.core import EntityKey
from sync.replica.entities import _Row

REMEMBERED = 10_000
"""Local values kept by :meth:`Writer.remember` (a ward receives a few hundred dossiers a day)."""


class Appends(Protocol):
    """What a :class:`Writer` needs of its replica, inside the replica's open write transaction."""

    @property
    def conn(self) -> sqlite3.Connection:
        """The writer connection: what the caller writes on it commits with the ops, or not at all."""
        ...

    def kind(self, name: str) -> Kind:
        """The registered kind ``name``; KeyError if there is none."""
        ...

    def next_op(self, kind: str, entity: str, action: str, payload: Payload, written: int) -> Op:
        """This node's op after the ``written`` ops this write appended so far, stamped now."""
        ...

    def rows(self, keys: Sequence[EntityKey]) -> dict[EntityKey, _Row]:
        """What is held of these entities (an entity not held is absent)."""
        ...

    def insert(self, op: Op) -> bytes:
        """Keep this node's op in the log; return its ref, to add to its entity's refs."""
        ...

    def finish(self, ops: Sequence[Op], rows: Mapping[EntityKey, _Row]) -> None:
        """At the end of a write that appended ``ops``: record them in the feed (a hub), store
        and project the entities' new ``rows``, move this node's head, keep the clock."""
        ...


class Writer:
    """Appends this node's ops inside one transaction (see :meth:`Replica.write`)."""

    def __init__(self, log: Appends) -> None:
        self._log = log
        self.conn = log.conn
        self._rows: dict[EntityKey, _Row] = {}
        self._ops: list[Op] = []

    def append(self, kind: str, entity: str, action: str, payload: Payload | None = None) -> Op:
        """Append one op and fold it; raise :class:`Rejected` (rolling back the whole write) if
        the kind's reducer refuses it here — a local write is checked before it is kept."""
        log = self._log
        k = log.kind(kind)
        op = log.next_op(kind, entity, action, payload or {}, len(self._ops))
        key = (kind, entity)
        row = self._rows.get(key) or log.rows([key]).get(key)
        state: State = dict(row.state) if row else {}
        conflicts: list[Conflict] = []
        apply(k, state, [op], conflicts)
        if conflicts:
            raise Rejected(conflicts[0].reason)
        refs = (row.refs if row else b"") + log.insert(op)
        self._rows[key] = _Row(state, op.key, refs)
        self._ops.append(op)
        return op

    def state(self, kind: str, entity: str) -> State | None:
        key = (kind, entity)
        row = self._rows.get(key) or self._log.rows([key]).get(key)
        return row.state if row else None

    def remember(self, key: str, value: str) -> None:
        """Keep a local, unreplicated value in the same transaction as the ops (committed with
        them or not at all): what a request's idempotency key created, say. The newest
        :data:`REMEMBERED` values are kept (a retry comes within minutes or days, not years)."""
        cursor = self.conn.execute(
            "INSERT INTO sync_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"local:{key}", value),
        )
        if cursor.lastrowid and cursor.lastrowid % 256 == 0:
            self.conn.execute(
                """DELETE FROM sync_meta WHERE key >= 'local:' AND key < 'local;' AND rowid < (
                       SELECT rowid FROM sync_meta WHERE key >= 'local:' AND key < 'local;'
                       ORDER BY rowid DESC LIMIT 1 OFFSET ?)""",
                (REMEMBERED,),
            )

    def recall(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM sync_meta WHERE key = ?", (f"local:{key}",)).fetchone()
        return None if row is None else str(row[0])

    def _finish(self) -> None:
        if self._ops:
            self._log.finish(self._ops, self._rows)
