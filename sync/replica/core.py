"""The core every part of a replica shares: connections, lock, caches, the write transaction."""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sync.checkpoint import Checkpointer
from sync.clock import Clock, Stamp
from sync.db import connect
from sync.errors import RevokedNode
from sync.fold import Registry
from sync.identity import Identity
from sync.storage import Store
from sync.vector import Vector

READERS_KEPT = 4
"""Idle read connections a replica keeps for :meth:`Replica.reading` (a web page takes up to three)."""
_CHUNK = 500  # SQLite host parameters per IN (...) query

EntityKey = tuple[str, str]

_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
_OWN_TABLES = ("sync_", "sqlite_", "migrations")

_R = TypeVar("_R")

_REVOKED_MESSAGE = "motcua: ops after a revocation are refused"
_REVOCATION_HOLDS = f"""
CREATE TEMP TRIGGER IF NOT EXISTS sync_revocation_holds BEFORE UPDATE OF head ON sync_node
WHEN NEW.revoked_after IS NOT NULL AND NEW.head > NEW.revoked_after
BEGIN SELECT RAISE(ABORT, '{_REVOKED_MESSAGE}'); END
"""
"""A batch is checked against the revocations before its transaction opens, and another process
(``motcua node revoke``) may revoke its node in between: SQLite itself then refuses to move that
node's head past the revocation, as keeping any op past it would (a temporary trigger, on
this connection only: the schema stays the same for every reader)."""


def _locked(method: Callable[..., _R]) -> Callable[..., _R]:
    """Reads on the writer connection wait for a write in another thread to finish."""

    @functools.wraps(method)
    def wrapper(self: Core, *args: Any, **kwargs: Any) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Core:
    """What every part of a :class:`~sync.replica.Replica` shares: its connections, the lock,
    the caches of the database (node ids, keys, revocations, heads, the clock) and the write
    transaction that keeps them true (docs/decisions/0007)."""

    partial: bool
    feed: bool
    path: Path
    identity: Identity
    registry: Registry
    clock: Clock
    conn: sqlite3.Connection
    store: Store
    _lock: threading.RLock
    _idle: list[sqlite3.Connection]
    _idle_lock: threading.Lock
    _closed: bool
    _projecting: bool
    _data_version: int
    _ids: dict[str, int]
    _keys: dict[str, bytes | None]
    _revoked: dict[str, int]
    _heads: dict[str, int]

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()
        self.conn.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for the ``with`` block, from a small pool: opening one costs
        more than a page's queries, and a kept connection keeps its page cache warm. Returned
        with no transaction open; one that raised an SQLite error is closed instead."""
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self.reader()
        broken = False
        try:
            yield conn
        except sqlite3.Error:
            broken = True
            raise
        finally:
            self._release(conn, broken)

    def _release(self, conn: sqlite3.Connection, broken: bool) -> None:
        if not broken and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                broken = True
        with self._idle_lock:
            keep = not broken and not self._closed and len(self._idle) < READERS_KEPT
            if keep:
                self._idle.append(conn)
        if not keep:
            conn.close()

    def reload(self) -> None:
        """Forget what this process cached of the database (nodes, heads, keys, clock) and read it
        again. Every write, merge and pull does this by itself when another connection committed
        since (:meth:`_refresh`); this forces it."""
        with self._lock:
            self._load()

    def checkpointer(self, interval_s: float = 1.0) -> Checkpointer:
        """A :class:`~sync.checkpoint.Checkpointer` for this file (start it while serving)."""

        def autocheckpoint(pages: int) -> None:
            with self._lock:
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

        return Checkpointer(self.path, autocheckpoint, interval_s=interval_s)

    def reader(self) -> sqlite3.Connection:
        """A new read-only connection to the same file (WAL: readers never block the writer)."""
        return connect(self.path, readonly=True)

    def _load(self) -> None:
        """Read what this replica caches of its database: node ids, keys, revocations, heads, and
        its clock (which only moves forward). The new maps replace the old ones whole, so a
        thread that reads one without the lock (:meth:`verify`) never sees it half-filled."""
        self._data_version = self._version()
        ids: dict[str, int] = {}
        keys: dict[str, bytes | None] = {}
        revoked: dict[str, int] = {}
        heads: dict[str, int] = {}
        for row in self.store.nodes():
            ids[row.node] = row.id
            keys[row.node] = row.public_key
            heads[row.node] = row.head
            if row.revoked_after is not None:
                revoked[row.node] = row.revoked_after
        self._ids, self._keys, self._revoked, self._heads = ids, keys, revoked, heads
        hlc = self.store.get_meta("hlc")
        if hlc is not None:
            self.clock.advance_to(Stamp.unpack(int(hlc)))

    def _version(self) -> int:
        return self.store.version()

    def _refresh(self) -> None:
        """Reload the caches if another connection (another process: a CLI beside the server)
        committed since they were read (docs/decisions/0007). Under the lock; inside a write
        transaction, after ``BEGIN IMMEDIATE``: nobody else can commit until it ends, so what is
        read here stays true for the whole transaction. SQLite moves ``data_version`` on another
        connection's commit only, never on this one's, so the usual cost is one pragma."""
        if self._version() != self._data_version:
            self._load()

    def _save_clock(self) -> None:
        self.store.set_meta("hlc", self.clock.last.pack())

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self.store.begin()
            try:
                self._refresh()
                yield
                self.store.commit()
            except BaseException as exc:
                # The heads kept in memory must be reloaded, or the next op would leave a gap.
                self.store.rollback()
                self._load()
                if isinstance(exc, sqlite3.IntegrityError) and str(exc) == _REVOKED_MESSAGE:
                    raise RevokedNode(
                        "a node was revoked while its batch was being checked; "
                        "its ops after the revocation are refused"
                    ) from exc
                raise

    def _authorize(self, action: int, table: str | None, *_: object) -> int:
        """Deny writes to the domain's tables except from a projector: the change log is the
        only write path (DESIGN.md), enforced by SQLite itself on the writer connection."""
        if action in _WRITES and not self._projecting and table and not table.startswith(_OWN_TABLES):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _node_id(self, node: str) -> int:
        node_id = self._ids.get(node)
        if node_id is None:
            node_id = self.store.add_node(node)
            self._ids[node] = node_id
            self._heads[node] = 0
        return node_id

    def _node_name(self, node_id: int) -> str:
        return next(name for name, i in self._ids.items() if i == node_id)

    @_locked
    def vector(self) -> Vector:
        self._refresh()
        return Vector(self._heads)
