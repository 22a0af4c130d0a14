"""Reads of ops, entity states and conflicts, and the digests that compare replicas."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sync import feed
from sync import ops as opcodec
from sync.fold import Conflict, State
from sync.ops import Op
from sync.replica.core import (
    EntityKey,
    _locked,
)
from sync.replica.entities import Entities


class Reads(Entities):
    """Reads of ops, states and conflicts on the writer connection, and digests."""

    @_locked
    def state(self, kind: str, entity: str) -> State | None:
        return self.store.state(kind, entity)

    @_locked
    def states(self, kind: str | None = None) -> dict[EntityKey, State]:
        return self.store.states(kind)

    @_locked
    def ops_of(self, kind: str, entity: str) -> list[Op]:
        """Every op of an entity held here, in fold order."""
        refs = self.store.entity_refs(kind, entity)
        if refs is None:
            return []
        return sorted((opcodec.decode(b) for b in self._bodies(refs)), key=lambda op: op.key)

    @_locked
    def conflicts(self, kind: str | None = None, entity: str | None = None) -> list[Conflict]:
        return self.store.conflicts(kind, entity)

    @_locked
    def op(self, node: str, seq: int) -> Op | None:
        """One op by its identity, or None if not held."""
        self._refresh()
        node_id = self._ids.get(node)
        if node_id is None:
            return None
        body = self.store.op_body(node_id, seq)
        return None if body is None else opcodec.decode(body)

    @_locked
    def op_count(self) -> int:
        return self.store.op_count()

    @_locked
    def pending_count(self) -> int:
        return self.store.pending_count()

    @_locked
    def digest(self) -> bytes:
        """SHA-256 over (node, seq, op bytes) of every op held, in a canonical order: two
        replicas with equal digests hold exactly the same ops."""
        h = hashlib.sha256()
        rows = self.conn.execute(
            "SELECT n.node, o.seq, o.body FROM sync_op o JOIN sync_node n ON n.id = o.node "
            "ORDER BY n.node, o.seq"
        )
        for node, seq, body in rows:
            h.update(b"%s\x00%d\x00%d\x00" % (node.encode(), seq, len(body)))
            h.update(body)
        return h.digest()

    @_locked
    def state_digest(self) -> bytes:
        h = hashlib.sha256()
        for kind, entity, state in self.conn.execute(
            "SELECT kind, entity, state FROM sync_entity ORDER BY kind, entity"
        ):
            h.update(f"{kind}\x00{entity}\x00".encode() + state + b"\x00")
        return h.digest()

    def scope_digest(self, keys: Iterable[str]) -> bytes:
        """Computed on a read connection, in one read transaction (a consistent snapshot): it
        reads every op of the scope, and on the writer it stalled every local write meanwhile
        (a clerk's receive, for seconds at 100,000 ops) and, at the city, every push.

        A partial replica's digest is over every entity it holds, ``keys`` or not: it holds
        its scope and nothing else, and only the hub knows which entities its scope has had
        (see :func:`sync.feed.scope_digest`)."""
        conn = self.reader()  # its own: the pooled readers' page caches stay a page's size
        try:
            conn.execute("BEGIN")
            return feed.scope_digest(conn, keys, held=self.partial)
        finally:
            conn.close()
