"""Re-stamping a tail stamped in the future (decision 0008), in the log and its seals."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence

from sync import merkle, restamp
from sync import ops as opcodec
from sync.batch import seal_run
from sync.clock import Stamp
from sync.replica.core import (
    EntityKey,
)
from sync.replica.entities import Entities, _pack_refs, _Row, _unpack_refs
from sync.replica.export import SEAL_MAX_OPS, Export


class Tail(Export, Entities):
    """Correcting this node's own unacknowledged tail stamped in the future (decision 0008)."""

    # --- correcting a tail stamped in the future ------------------------------------------

    def restamp_tail(
        self,
        acknowledged: int,
        now_ms: int,
        *,
        shift_ms: int = 0,
        record: Callable[[sqlite3.Connection, restamp.Restamped], object] | None = None,
        given_up: Mapping[int, bytes] | None = None,
    ) -> restamp.Restamped | None:
        """Re-stamp this node's own ops after seq ``acknowledged`` that are stamped more than
        the clock's allowed drift after ``now_ms`` (a trusted time), and everything after the
        first of them; re-seal them, re-fold their entities and set the clock back.

        Only for ops no other replica holds: ``acknowledged`` must be the highest seq any peer
        has acknowledged (decision 0008). Seals that also cover acknowledged ops are kept, with
        the hashes of their re-stamped leaves as known subtree roots, so the acknowledged ops
        stay provable under them byte for byte. ``record(conn, result)`` runs inside the same
        transaction (the attempt log's entry). Returns None, changing nothing, when no op is
        stamped that far ahead or re-stamping would not move any stamp.

        ``given_up`` ({seq: leaf hash}, the seqs right after ``acknowledged``): re-stamp exactly
        these ops, whose bodies the hub now refuses (:mod:`sync.correction`), each to a new
        stamp whether or not it is ahead; None, changing nothing, if a body is not the one given
        up or the last new stamp would not stay before the next op's."""
        me = self.identity.node
        with self._transaction():
            node_id = self._node_id(me)
            head = self._heads.get(me, 0)
            rows = self.conn.execute(
                "SELECT seq, body FROM sync_op WHERE node = ? AND seq > ? ORDER BY seq",
                (node_id, acknowledged),
            ).fetchall()
            tail = [opcodec.decode(body) for _, body in rows]
            if len(tail) != head - acknowledged:
                return None
            kept: list[tuple[int, bytes]] = []  # ops after the re-stamped ones, left as they are
            if given_up is None:
                start = restamp.first_beyond(tail, now_ms + self.clock.max_drift_ms)
                if start is None:
                    return None
                before = tail[start:]
            else:
                count = len(given_up)
                if not count or len(rows) < count:
                    return None
                if any(given_up.get(seq) != merkle.leaf_hash(body) for seq, body in rows[:count]):
                    return None
                before, kept = tail[:count], rows[count:]
            first = before[0].seq
            after = restamp.plan(
                before,
                now_ms=now_ms,
                shift_ms=shift_ms,
                floor=self._own_stamp(node_id, first - 1),
                entity_floors=self._others_newest({(op.kind, op.entity) for op in before}),
                force=given_up is not None,
            )
            if given_up is None and all(a.stamp >= b.stamp for a, b in zip(after, before, strict=True)):
                return None
            if kept and after[-1].stamp >= opcodec.decode(kept[0][1]).stamp:
                return None
            self._reseal_tail(
                node_id, first, head, [opcodec.encode(op) for op in after] + [body for _, body in kept]
            )
            self._refold_keys({(op.kind, op.entity) for op in after})
            result = restamp.Restamped(before, after)
            self.clock.rewind_to(Stamp.unpack(self._newest_stamp()))
            self._save_clock()
            if record is not None:
                record(self.conn, result)
        return result

    def give_up(self, node: str, items: Sequence[restamp.GiveUp], at_ms: int) -> int:
        """Record that ``node`` gives up these bodies of its ops (see :mod:`sync.restamp`), for
        the seqs after what this replica holds of it; return that head, read in the same
        transaction (the bodies up to it are kept)."""
        with self._transaction():
            head = self._heads.get(node, 0)
            if items:
                restamp.record_given_up(self.conn, self._node_id(node), head, items, at_ms)
        return head

    def given_up(self, node: str, bodies: Sequence[tuple[int, bytes]]) -> list[int]:
        """The seqs of ``bodies`` ((seq, bytes) of ``node``'s ops) that ``node`` gave up."""
        with self.reading() as conn:
            row = conn.execute("SELECT id FROM sync_node WHERE node = ?", (node,)).fetchone()
            return [] if row is None else restamp.given_up(conn, row[0], bodies)

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
