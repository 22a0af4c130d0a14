"""The log: local writes (:class:`Writer`), merges, and ops waiting behind a gap."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from sync import merkle, restamp
from sync import ops as opcodec
from sync.batch import Batch, Verified, decode_batch
from sync.clock import Stamp
from sync.errors import EquivocationError
from sync.fold import Kind, State
from sync.ops import Op, Payload
from sync.replica.core import (
    EntityKey,
)
from sync.replica.entities import _REF, Entities, MergeReport, _Row
from sync.replica.trust import Trust
from sync.replica.writer import Writer
from sync.storage import SealRow

Admit = Callable[[Sequence[Op], Mapping[EntityKey, "State | None"]], None]
"""A check a merge runs on every verified op of a batch and the state held of each entity they
touch (None: not held), inside its transaction, before it writes: it raises to refuse the batch."""


class _Appends:
    """A write's view of its replica: :class:`~sync.replica.writer.Appends`, and no more."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self.conn = log.conn

    def kind(self, name: str) -> Kind:
        return self._log.registry[name]

    def next_op(self, kind: str, entity: str, action: str, payload: Payload, written: int) -> Op:
        log = self._log
        me = log.identity.node
        seq = log._heads.get(me, 0) + written + 1
        return Op(me, seq, log.clock.now().pack(), kind, entity, action, payload)

    def rows(self, keys: Sequence[EntityKey]) -> dict[EntityKey, _Row]:
        return self._log._load_rows(keys)

    def insert(self, op: Op) -> bytes:
        node_id = self._log._node_id(op.node)
        self._log.store.insert_ops([(node_id, op.seq, opcodec.encode(op))])
        return _REF.pack(node_id, op.seq)

    def finish(self, ops: Sequence[Op], rows: Mapping[EntityKey, _Row]) -> None:
        log = self._log
        if log.feed:
            log.store.feed_append(log._ids, ops)
        log._store_rows(rows)
        me = log.identity.node
        head = ops[-1].seq
        log.store.set_head(log._node_id(me), head)
        log._heads[me] = head
        log._save_clock()


class Log(Trust, Entities):
    """The log: local writes and merges, ops waiting behind a gap."""

    _writer: Writer | None = None

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
                writer = Writer(_Appends(self))
                self._writer = writer
                try:
                    yield writer
                    writer._finish()
                finally:
                    self._writer = None

    # --- merge ----------------------------------------------------------------------------

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
            restamp.refuse_given_up(self.conn, self._ids, [(v.op, v.body) for v in verified])
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
        store = self.store
        for run in batch.runs:
            s = run.seal
            node_id = self._node_id(s.node)
            store.add_seal(node_id, SealRow(s.first, s.last, s.root, s.signature), known=True)
            if run.chosen is not None:
                # Keep the subtree roots this proof taught us, to prove these ops onward later.
                store.add_seal_hashes(
                    node_id,
                    s.first,
                    dict(zip(merkle.proof_ranges(s.size, run.chosen), run.proof, strict=True)),
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
                store.set_head(node_id, head)
                self._heads[node] = head
        if not fresh:
            return
        ids = self._ids
        store.insert_ops([(ids[v.op.node], v.op.seq, v.body) for v in fresh])
        report.applied = len(fresh)
        if self.feed:
            store.feed_append(ids, [v.op for v in fresh])
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
        seqs = sorted(items)
        held = self.store.op_bodies(node_id, seqs)
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
        seqs = [v.op.seq for v in waiting]
        held = self.store.pending_range(node_id, min(seqs), max(seqs))
        for v in waiting:
            if v.op.seq in held and held[v.op.seq] != v.body:
                raise EquivocationError(
                    f"node {node} sent a different op #{v.op.seq} than the one waiting behind a gap"
                )
        self.store.add_pending([(node_id, v.op.seq, v.body) for v in waiting])

    def _check_duplicates(
        self, node: str, node_id: int, seqs: list[int], items: Mapping[int, Verified]
    ) -> None:
        held = dict(self.store.op_range(node_id, min(seqs), max(seqs)))
        for seq in seqs:
            if held.get(seq) != items[seq].body:
                raise EquivocationError(f"node {node} sent a different op #{seq} than the one already held")

    def _drain_pending(self, node_id: int, head: int, run: list[Verified]) -> int:
        rows = self.store.pending_after(node_id, head - len(run))
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
        self.store.drop_pending_through(node_id, head)
        return head
