"""Re-stamping a node's own unacknowledged tail that its clock stamped in the future.

A box that boots with its clock days ahead while offline stamps its ops days ahead; every
replica refuses them (:class:`~sync.errors.ClockDriftError`) until real time catches up. No
replica holds them, so once a trusted time (the city's signed time) shows the stamps are wrong,
the node may give those ops new stamps: same seq, same payload, a stamp near the corrected
time (decision 0008). This module is the pure part: which ops to re-stamp and their new stamps
(:func:`plan`), and how a receiver tells an op's pre-correction body from an equivocation
(:func:`is_superseded_by`). :meth:`sync.replica.Replica.restamp_tail` applies a plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sync.clock import Stamp, tick
from sync.ops import Op

EntityKey = tuple[str, str]
Change = tuple[int, int, int]
"""(seq, stamp before, stamp after), packed stamps: what the attempt log keeps of a correction."""


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
) -> list[Op]:
    """New stamps for ``tail`` (this node's ops, consecutive seqs, in seq order).

    Each op's wall time becomes its old wall time minus ``shift_ms`` (how far the clock that
    stamped it was ahead, as the trusted time just measured), never after ``now_ms``; and each
    new stamp is strictly after ``floor`` (the stamp of the op before the tail), after the
    previous op's new stamp (stamps still grow with seq) and after every other node's op of the
    same entity held here (``entity_floors``: the op may have been written after seeing them,
    and the fold must keep it after them). Pure; the result has the tail's seqs and payloads."""
    out: list[Op] = []
    last = Stamp.unpack(floor)
    for op in tail:
        bound = max(last.pack(), entity_floors.get((op.kind, op.entity), 0))
        wall = min(op.hlc.wall - shift_ms, now_ms)
        last = tick(Stamp.unpack(bound), wall)
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
