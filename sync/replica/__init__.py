"""A replica: the change log in one SQLite file, and the only way to change state.

Local writes (:meth:`Replica.write`) and remote merges (:meth:`Replica.merge`) both append ops
and fold the entities they touch in the same ``BEGIN IMMEDIATE`` transaction, so state and log
never disagree, even after a power cut. Merge is set union: an op already held is skipped
(after checking it is byte-for-byte the one held), an op after a gap waits in ``sync_pending``
until the gap fills, and a late op re-folds only its own entity.

The replica is one facade over one module per concept: :mod:`~sync.replica.core` (connections,
lock, caches, the write transaction), :mod:`~sync.replica.trust` (keys, revocations),
:mod:`~sync.replica.entities` (folded states and the fold), :mod:`~sync.replica.log` (local
writes and merges), :mod:`~sync.replica.writer` (a local write, through the narrow
:class:`~sync.replica.writer.Appends`), :mod:`~sync.replica.export` (seals, batches, serving a
hub's feed), :mod:`~sync.replica.tail` (re-stamping a future tail), :mod:`~sync.replica.reads`
(reads and digests) and :mod:`~sync.replica.meta` (small values, peers). Other packages use
:class:`Replica` and :class:`Writer` only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from sync.clock import Clock
from sync.db import connect, install
from sync.fold import Kind, Registry
from sync.identity import Identity
from sync.replica.core import _REVOCATION_HOLDS, READERS_KEPT, EntityKey
from sync.replica.entities import MergeReport
from sync.replica.export import DEFAULT_BATCH_BYTES, SEAL_MAX_OPS, Export
from sync.replica.log import Admit, Log
from sync.replica.meta import Meta
from sync.replica.reads import Reads
from sync.replica.sqlite import SqliteStore
from sync.replica.tail import Tail
from sync.replica.writer import REMEMBERED, Writer

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "READERS_KEPT",
    "REMEMBERED",
    "SEAL_MAX_OPS",
    "Admit",
    "EntityKey",
    "MergeReport",
    "Replica",
    "Writer",
]


class Replica(Log, Tail, Export, Reads, Meta):
    """One node's change log and folded state in one SQLite file.

    Not thread-safe by itself for writes from many threads at once: writes and merges take an
    internal lock, so there is one writer per file (STYLE 7); reads may use :meth:`reader`.
    """

    def __init__(
        self,
        path: str | Path,
        identity: Identity,
        kinds: Iterable[Kind],
        *,
        clock: Clock | None = None,
        migrate: Callable[[sqlite3.Connection], object] | None = None,
        partial: bool = False,
        feed: bool = False,
    ) -> None:
        """``partial``: this replica holds only a scope of other nodes' ops (a commune edge), so
        their seqs are not dense here and are not waited for. ``feed``: this replica is a hub
        that numbers every op on arrival for partial replicas to follow (central)."""
        self.partial = partial
        self.feed = feed
        self.path = Path(path)
        self.identity = identity
        self.registry = Registry(kinds)
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self._writer = None
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        self.conn = connect(self.path)
        self.store = SqliteStore(self.conn)
        install(self.conn)
        if migrate is not None:
            migrate(self.conn)
        self._projecting = False
        self.conn.execute(_REVOCATION_HOLDS)
        self.conn.set_authorizer(self._authorize)
        self._load()
        if identity.node not in self._ids:
            self.trust(identity.node, identity.public_raw)
