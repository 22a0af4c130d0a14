"""Export: sealing this node's ops, batches for a peer, and serving a hub's feed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from sync import feed, merkle
from sync import ops as opcodec
from sync.batch import PROTOCOL, Batch, Run, Seal, seal_run
from sync.ops import Op
from sync.replica.core import (
    Core,
    _locked,
)
from sync.storage import SealRow

SEAL_MAX_OPS = 1024
DEFAULT_BATCH_BYTES = 256 * 1024


class Export(Core):
    """Seals, runs and batches of what this replica holds; a hub's feed served to partial replicas."""

    # --- export ---------------------------------------------------------------------------

    def seal_pending(self, max_ops: int = SEAL_MAX_OPS) -> int:
        """Sign this node's unsealed ops in runs of at most ``max_ops``; return seals made."""
        with self._transaction():
            return self._seal(max_ops)

    def _seal(self, max_ops: int) -> int:
        me = self.identity.node
        made = 0
        node_id = self._node_id(me)
        sealed = self.store.last_sealed(node_id)
        head = self._heads.get(me, 0)
        while sealed < head:
            last = min(head, sealed + max_ops)
            bodies = [b for _, b in self.store.op_range(node_id, sealed + 1, last)]
            seal = seal_run(me, sealed + 1, bodies, self.identity.sign)
            self.store.add_seal(node_id, SealRow(seal.first, seal.last, seal.root, seal.signature))
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
            seals = self.store.seals(node_id, first, last)
        for index, (s_first, s_last, root, signature) in enumerate(seals):
            seal = Seal(node, s_first, s_last, root, signature)
            lo, hi = max(first, s_first), min(last, s_last)
            # A seal whose tail was re-stamped (restamp_tail) proves only the ops that no seal
            # starting inside it covers: the later ones are proved by the newer seal, and their
            # old leaves here are known hashes. Without re-stamps this list is empty.
            newer = [(f, s) for f, s, _, _ in seals[index + 1 :] if f <= s_last]
            with self._lock:
                rows = self.store.op_range(node_id, s_first, s_last)
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
            part = self.store.feed_slice(keys, cursor, exclude_id, max_ops)
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
        first = min(self.store.feed_position(self._ids[node], seq) for node, seq in unsent)
        return feed.Slice(part.ops, max(cursor, min(part.cursor, first - 1)), False)

    @_locked
    def feed_head(self) -> int:
        return self.store.feed_head()

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
            for seq, body in self.store.pending_range(node_id, seal.first, seal.last).items():
                leaves[seq - seal.first] = merkle.leaf_hash(body)
        return leaves

    def _seal_knowledge(self, node_id: int, first: int) -> dict[tuple[int, int], bytes]:
        return self.store.seal_hashes(node_id, first)
