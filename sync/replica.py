"""A replica: the change log in one SQLite file, and the only way to change state.

Local writes (:meth:`Replica.write`) and remote merges (:meth:`Replica.merge`) both append ops
and fold the entities they touch in the same ``BEGIN IMMEDIATE`` transaction, so state and log
never disagree, even after a power cut. Merge is set union: an op already held is skipped
(after checking it is byte-for-byte the one held), an op after a gap waits in ``sync_pending``
until the gap fills, and a late op re-folds only its own entity.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import sqlite3
import struct
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from sync import feed, merkle, restamp
from sync import ops as opcodec
from sync.batch import PROTOCOL, Batch, Run, Seal, Verified, decode_batch, seal_run, verify_batch
from sync.checkpoint import Checkpointer
from sync.clock import Clock, Stamp
from sync.db import connect, install
from sync.errors import EquivocationError, RevokedNode, UnknownNode
from sync.fold import Conflict, Kind, Registry, Rejected, State, apply
from sync.identity import Identity, check_binding
from sync.identity import verify as verify_signature
from sync.ops import Op, Payload
from sync.vector import Vector

SEAL_MAX_OPS = 1024
DEFAULT_BATCH_BYTES = 256 * 1024
REMEMBERED = 10_000
"""Local values kept by :meth:`Writer.remember` (a ward receives a few hundred dossiers a day)."""
READERS_KEPT = 4
"""Idle read connections a replica keeps for :meth:`Replica.reading` (a web page takes up to three)."""
_CHUNK = 500  # SQLite host parameters per IN (...) query

_state_encoder = msgspec.json.Encoder(order="sorted")
_state_decoder = msgspec.json.Decoder(dict[str, Any])

EntityKey = tuple[str, str]
Admit = Callable[[Sequence[Op], Mapping[EntityKey, "State | None"]], None]
"""A check a merge runs on every verified op of a batch and the state held of each entity they
touch (None: not held), inside its transaction, before it writes: it raises to refuse the batch."""


@dataclass
class MergeReport:
    applied: int = 0
    duplicates: int = 0
    pending: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    entities: set[EntityKey] = field(default_factory=set)
    unknown_kinds: int = 0


@dataclass
class _Row:
    state: State
    last: tuple[int, str]
    refs: bytes
    """(node id, seq) of every op of the entity, packed by :func:`_pack_refs`."""


def _pack_refs(pairs: Sequence[tuple[int, int]]) -> bytes:
    return struct.pack(f"<{2 * len(pairs)}I", *(n for pair in pairs for n in pair))


def _unpack_refs(refs: bytes) -> list[tuple[int, int]]:
    return list(_REF.iter_unpack(refs))


_REF = struct.Struct("<II")
_fold_order = operator.attrgetter("stamp", "node")
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
    def wrapper(self: Replica, *args: Any, **kwargs: Any) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Writer:
    """Appends this node's ops inside one transaction (see :meth:`Replica.write`)."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica
        self.conn = replica.conn
        self._rows: dict[EntityKey, _Row] = {}
        self._ops: list[Op] = []

    def append(self, kind: str, entity: str, action: str, payload: Payload | None = None) -> Op:
        """Append one op and fold it; raise :class:`Rejected` (rolling back the whole write) if
        the kind's reducer refuses it here — a local write is checked before it is kept."""
        replica = self._replica
        k = replica.registry[kind]
        me = replica.identity.node
        seq = replica._heads.get(me, 0) + len(self._ops) + 1
        op = Op(me, seq, replica.clock.now().pack(), kind, entity, action, payload or {})
        key = (kind, entity)
        row = self._rows.get(key) or replica._load_rows([key]).get(key)
        state: State = dict(row.state) if row else {}
        conflicts: list[Conflict] = []
        apply(k, state, [op], conflicts)
        if conflicts:
            raise Rejected(conflicts[0].reason)
        node_id = replica._node_id(me)
        self.conn.execute(
            "INSERT INTO sync_op (node, seq, body) VALUES (?,?,?)", (node_id, seq, opcodec.encode(op))
        )
        refs = (row.refs if row else b"") + _REF.pack(node_id, seq)
        self._rows[key] = _Row(state, op.key, refs)
        self._ops.append(op)
        return op

    def state(self, kind: str, entity: str) -> State | None:
        key = (kind, entity)
        row = self._rows.get(key) or self._replica._load_rows([key]).get(key)
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
        if not self._ops:
            return
        replica = self._replica
        if replica.feed:
            feed.record(self.conn, replica._ids, self._ops)
        replica._store_rows(self._rows)
        me = replica.identity.node
        head = self._ops[-1].seq
        self.conn.execute("UPDATE sync_node SET head = ? WHERE node = ?", (head, me))
        replica._heads[me] = head
        replica._save_clock()


class Replica:
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
        self._writer: Writer | None = None
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        self.conn = connect(self.path)
        install(self.conn)
        if migrate is not None:
            migrate(self.conn)
        self._projecting = False
        self.conn.execute(_REVOCATION_HOLDS)
        self.conn.set_authorizer(self._authorize)
        self._load()
        if identity.node not in self._ids:
            self.trust(identity.node, identity.public_raw)

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

    def first_waiting(self, keys: Iterable[str], cursor: int, *, exclude: str | None = None) -> Op | None:
        """The oldest op of a scope after ``cursor`` not authored by ``exclude`` (a hub's view
        of what a partial replica still has to pull)."""
        with self.reading() as conn:
            body = feed.first_after(conn, keys, cursor, exclude)
        return None if body is None else opcodec.decode(body)

    def delivery_positions(
        self, kind: str, wanted: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        """See :func:`sync.feed.delivery_positions`; on a read connection."""
        with self.reading() as conn:
            return feed.delivery_positions(conn, kind, wanted)

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
        rows = self.conn.execute("SELECT id, node, public_key, head, revoked_after FROM sync_node").fetchall()
        for node_id, node, key, head, revoked_after in rows:
            ids[node] = node_id
            keys[node] = key
            heads[node] = head
            if revoked_after is not None:
                revoked[node] = revoked_after
        self._ids, self._keys, self._revoked, self._heads = ids, keys, revoked, heads
        row = self.conn.execute("SELECT value FROM sync_meta WHERE key = 'hlc'").fetchone()
        if row is not None:
            self.clock.advance_to(Stamp.unpack(int(row[0])))

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def _refresh(self) -> None:
        """Reload the caches if another connection (another process: a CLI beside the server)
        committed since they were read (docs/decisions/0007). Under the lock; inside a write
        transaction, after ``BEGIN IMMEDIATE``: nobody else can commit until it ends, so what is
        read here stays true for the whole transaction. SQLite moves ``data_version`` on another
        connection's commit only, never on this one's, so the usual cost is one pragma."""
        if self._version() != self._data_version:
            self._load()

    def _save_clock(self) -> None:
        self.conn.execute(
            "INSERT INTO sync_meta (key, value) VALUES ('hlc', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self.clock.last.pack(),),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._refresh()
                yield
                self.conn.execute("COMMIT")
            except BaseException as exc:
                # SQLite may already have rolled back itself (a full disk at COMMIT does): a
                # second ROLLBACK would fail and hide the real error, and the heads kept in
                # memory must be reloaded either way, or the next op would leave a gap.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
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

    # --- keys -----------------------------------------------------------------------------

    def _node_id(self, node: str) -> int:
        node_id = self._ids.get(node)
        if node_id is None:
            cur = self.conn.execute("INSERT INTO sync_node (node) VALUES (?)", (node,))
            node_id = int(cur.lastrowid or 0)
            self._ids[node] = node_id
            self._heads[node] = 0
        return node_id

    def _node_name(self, node_id: int) -> str:
        return next(name for name, i in self._ids.items() if i == node_id)

    def trust(self, node: str, public_raw: bytes) -> None:
        """Record the key that speaks for ``node`` (the id must derive from it)."""
        check_binding(node, public_raw)
        with self._transaction():
            self._node_id(node)
            self.conn.execute("UPDATE sync_node SET public_key = ? WHERE node = ?", (public_raw, node))
        self._keys[node] = public_raw

    def revoke(self, node: str, after_seq: int | None = None) -> int:
        """Refuse ``node``'s ops after ``after_seq`` (default: what this replica holds now)."""
        with self._transaction():
            self._node_id(node)
            after = self._heads.get(node, 0) if after_seq is None else after_seq
            self.conn.execute("UPDATE sync_node SET revoked_after = ? WHERE node = ?", (after, node))
            self.conn.execute("DELETE FROM sync_pending WHERE node = ? AND seq > ?", (self._ids[node], after))
        self._revoked[node] = after
        return after

    def public_key(self, node: str) -> bytes:
        key = self._keys.get(node)
        if key is None:
            with self._lock:  # registered by another process since (motcua node add)?
                self._refresh()
            key = self._keys.get(node)
        if key is None:
            raise UnknownNode(f"no trusted key for node {node}")
        return key

    def _verify(self, node: str, signature: bytes, message: bytes) -> None:
        verify_signature(self.public_key(node), signature, message)

    # --- local writes ---------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """One atomic local change: every op appended inside commits with its state, or none.

        Nested ``write()`` blocks of the same thread join the outer transaction; another
        thread waits for the lock (one writer per file)."""
        with self._lock:
            if self._writer is not None:
                yield self._writer
                return
            with self._transaction():
                writer = Writer(self)
                self._writer = writer
                try:
                    yield writer
                    writer._finish()
                finally:
                    self._writer = None

    # --- merge ----------------------------------------------------------------------------

    def verify(self, batch: Batch) -> list[Verified]:
        """Check every run of a batch against the keys and revocations this replica holds."""
        return verify_batch(batch, self._verify, self._revoked.get)

    def merge(
        self, batch: Batch | bytes, *, admit: Admit | None = None, verified: list[Verified] | None = None
    ) -> MergeReport:
        """Apply a batch: all of it or, on any error, nothing. Idempotent.

        The batch is verified once: here, or by the caller, who passes what :meth:`verify`
        returned for this very batch (a bundle checks every batch before it merges any).
        ``admit`` (a hub's write-scope check) sees the states this replica holds of every entity
        the batch touches, read in one pass inside the transaction; the fold then starts from
        those same states, so a merge reads each touched entity once."""
        if isinstance(batch, bytes):
            batch = decode_batch(batch)
        if verified is None:
            verified = self.verify(batch)
        report = MergeReport()
        if not verified:
            return report
        newest = max(v.op.stamp for v in verified)
        if newest > self.clock.last.pack():
            self.clock.observe(Stamp.unpack(newest))
        with self._transaction():
            rows: dict[EntityKey, _Row | None] | None = None
            if admit is not None:
                keys = list({(v.op.kind, v.op.entity): None for v in verified})
                found = self._load_rows(keys)
                rows = {key: found.get(key) for key in keys}  # None: read, and not held
                admit(
                    [v.op for v in verified], {key: row.state if row else None for key, row in rows.items()}
                )
            self._merge(batch, verified, report, rows)
            self._save_clock()
        return report

    def _merge(
        self,
        batch: Batch,
        verified: list[Verified],
        report: MergeReport,
        rows: Mapping[EntityKey, _Row | None] | None = None,
    ) -> None:
        conn = self.conn
        for run in batch.runs:
            s = run.seal
            conn.execute(
                "INSERT OR IGNORE INTO sync_seal (node, first, last, root, signature) VALUES (?,?,?,?,?)",
                (self._node_id(s.node), s.first, s.last, s.root, s.signature),
            )
            if run.chosen is not None:
                # Keep the subtree roots this proof taught us, to prove these ops onward later.
                conn.executemany(
                    "INSERT OR IGNORE INTO sync_seal_hash (node, first, lo, hi, hash) VALUES (?,?,?,?,?)",
                    [
                        (self._ids[s.node], s.first, lo, hi, h)
                        for (lo, hi), h in zip(
                            merkle.proof_ranges(s.size, run.chosen), run.proof, strict=True
                        )
                    ],
                )
        by_node: dict[str, list[Verified]] = defaultdict(list)
        for v in verified:
            by_node[v.op.node].append(v)
        fresh: list[Verified] = []
        for node, received in by_node.items():
            node_id = self._node_id(node)
            before = head = self._heads.get(node, 0)
            first = received[0].op.seq
            if self.partial and node != self.identity.node:
                chain = self._sort_out_partial(node, node_id, received, report)
                head = max([head, *(v.op.seq for v in chain)])
                waiting = []
            elif first == head + 1 and all(v.op.seq == first + i for i, v in enumerate(received)):
                # The common case: exactly the next ops, in order.
                chain, waiting = received, list[Verified]()
                head = received[-1].op.seq
            else:
                chain, waiting, head = self._sort_out(node, node_id, head, received, report)
            head = self._drain_pending(node_id, head, chain)
            report.pending += sum(1 for v in waiting if v.op.seq > head)
            fresh.extend(chain)
            if head != before:
                conn.execute("UPDATE sync_node SET head = ? WHERE id = ?", (head, node_id))
                self._heads[node] = head
        if not fresh:
            return
        ids = self._ids
        conn.executemany(
            "INSERT INTO sync_op (node, seq, body) VALUES (?,?,?)",
            [(ids[v.op.node], v.op.seq, v.body) for v in fresh],
        )
        report.applied = len(fresh)
        if self.feed:
            feed.record(conn, ids, [v.op for v in fresh])
        self._fold([v.op for v in fresh], report, rows)

    def _sort_out_partial(
        self, node: str, node_id: int, received: list[Verified], report: MergeReport
    ) -> list[Verified]:
        """A partial replica takes every op it does not hold yet, whatever the gaps."""
        items: dict[int, Verified] = {}
        for v in received:
            seen = items.get(v.op.seq)
            if seen is not None and seen.body != v.body:
                raise EquivocationError(f"batch holds two different ops {node}#{v.op.seq}")
            items[v.op.seq] = v
        held: dict[int, bytes] = {}
        seqs = sorted(items)
        for i in range(0, len(seqs), _CHUNK):
            chunk = seqs[i : i + _CHUNK]
            held.update(
                self.conn.execute(
                    f"SELECT seq, body FROM sync_op WHERE node = ? AND seq IN ({','.join('?' * len(chunk))})",
                    (node_id, *chunk),
                ).fetchall()
            )
        for seq, body in held.items():
            if items[seq].body != body:
                raise EquivocationError(f"node {node} sent a different op #{seq} than the one already held")
        report.duplicates += len(held)
        return [items[seq] for seq in seqs if seq not in held]

    def _sort_out(
        self, node: str, node_id: int, head: int, received: list[Verified], report: MergeReport
    ) -> tuple[list[Verified], list[Verified], int]:
        """Split one node's received ops into held (checked), next in line, and waiting."""
        items: dict[int, Verified] = {}
        for v in received:
            seen = items.get(v.op.seq)
            if seen is not None and seen.body != v.body:
                raise EquivocationError(f"batch holds two different ops {node}#{v.op.seq}")
            items[v.op.seq] = v
        old = [seq for seq in items if seq <= head]
        if old:
            self._check_duplicates(node, node_id, old, items)
            report.duplicates += len(old)
        ahead = sorted(seq for seq in items if seq > head)
        chain: list[Verified] = []
        for seq in ahead:
            if seq == head + 1:
                chain.append(items[seq])
                head = seq
        waiting = [items[seq] for seq in ahead if seq > head]
        if waiting:
            self._stash(node, node_id, waiting)
        return chain, waiting, head

    def _stash(self, node: str, node_id: int, waiting: list[Verified]) -> None:
        """Keep verified ops that arrived ahead of a gap; a different body for a seq already
        waiting is equivocation, exactly as for a seq already applied."""
        held = self._held("sync_pending", node_id, [v.op.seq for v in waiting])
        for v in waiting:
            if v.op.seq in held and held[v.op.seq] != v.body:
                raise EquivocationError(
                    f"node {node} sent a different op #{v.op.seq} than the one waiting behind a gap"
                )
        self.conn.executemany(
            "INSERT OR IGNORE INTO sync_pending (node, seq, body) VALUES (?,?,?)",
            [(node_id, v.op.seq, v.body) for v in waiting],
        )

    def _held(self, table: str, node_id: int, seqs: Sequence[int]) -> dict[int, bytes]:
        """Bodies of ``table`` (sync_op or sync_pending) for a node's seqs in min..max."""
        rows = self.conn.execute(
            f"SELECT seq, body FROM {table} WHERE node = ? AND seq BETWEEN ? AND ?",
            (node_id, min(seqs), max(seqs)),
        )
        return dict(rows.fetchall())

    def _check_duplicates(
        self, node: str, node_id: int, seqs: list[int], items: Mapping[int, Verified]
    ) -> None:
        held = self._held("sync_op", node_id, seqs)
        for seq in seqs:
            if held.get(seq) != items[seq].body:
                raise EquivocationError(f"node {node} sent a different op #{seq} than the one already held")

    def _drain_pending(self, node_id: int, head: int, run: list[Verified]) -> int:
        rows = self.conn.execute(
            "SELECT seq, body FROM sync_pending WHERE node = ? AND seq > ? ORDER BY seq",
            (node_id, head - len(run)),
        ).fetchall()
        if not rows:
            return head
        have = {v.op.seq: v.body for v in run}
        limit = self._revoked.get(self._node_name(node_id))
        for seq, body in rows:
            if seq in have:
                if have[seq] != body:
                    raise EquivocationError(
                        f"node {self._node_name(node_id)} sent a different op #{seq} "
                        "than the one waiting behind a gap"
                    )
                continue
            if seq != head + 1 or (limit is not None and seq > limit):
                break
            run.append(Verified(opcodec.decode(body), body))
            head = seq
        self.conn.execute("DELETE FROM sync_pending WHERE node = ? AND seq <= ?", (node_id, head))
        return head

    # --- fold -----------------------------------------------------------------------------

    def _fold(
        self, new_ops: Sequence[Op], report: MergeReport, read: Mapping[EntityKey, _Row | None] | None = None
    ) -> None:
        """Fold each touched entity's new ops at once, then store every state (and project)
        once. ``read``: entities already read (None: not held); the others are read here (ops
        released from pending may touch entities the batch itself does not)."""
        grouped: dict[EntityKey, list[Op]] = defaultdict(list)
        for op in new_ops:
            grouped[(op.kind, op.entity)].append(op)
        read = read or {}
        rows = {key: row for key, row in read.items() if row is not None}
        rows.update(self._load_rows([key for key in grouped if key not in read]))
        changed: dict[EntityKey, _Row] = {}
        ids = self._ids
        for key, ops in grouped.items():
            if len(ops) > 1:
                ops.sort(key=_fold_order)
            row = rows.get(key)
            refs = (row.refs if row else b"") + _pack_refs([(ids[op.node], op.seq) for op in ops])
            if key[0] not in self.registry:
                # Kept in the log and referenced; folded by refold_all() after an upgrade.
                report.unknown_kinds += len(ops)
                changed[key] = _Row({}, max(ops[-1].key, row.last) if row else ops[-1].key, refs)
                continue
            kind = self.registry[key[0]]
            conflicts: list[Conflict] = []
            if row is None or ops[0].key > row.last:
                state = row.state if row else {}
                apply(kind, state, ops, conflicts)
                if conflicts:
                    state["_conflicts"] = state.get("_conflicts", []) + [
                        [c.node, c.seq, c.action, c.reason] for c in conflicts
                    ]
                changed[key] = _Row(state, ops[-1].key, refs)
            else:
                changed[key] = self._refold(kind, key[1], refs, conflicts)
            report.conflicts.extend(conflicts)
            report.entities.add(key)
        self._store_rows(changed)

    def _bodies(self, refs: bytes) -> list[bytes]:
        get = self.conn.execute
        return [
            get("SELECT body FROM sync_op WHERE node = ? AND seq = ?", ref).fetchone()[0]
            for ref in _unpack_refs(refs)
        ]

    def _refold(self, kind: Kind, entity: str, refs: bytes, conflicts: list[Conflict]) -> _Row:
        """Fold an entity's whole history again: the price of a late op, paid by its entity only."""
        ops = sorted((opcodec.decode(b) for b in self._bodies(refs)), key=lambda op: op.key)
        state = apply(kind, {}, ops, conflicts)
        if conflicts:
            state["_conflicts"] = [[c.node, c.seq, c.action, c.reason] for c in conflicts]
        self.conn.execute("DELETE FROM sync_conflict WHERE kind = ? AND entity = ?", (kind.name, entity))
        return _Row(state, ops[-1].key, refs)

    def _load_rows(self, keys: Sequence[EntityKey]) -> dict[EntityKey, _Row]:
        out: dict[EntityKey, _Row] = {}
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, entity in keys:
            by_kind[kind].append(entity)
        decode = _state_decoder.decode
        for kind, entities in by_kind.items():
            for i in range(0, len(entities), _CHUNK):
                chunk = entities[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for entity, state, stamp, node, refs in self.conn.execute(
                    "SELECT entity, state, last_stamp, last_node, refs FROM sync_entity "
                    f"WHERE kind = ? AND entity IN ({marks})",
                    (kind, *chunk),
                ):
                    out[(kind, entity)] = _Row(decode(state), (stamp, node), refs)
        return out

    def _store_rows(self, rows: Mapping[EntityKey, _Row]) -> None:
        conn = self.conn
        encode = _state_encoder.encode
        conn.executemany(
            "INSERT INTO sync_entity (kind, entity, state, last_stamp, last_node, refs) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (kind, entity) DO UPDATE SET state = excluded.state, "
            "last_stamp = excluded.last_stamp, last_node = excluded.last_node, refs = excluded.refs",
            [
                (kind, entity, encode(row.state), row.last[0], row.last[1], row.refs)
                for (kind, entity), row in rows.items()
            ],
        )
        feed.update_scopes(conn, self.registry, {key: row.state for key, row in rows.items()})
        conflict_rows = [
            (kind, entity, c[0], c[1], c[2], c[3])
            for (kind, entity), row in rows.items()
            for c in row.state.get("_conflicts", ())
        ]
        if conflict_rows:
            conn.executemany(
                "INSERT OR IGNORE INTO sync_conflict (kind, entity, node, seq, action, reason) "
                "VALUES (?,?,?,?,?,?)",
                conflict_rows,
            )
        by_kind: dict[str, list[tuple[str, State]]] = defaultdict(list)
        for (kind, entity), row in rows.items():
            by_kind[kind].append((entity, row.state))
        for kind_name, items in by_kind.items():
            if kind_name in self.registry:
                project = self.registry[kind_name].project
                if project is not None:
                    self._projecting = True
                    try:
                        project(conn, items)
                    finally:
                        self._projecting = False

    def refold_all(self) -> int:
        """Re-fold every entity from the log (after an upgrade that registers new kinds)."""
        with self._transaction():
            rows = self.conn.execute("SELECT kind, entity, refs FROM sync_entity").fetchall()
            changed = {
                (kind_name, entity): self._refold(self.registry[kind_name], entity, refs, [])
                for kind_name, entity, refs in rows
                if kind_name in self.registry
            }
            self._store_rows(changed)
        return len(changed)

    # --- correcting a tail stamped in the future ------------------------------------------

    def restamp_tail(
        self,
        acknowledged: int,
        now_ms: int,
        *,
        shift_ms: int = 0,
        record: Callable[[sqlite3.Connection, restamp.Restamped], object] | None = None,
    ) -> restamp.Restamped | None:
        """Re-stamp this node's own ops after seq ``acknowledged`` that are stamped more than
        the clock's allowed drift after ``now_ms`` (a trusted time), and everything after the
        first of them; re-seal them, re-fold their entities and set the clock back.

        Only for ops no other replica holds: ``acknowledged`` must be the highest seq any peer
        has acknowledged (decision 0008). Seals that also cover acknowledged ops are kept, with
        the hashes of their re-stamped leaves as known subtree roots, so the acknowledged ops
        stay provable under them byte for byte. ``record(conn, result)`` runs inside the same
        transaction (the attempt log's entry). Returns None, changing nothing, when no op is
        stamped that far ahead or re-stamping would not move any stamp."""
        me = self.identity.node
        with self._transaction():
            node_id = self._node_id(me)
            head = self._heads.get(me, 0)
            rows = self.conn.execute(
                "SELECT seq, body FROM sync_op WHERE node = ? AND seq > ? ORDER BY seq",
                (node_id, acknowledged),
            ).fetchall()
            tail = [opcodec.decode(body) for _, body in rows]
            start = restamp.first_beyond(tail, now_ms + self.clock.max_drift_ms)
            if start is None or len(tail) != head - acknowledged:
                return None
            before = tail[start:]
            first = before[0].seq
            after = restamp.plan(
                before,
                now_ms=now_ms,
                shift_ms=shift_ms,
                floor=self._own_stamp(node_id, first - 1),
                entity_floors=self._others_newest({(op.kind, op.entity) for op in before}),
            )
            if all(a.stamp >= b.stamp for a, b in zip(after, before, strict=True)):
                return None
            self._reseal_tail(node_id, first, head, [opcodec.encode(op) for op in after])
            self._refold_keys({(op.kind, op.entity) for op in after})
            result = restamp.Restamped(before, after)
            self.clock.rewind_to(Stamp.unpack(self._newest_stamp()))
            self._save_clock()
            if record is not None:
                record(self.conn, result)
        return result

    def _own_stamp(self, node_id: int, seq: int) -> int:
        row = self.conn.execute(
            "SELECT body FROM sync_op WHERE node = ? AND seq = ?", (node_id, seq)
        ).fetchone()
        return 0 if row is None else opcodec.decode(row[0]).stamp

    def _others_newest(self, keys: Iterable[EntityKey]) -> dict[EntityKey, int]:
        """The newest stamp of another node's op in each entity (0: none)."""
        me = self._ids[self.identity.node]
        out: dict[EntityKey, int] = {}
        for key, row in self._load_rows(sorted(keys)).items():
            theirs = [pair for pair in _unpack_refs(row.refs) if pair[0] != me]
            out[key] = max((opcodec.decode(b).stamp for b in self._bodies(_pack_refs(theirs))), default=0)
        return out

    def _reseal_tail(self, node_id: int, first: int, head: int, bodies: list[bytes]) -> None:
        """Replace the bodies of seqs ``first..head`` and their seals (see restamp_tail)."""
        conn = self.conn
        for s_first, s_last in conn.execute(
            "SELECT first, last FROM sync_seal WHERE node = ? AND first < ? AND last >= ?",
            (node_id, first, first),
        ).fetchall():
            # Its acknowledged part stays provable: keep the old leaves of the re-stamped part
            # as the subtree roots a proof of the part before them needs.
            old = [
                merkle.leaf_hash(b)
                for (b,) in conn.execute(
                    "SELECT body FROM sync_op WHERE node = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                    (node_id, s_first, s_last),
                )
            ]
            size = s_last - s_first + 1
            chosen = list(range(first - s_first))
            # Hashes known from an earlier correction of this seal shadow its current leaves.
            known = self._seal_knowledge(node_id, s_first)
            conn.executemany(
                "INSERT OR IGNORE INTO sync_seal_hash (node, first, lo, hi, hash) VALUES (?,?,?,?,?)",
                [
                    (node_id, s_first, lo, hi, merkle.subtree_root(lo, hi, dict(enumerate(old)), known))
                    for lo, hi in merkle.proof_ranges(size, chosen)
                ],
            )
        conn.execute("DELETE FROM sync_seal_hash WHERE node = ? AND first >= ?", (node_id, first))
        conn.execute("DELETE FROM sync_seal WHERE node = ? AND first >= ?", (node_id, first))
        conn.executemany(
            "UPDATE sync_op SET body = ? WHERE node = ? AND seq = ?",
            [(body, node_id, seq) for seq, body in enumerate(bodies, first)],
        )
        # Ops before the tail that were never sealed are sealed with it.
        row = conn.execute("SELECT max(last) FROM sync_seal WHERE node = ?", (node_id,)).fetchone()
        begin = min(first, int(row[0] or 0) + 1)
        unsealed = [
            b
            for (b,) in conn.execute(
                "SELECT body FROM sync_op WHERE node = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                (node_id, begin, first - 1),
            )
        ]
        everything = [*unsealed, *bodies]
        me = self.identity.node
        for start in range(begin, head + 1, SEAL_MAX_OPS):
            run = everything[start - begin : start - begin + SEAL_MAX_OPS]
            seal = seal_run(me, start, run, self.identity.sign)
            conn.execute(
                "INSERT INTO sync_seal (node, first, last, root, signature) VALUES (?,?,?,?,?)",
                (node_id, seal.first, seal.last, seal.root, seal.signature),
            )

    def _refold_keys(self, keys: Iterable[EntityKey]) -> None:
        changed: dict[EntityKey, _Row] = {}
        for key, row in self._load_rows(sorted(keys)).items():
            if key[0] in self.registry:
                changed[key] = self._refold(self.registry[key[0]], key[1], row.refs, [])
            else:
                newest = max(opcodec.decode(b).key for b in self._bodies(row.refs))
                changed[key] = _Row(row.state, newest, row.refs)
        self._store_rows(changed)

    def _newest_stamp(self) -> int:
        """The highest stamp of any op held (folded or waiting behind a gap)."""
        row = self.conn.execute("SELECT max(last_stamp) FROM sync_entity").fetchone()
        newest = int(row[0] or 0)
        for (body,) in self.conn.execute("SELECT body FROM sync_pending"):
            newest = max(newest, opcodec.decode(body).stamp)
        return newest

    # --- export ---------------------------------------------------------------------------

    def seal_pending(self, max_ops: int = SEAL_MAX_OPS) -> int:
        """Sign this node's unsealed ops in runs of at most ``max_ops``; return seals made."""
        with self._transaction():
            return self._seal(max_ops)

    def _seal(self, max_ops: int) -> int:
        me = self.identity.node
        made = 0
        node_id = self._node_id(me)
        row = self.conn.execute("SELECT max(last) FROM sync_seal WHERE node = ?", (node_id,)).fetchone()
        sealed = int(row[0] or 0)
        head = self._heads.get(me, 0)
        while sealed < head:
            last = min(head, sealed + max_ops)
            bodies = [
                b
                for (b,) in self.conn.execute(
                    "SELECT body FROM sync_op WHERE node = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                    (node_id, sealed + 1, last),
                )
            ]
            seal = seal_run(me, sealed + 1, bodies, self.identity.sign)
            self.conn.execute(
                "INSERT INTO sync_seal (node, first, last, root, signature) VALUES (?,?,?,?,?)",
                (node_id, seal.first, seal.last, seal.root, seal.signature),
            )
            sealed = last
            made += 1
        return made

    def batches(
        self,
        their: Mapping[str, int],
        *,
        max_bytes: int = DEFAULT_BATCH_BYTES,
        nodes: Iterable[str] | None = None,
        grow_to: int | None = None,
    ) -> Iterator[Batch]:
        """Batches of the ops this replica holds and ``their`` vector lacks (only of ``nodes``
        if given), in seq order per node, each at most about ``max_bytes`` of op bytes.

        ``grow_to``: each batch may be twice the size of the one before, up to ``grow_to``: a
        link that takes the first batches quickly gets fewer, larger ones (a hub commits once
        per batch), while a cut still costs at most one batch."""
        self.seal_pending()
        wanted = None if nodes is None else set(nodes)
        missing = sorted(self.vector().missing_from(their).items())
        largest = max(max_bytes, grow_to or 0)
        runs = (
            run
            for node, (first, last) in missing
            if wanted is None or node in wanted
            for run in self._runs(node, first, last, largest)
        )
        yield from self._pack(runs, max_bytes, largest)

    def _runs(
        self, node: str, first: int, last: int, max_bytes: int, only: Iterable[int] | None = None
    ) -> Iterator[Run]:
        """Runs carrying this node's ops first..last (or only the seqs in ``only``), split at
        seals and at ``max_bytes``; a run that carries part of a seal comes with its proof."""
        # A generator, consumed by the sync thread while clerks write on the same connection:
        # each read takes the lock (never across a yield), as every locked method does, so it
        # never runs inside another thread's open write transaction.
        node_id = self._ids[node]
        keep = None if only is None else frozenset(only)
        with self._lock:
            seals = self.conn.execute(
                "SELECT first, last, root, signature FROM sync_seal "
                "WHERE node = ? AND last >= ? AND first <= ? ORDER BY first",
                (node_id, first, last),
            ).fetchall()
        for index, (s_first, s_last, root, signature) in enumerate(seals):
            seal = Seal(node, s_first, s_last, root, signature)
            lo, hi = max(first, s_first), min(last, s_last)
            # A seal whose tail was re-stamped (restamp_tail) proves only the ops that no seal
            # starting inside it covers: the later ones are proved by the newer seal, and their
            # old leaves here are known hashes. Without re-stamps this list is empty.
            newer = [(f, s) for f, s, _, _ in seals[index + 1 :] if f <= s_last]
            with self._lock:
                rows = self.conn.execute(
                    "SELECT seq, body FROM sync_op WHERE node = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                    (node_id, s_first, s_last),
                ).fetchall()
            wanted = [(seq, body) for seq, body in rows if lo <= seq <= hi and (keep is None or seq in keep)]
            if newer:
                wanted = [(seq, b) for seq, b in wanted if not any(f <= seq <= s for f, s in newer)]
            pieces: list[list[tuple[int, bytes]]] = [[]]
            size = 0
            for item in wanted:
                if pieces[-1] and size + len(item[1]) > max_bytes:
                    pieces.append([])
                    size = 0
                pieces[-1].append(item)
                size += len(item[1])
            leaves: dict[int, bytes] | None = None
            for piece in pieces:
                if not piece:
                    continue
                if len(piece) == seal.size:
                    yield Run(seal, [b for _, b in piece])
                    continue
                with self._lock:
                    if leaves is None:
                        leaves = self._seal_leaves(node_id, seal, rows)
                    known = self._seal_knowledge(node_id, s_first)
                chosen = [seq - s_first for seq, _ in piece]
                proof = merkle.prove(seal.size, chosen, leaves, known)
                yield Run(seal, [b for _, b in piece], chosen, proof)

    def _pack(self, runs: Iterable[Run], max_bytes: int, grow_to: int | None = None) -> Iterator[Batch]:
        batch: list[Run] = []
        size = 0
        for run in runs:
            run_size = sum(len(b) for b in run.ops)
            if batch and size + run_size > max_bytes:
                yield Batch(PROTOCOL, self.identity.node, batch)
                batch, size = [], 0
                if grow_to is not None:
                    max_bytes = min(grow_to, max_bytes * 2)
            batch.append(run)
            size += run_size
        if batch:
            yield Batch(PROTOCOL, self.identity.node, batch)

    # --- serving partial replicas (a hub) -------------------------------------------------

    def pull(
        self, keys: Iterable[str], cursor: int, *, exclude: str | None = None, max_ops: int = 2000
    ) -> tuple[list[Batch], feed.Slice]:
        """Batches of the next slice of a scope after ``cursor`` (see :mod:`sync.feed`).

        One write transaction: this node's own ops are sealed and the feed read in it, so no
        other process (a CLI writing beside the server) commits in between; an op the batches
        do not carry (only an unsealed op could be one) holds the cursor back before it."""
        with self._transaction():
            self._seal(SEAL_MAX_OPS)
            exclude_id = self._ids.get(exclude) if exclude else None
            part = feed.pull(self.conn, keys, cursor, exclude_id, max_ops)
            runs = (
                run
                for node, seqs in sorted(part.ops.items())
                for run in self._runs(node, seqs[0], seqs[-1], DEFAULT_BATCH_BYTES, only=seqs)
            )
            batches = list(self._pack(runs, DEFAULT_BATCH_BYTES))
            return batches, self._held_back(part, cursor, batches)

    def _held_back(self, part: feed.Slice, cursor: int, batches: Sequence[Batch]) -> feed.Slice:
        """``part`` with its cursor before the first op of it that ``batches`` do not carry: a
        pull's cursor never passes an op it did not return."""
        sent = {
            (run.seal.node, run.seal.first + i)
            for batch in batches
            for run in batch.runs
            for i in (range(run.seal.size) if run.chosen is None else run.chosen)
        }
        unsent = [(node, seq) for node, seqs in part.ops.items() for seq in seqs if (node, seq) not in sent]
        if not unsent:
            return part
        first = min(
            int(row[0])
            for node, seq in unsent
            for row in self.conn.execute(
                "SELECT min(pos) FROM sync_feed WHERE node = ? AND seq = ?", (self._ids[node], seq)
            )
        )
        return feed.Slice(part.ops, max(cursor, min(part.cursor, first - 1)), False)

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

    @_locked
    def feed_head(self) -> int:
        return feed.head(self.conn)

    def backlog(
        self, keys: Iterable[str], cursor: int, *, exclude: str | None = None, cap: int = 100_000
    ) -> int:
        """Ops of a scope after ``cursor`` not authored by ``exclude`` (counted up to ``cap``),
        on a read connection so it never waits for a merge."""
        with self.reading() as conn:
            return feed.backlog(conn, keys, cursor, exclude, cap)

    def _seal_leaves(self, node_id: int, seal: Seal, rows: Sequence[tuple[int, bytes]]) -> dict[int, bytes]:
        """Leaf hashes of a seal's ops held here, in the log or still waiting behind a gap."""
        leaves = {seq - seal.first: merkle.leaf_hash(body) for seq, body in rows}
        if len(leaves) < seal.size:
            for seq, body in self.conn.execute(
                "SELECT seq, body FROM sync_pending WHERE node = ? AND seq BETWEEN ? AND ?",
                (node_id, seal.first, seal.last),
            ):
                leaves[seq - seal.first] = merkle.leaf_hash(body)
        return leaves

    def _seal_knowledge(self, node_id: int, first: int) -> dict[tuple[int, int], bytes]:
        rows = self.conn.execute(
            "SELECT lo, hi, hash FROM sync_seal_hash WHERE node = ? AND first = ?", (node_id, first)
        )
        return {(lo, hi): h for lo, hi, h in rows}

    # --- reads ----------------------------------------------------------------------------

    @_locked
    def vector(self) -> Vector:
        self._refresh()
        return Vector(self._heads)

    @_locked
    def state(self, kind: str, entity: str) -> State | None:
        row = self.conn.execute(
            "SELECT state FROM sync_entity WHERE kind = ? AND entity = ?", (kind, entity)
        ).fetchone()
        return None if row is None else _state_decoder.decode(row[0])

    @_locked
    def states(self, kind: str | None = None) -> dict[EntityKey, State]:
        query = "SELECT kind, entity, state FROM sync_entity"
        rows = self.conn.execute(query + " WHERE kind = ?", (kind,)) if kind else self.conn.execute(query)
        return {(k, e): _state_decoder.decode(s) for k, e, s in rows}

    @_locked
    def ops_of(self, kind: str, entity: str) -> list[Op]:
        """Every op of an entity held here, in fold order."""
        row = self.conn.execute(
            "SELECT refs FROM sync_entity WHERE kind = ? AND entity = ?", (kind, entity)
        ).fetchone()
        if row is None:
            return []
        return sorted((opcodec.decode(b) for b in self._bodies(row[0])), key=lambda op: op.key)

    @_locked
    def conflicts(self, kind: str | None = None, entity: str | None = None) -> list[Conflict]:
        query = "SELECT kind, entity, node, seq, action, reason FROM sync_conflict WHERE 1=1"
        params: list[str] = []
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        if entity is not None:
            query += " AND entity = ?"
            params.append(entity)
        return [
            Conflict(*row) for row in self.conn.execute(query + " ORDER BY kind, entity, node, seq", params)
        ]

    @_locked
    def op(self, node: str, seq: int) -> Op | None:
        """One op by its identity, or None if not held."""
        self._refresh()
        node_id = self._ids.get(node)
        if node_id is None:
            return None
        row = self.conn.execute(
            "SELECT body FROM sync_op WHERE node = ? AND seq = ?", (node_id, seq)
        ).fetchone()
        return None if row is None else opcodec.decode(row[0])

    @_locked
    def op_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM sync_op").fetchone()[0])

    @_locked
    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM sync_pending").fetchone()[0])

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

    # --- small persistent values -------------------------------------------------------------

    @_locked
    def meta(self, key: str, default: int | str | None = None) -> int | str | None:
        """A value this node keeps next to its log (a feed cursor, a clock offset …)."""
        row = self.conn.execute("SELECT value FROM sync_meta WHERE key = ?", (f"app:{key}",)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: int | str) -> None:
        with self._transaction():
            self.conn.execute(
                "INSERT INTO sync_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (f"app:{key}", value),
            )

    # --- peers ----------------------------------------------------------------------------

    def remember_peer(self, peer: str, vector: Mapping[str, int]) -> None:
        with self._transaction():
            self.conn.executemany(
                "INSERT INTO sync_peer (peer, node, seq) VALUES (?,?,?) "
                "ON CONFLICT (peer, node) DO UPDATE SET seq = max(seq, excluded.seq)",
                [(peer, node, seq) for node, seq in vector.items()],
            )

    @_locked
    def peer_vector(self, peer: str) -> Vector:
        rows = self.conn.execute("SELECT node, seq FROM sync_peer WHERE peer = ?", (peer,))
        return Vector(dict(rows.fetchall()))
