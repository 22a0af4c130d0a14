"""Re-stamping a node's own unacknowledged tail that its clock stamped in the future.

A box that boots with its clock days ahead while offline stamps its ops days ahead; every
replica refuses them (:class:`~sync.errors.ClockDriftError`) until real time catches up. No
replica holds them, so once a trusted time (the city's signed time) shows the stamps are wrong,
the node may give those ops new stamps: same seq, same payload, a stamp near the corrected
time (decision 0008). This module is the pure part: which ops to re-stamp and their new stamps
(:func:`plan`), and how a receiver tells an op's pre-correction body from an equivocation
(:func:`is_superseded_by`). :meth:`sync.replica.Replica.restamp_tail` applies a plan.

**Giving up before re-stamping.** A request carrying the old bodies may be held up on the link
and land after the node re-stamped them; the receiver would take them (they may be within its
drift by then) and hold one body of the op while the node holds another, for good. So the node
first names the bodies it is about to give up, as ``(seq, leaf hash)`` (:data:`GiveUp`), in the
hello; the hub, in one transaction, reads what it holds of the node and records the bodies of
the seqs after that as given up (:func:`record_given_up`); every later merge refuses them
(:func:`refuse_given_up`). Only then does the node re-stamp, and only the seqs the hub did not
hold: what landed first is kept as it is on both sides (:mod:`sync.correction`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sync import merkle
from sync.clock import Stamp, tick
from sync.errors import SupersededBody
from sync.ops import Op

EntityKey = tuple[str, str]
Change = tuple[int, int, int]
"""(seq, stamp before, stamp after), packed stamps: what the attempt log keeps of a correction."""
GiveUp = tuple[int, bytes]
"""(seq, leaf hash of its body): an own op's body a node gives up before re-stamping the op."""
MAX_GIVE_UP = 5_000
"""Bodies one hello gives up at most (the rest at the next round): the hello stays small."""


@dataclass(frozen=True)
class Restamped:
    """What :meth:`~sync.replica.Replica.restamp_tail` did: the ops before and after."""

    before: list[Op]
    after: list[Op]

    @property
    def first(self) -> int:
        return self.after[0].seq

    @property
    def last(self) -> int:
        return self.after[-1].seq

    @property
    def changes(self) -> list[Change]:
        return [(old.seq, old.stamp, new.stamp) for old, new in zip(self.before, self.after, strict=True)]

    @property
    def entities(self) -> set[EntityKey]:
        return {(op.kind, op.entity) for op in self.after}


def first_beyond(tail: Sequence[Op], limit_ms: int) -> int | None:
    """Index in ``tail`` of the first op stamped after ``limit_ms`` (wall), or None."""
    for index, op in enumerate(tail):
        if op.hlc.wall > limit_ms:
            return index
    return None


def plan(
    tail: Sequence[Op],
    *,
    now_ms: int,
    shift_ms: int,
    floor: int,
    entity_floors: Mapping[EntityKey, int],
    force: bool = False,
) -> list[Op]:
    """New stamps for ``tail`` (this node's ops, consecutive seqs, in seq order).

    Each op's wall time becomes its old wall time minus ``shift_ms`` (how far the clock that
    stamped it was ahead, as the trusted time just measured), never after ``now_ms``; and each
    new stamp is strictly after ``floor`` (the stamp of the op before the tail), after the
    previous op's new stamp (stamps still grow with seq) and after every other node's op of the
    same entity held here (``entity_floors``: the op may have been written after seeing them,
    and the fold must keep it after them). ``force``: every op gets a stamp other than its old
    one (its old body was given up). Pure; the result has the tail's seqs and payloads."""
    out: list[Op] = []
    last = Stamp.unpack(floor)
    for op in tail:
        bound = max(last.pack(), entity_floors.get((op.kind, op.entity), 0))
        wall = min(op.hlc.wall - shift_ms, now_ms)
        last = tick(Stamp.unpack(bound), wall)
        if force and last.pack() == op.stamp:
            last = tick(last, wall)
        out.append(Op(op.node, op.seq, last.pack(), op.kind, op.entity, op.action, op.payload))
    return out


def is_superseded_by(old: Op, held: Op) -> bool:
    """Whether ``old`` is the body ``held`` had before its origin re-stamped it: the same op in
    every field but the stamp, and stamped later (re-stamping only moves stamps back)."""
    return (
        old.ident == held.ident
        and old.stamp > held.stamp
        and (old.kind, old.entity, old.action, old.payload)
        == (held.kind, held.entity, held.action, held.payload)
    )


def record_given_up(
    conn: sqlite3.Connection, node_id: int, head: int, items: Sequence[GiveUp], at_ms: int
) -> int:
    """Record the bodies a node gives up (inside the transaction that read ``head``, what the
    receiver holds of the node): only for seqs after ``head`` (a body held is kept). Bodies of
    them waiting behind a gap are dropped, with the seals that start after ``head`` and reach
    them (the corrected ops come with their own seals). Returns how many were recorded."""
    wanted = [(seq, leaf) for seq, leaf in items if seq > head]
    if not wanted:
        return 0
    conn.executemany(
        "INSERT OR IGNORE INTO sync_given_up (node, seq, leaf, at_ms) VALUES (?,?,?,?)",
        [(node_id, seq, leaf, at_ms) for seq, leaf in wanted],
    )
    low = min(seq for seq, _ in wanted)
    given = set(wanted)
    waiting = conn.execute(
        "SELECT seq, body FROM sync_pending WHERE node = ? AND seq >= ?", (node_id, low)
    ).fetchall()
    conn.executemany(
        "DELETE FROM sync_pending WHERE node = ? AND seq = ?",
        [(node_id, seq) for seq, body in waiting if (seq, merkle.leaf_hash(body)) in given],
    )
    for (first,) in conn.execute(
        "SELECT first FROM sync_seal WHERE node = ? AND first > ? AND last >= ?", (node_id, head, low)
    ).fetchall():
        conn.execute("DELETE FROM sync_seal WHERE node = ? AND first = ?", (node_id, first))
        conn.execute("DELETE FROM sync_seal_hash WHERE node = ? AND first = ?", (node_id, first))
    return len(wanted)


def given_up(conn: sqlite3.Connection, node_id: int, bodies: Sequence[tuple[int, bytes]]) -> list[int]:
    """The seqs of ``bodies`` ((seq, body) of one node) whose body its node gave up."""
    if not bodies:
        return []
    seqs = [seq for seq, _ in bodies]
    rows = conn.execute(
        "SELECT seq, leaf FROM sync_given_up WHERE node = ? AND seq BETWEEN ? AND ?",
        (node_id, min(seqs), max(seqs)),
    ).fetchall()
    if not rows:
        return []
    given = {(seq, leaf) for seq, leaf in rows}
    return sorted(seq for seq, body in bodies if (seq, merkle.leaf_hash(body)) in given)


def refuse_given_up(
    conn: sqlite3.Connection, node_ids: Mapping[str, int], bodies: Sequence[tuple[Op, bytes]]
) -> None:
    """Raise :class:`SupersededBody` if any of ``bodies`` ((op, its bytes)) is one its origin
    gave up: the whole batch is refused, nothing of it applied."""
    by_node: dict[str, list[tuple[int, bytes]]] = {}
    for op, body in bodies:
        by_node.setdefault(op.node, []).append((op.seq, body))
    for node, items in by_node.items():
        node_id = node_ids.get(node)
        stale = [] if node_id is None else given_up(conn, node_id, items)
        if stale:
            raise SupersededBody(
                f"op(s) #{stale[0]}..#{stale[-1]} of node {node} are superseded: bodies the node gave "
                "up before correcting their stamps (a request held up on the link, or an old "
                "bundle); nothing of the batch was applied, the node sends the corrected ops"
            )
