"""The storage a replica's log, merge, fold and hub serving run on: one contract, written down.

:class:`Store` is every operation on sync's own tables that the hub side uses — nodes and their
heads, the op log, ops waiting behind a gap, entity states and refs, conflicts, scopes, the
feed, seals and their known subtree hashes, small values. :class:`~sync.replica.sqlite.SqliteStore`
implements it on the replica's SQLite writer connection; a PostgreSQL hub (issue 12) provides the
same operations. Nodes are named by the store's integer id (``node_id``) wherever a row names one:
ids are dense and small, and an entity's refs pack them.

Every operation runs inside the caller's open write transaction (the replica opens it, holds the
lock and reloads its caches: :meth:`Store.begin`); none commits by itself. "Not held" is an
empty result or None, never an exception. The projection of a kind into the domain's tables is
not part of the store: the kind's projector writes through the connection it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from sync import feed
from sync.fold import Conflict, State
from sync.ops import Op

EntityKey = tuple[str, str]
"""(kind, entity)"""


@dataclass
class EntityRow:
    """What is held of one entity: its folded state, the (stamp, node) of the last op folded,
    and the (node id, seq) of every op of it, packed as unsigned 32-bit pairs."""

    state: State
    last: tuple[int, str]
    refs: bytes


class NodeRow(NamedTuple):
    id: int
    node: str
    public_key: bytes | None
    head: int
    revoked_after: int | None


class SealRow(NamedTuple):
    """A signed run of one node's ops ``first..last`` (see :class:`sync.batch.Seal`)."""

    first: int
    last: int
    root: bytes
    signature: bytes


class Store(Protocol):
    """The operations on sync's tables a replica performs, inside its write transaction."""

    # --- transactions -------------------------------------------------------------------
    def begin(self) -> None:
        """Open the write transaction (the one writer of this log waits for no other)."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None:
        """Roll back if a transaction is open (the database may have rolled back itself)."""
        ...

    def version(self) -> int:
        """A number that moves when another connection committed (the caches are then stale)."""
        ...

    # --- nodes --------------------------------------------------------------------------
    def nodes(self) -> list[NodeRow]: ...

    def add_node(self, node: str) -> int:
        """Register ``node`` (not held yet) with head 0; return its id."""
        ...

    def set_key(self, node: str, public_raw: bytes) -> None: ...

    def set_revoked(self, node_id: int, after: int) -> None:
        """Refuse the node's ops after ``after`` and drop those waiting behind a gap."""
        ...

    def set_head(self, node_id: int, head: int) -> None:
        """Move the node's head (every op up to it is held); refused past its revocation."""
        ...

    # --- the op log ---------------------------------------------------------------------
    def insert_ops(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        """Keep (node id, seq, body) rows; a row already held is an error (the caller checked)."""
        ...

    def op_body(self, node_id: int, seq: int) -> bytes | None: ...

    def op_range(self, node_id: int, first: int, last: int) -> list[tuple[int, bytes]]:
        """(seq, body) of the node's ops held in ``first..last``, in seq order."""
        ...

    def op_bodies(self, node_id: int, seqs: Sequence[int]) -> dict[int, bytes]:
        """Bodies of the node's ops ``seqs`` that are held (any order, any gaps)."""
        ...

    def ref_bodies(self, refs: Iterable[tuple[int, int]]) -> list[bytes]:
        """The bodies of (node id, seq) refs, in their order; every one must be held."""
        ...

    # --- ops waiting behind a gap -------------------------------------------------------
    def pending_range(self, node_id: int, first: int, last: int) -> dict[int, bytes]: ...

    def pending_after(self, node_id: int, seq: int) -> list[tuple[int, bytes]]:
        """(seq, body) waiting after ``seq``, in seq order."""
        ...

    def add_pending(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        """Keep (node id, seq, body) rows; one already waiting is left as it is."""
        ...

    def drop_pending_through(self, node_id: int, seq: int) -> None: ...

    # --- entities and conflicts ---------------------------------------------------------
    def entity_rows(self, kind: str, entities: Sequence[str]) -> dict[str, EntityRow]:
        """What is held of these entities of one kind (an entity not held is absent)."""
        ...

    def state(self, kind: str, entity: str) -> State | None: ...

    def states(self, kind: str | None) -> dict[EntityKey, State]:
        """Every entity's state (of one kind, if given)."""
        ...

    def entity_refs(self, kind: str, entity: str) -> bytes | None: ...

    def all_refs(self) -> list[tuple[str, str, bytes]]:
        """(kind, entity, refs) of every entity held."""
        ...

    def put_entities(self, rows: Mapping[EntityKey, EntityRow]) -> None:
        """Insert or replace these entities' rows."""
        ...

    def add_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        """Record conflicts; one already recorded is left as it is."""
        ...

    def clear_conflicts(self, kind: str, entity: str) -> None: ...

    def conflicts(self, kind: str | None, entity: str | None) -> list[Conflict]:
        """Conflicts recorded (of one kind and entity, if given), by kind, entity, node, seq."""
        ...

    def op_count(self) -> int: ...

    def pending_count(self) -> int: ...

    # --- scopes and the feed (a hub) ----------------------------------------------------
    def add_scope_keys(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Add (kind, entity, scope key) rows, entered at the feed's head now; keys only grow."""
        ...

    def feed_append(self, ids: Mapping[str, int], ops: Sequence[Op]) -> None:
        """Number these ops (just stored) in arrival order, after every op already numbered."""
        ...

    def feed_head(self) -> int: ...

    def feed_slice(self, keys: Iterable[str], cursor: int, exclude: int | None, max_ops: int) -> feed.Slice:
        """The next slice of a scope after ``cursor`` (see :func:`sync.feed.pull`)."""
        ...

    def feed_position(self, node_id: int, seq: int) -> int:
        """The feed position of one op the feed numbered."""
        ...

    # --- seals --------------------------------------------------------------------------
    def last_sealed(self, node_id: int) -> int:
        """The highest seq a seal of the node covers (0: none)."""
        ...

    def seals(self, node_id: int, first: int, last: int) -> list[SealRow]:
        """The node's seals that overlap ``first..last``, by first seq."""
        ...

    def add_seal(self, node_id: int, seal: SealRow, *, known: bool = False) -> None:
        """Keep a seal; ``known``: one already held is left as it is (a received seal)."""
        ...

    def seal_hashes(self, node_id: int, first: int) -> dict[tuple[int, int], bytes]:
        """Subtree roots (leaf range lo..hi -> hash) known of the seal starting at ``first``."""
        ...

    def add_seal_hashes(self, node_id: int, first: int, hashes: Mapping[tuple[int, int], bytes]) -> None: ...

    # --- small values -------------------------------------------------------------------
    def get_meta(self, key: str) -> int | str | None: ...

    def set_meta(self, key: str, value: int | str) -> None: ...
