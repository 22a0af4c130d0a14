"""A node's correction of its own ops stamped ahead, in the order that keeps one body per op.

Re-stamping (decision 0008, :mod:`sync.restamp`) gives an op the hub lacks a new body. A
request that carried the old body may still be on the link; if it lands after the node
re-stamped, the hub would hold the old body and the node the new one, for good. So a round
that corrects does it in three steps, each safe to cut:

1. :func:`to_give_up`, after the clock was calibrated to the hub's signed time and before the
   hello: the bodies the node is about to give up, ``(seq, leaf hash)`` of each own op from the
   first stamped beyond the allowed drift (or the first of an earlier round's list whose
   answer was lost) to the head. That first seq is kept (:data:`PENDING`) before the hello
   leaves: the hub may record the list even if its answer never arrives.
2. The hello carries the list; the hub reads what it holds of the node and records the bodies
   of the seqs after it as given up, in one transaction (:meth:`sync.replica.Replica.give_up`),
   and says so in its answer.
3. :func:`apply`, with the answer: the ops of the list after what the hub holds are re-stamped
   (to a new stamp even if they are no longer ahead: their old bodies are refused now), in the
   transaction that also writes the attempt log's entry and forgets :data:`PENDING`. Ops of the
   list the hub already holds landed before the hello: they are kept as they are, on both
   sides, and the ops after them are stamped after them.

A held-up request that lands before the hello is in the hub's answer; one that lands after it
is refused (:class:`sync.errors.SupersededBody`). A hub that does not answer that it recorded
the list (one that predates this) gets no correction from this node.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from sync import merkle
from sync import ops as opcodec
from sync.replica import Replica
from sync.restamp import MAX_GIVE_UP, GiveUp, Restamped, first_beyond

PENDING = "restamp_given_up"
"""Meta key: ``seq:leaf`` of the first body of a list sent in a hello whose answer may have been
lost. It stands while that seq still has that body (a re-stamp ends it by changing the body)."""


def _own_tail(replica: Replica, after: int) -> list[tuple[int, bytes]]:
    with replica.reading() as conn:
        rows = conn.execute(
            "SELECT o.seq, o.body FROM sync_op AS o JOIN sync_node AS n ON n.id = o.node "
            "WHERE n.node = ? AND o.seq > ? ORDER BY o.seq",
            (replica.identity.node, after),
        ).fetchall()
    return [(int(seq), bytes(body)) for seq, body in rows]


def _pending(replica: Replica, tail: Sequence[tuple[int, bytes]]) -> int | None:
    """The first seq of an earlier list the hub may have recorded, if its body is unchanged."""
    value = str(replica.meta(PENDING, "") or "")
    seq_text, _, leaf_hex = value.partition(":")
    if not seq_text:
        return None
    seq = int(seq_text)
    body = dict(tail).get(seq)
    return seq if body is not None and merkle.leaf_hash(body).hex() == leaf_hex else None


def pending_from(replica: Replica) -> int | None:
    """The first seq of a list given up in a hello whose answer may have been lost, while the
    body of that seq is still the one given up (the next round re-stamps from there)."""
    value = str(replica.meta(PENDING, "") or "")
    seq_text = value.partition(":")[0]
    return _pending(replica, _own_tail(replica, int(seq_text) - 1)) if seq_text else None


def to_give_up(replica: Replica, acknowledged: int, now_ms: int) -> list[GiveUp]:
    """The bodies this node gives up in this round's hello (empty: nothing to correct).

    ``acknowledged``: the highest of its own seqs the node knows the hub holds; ``now_ms``: the
    clock just calibrated to the hub's signed time. An earlier list whose answer was lost is
    given up again (the hub may have recorded it: those bodies must change even if they are
    no longer ahead)."""
    tail = _own_tail(replica, acknowledged)
    starts = [seq for seq in [_pending(replica, tail)] if seq is not None]
    beyond = first_beyond([opcodec.decode(body) for _, body in tail], now_ms + replica.clock.max_drift_ms)
    if beyond is not None:
        starts.append(tail[beyond][0])
    if not starts:
        return []
    first = min(starts)
    bodies = dict(tail)
    replica.set_meta(PENDING, f"{first}:{merkle.leaf_hash(bodies[first]).hex()}")
    return [(seq, merkle.leaf_hash(body)) for seq, body in tail if seq >= first][:MAX_GIVE_UP]


def refused(replica: Replica, seq: int) -> None:
    """The hub refused this node's push from ``seq`` as carrying bodies it gave up, and the node
    does not remember giving them up (restored from a backup taken before that hello): the next
    round gives the bodies from ``seq`` up again and re-stamps them."""
    body = dict(_own_tail(replica, seq - 1)).get(seq)
    current = pending_from(replica)
    if body is not None and (current is None or seq < current):
        replica.set_meta(PENDING, f"{seq}:{merkle.leaf_hash(body).hex()}")


def apply(
    replica: Replica,
    given: Sequence[GiveUp],
    have: int,
    recorded: bool,
    now_ms: int,
    *,
    shift_ms: int = 0,
    record: Callable[[sqlite3.Connection, Restamped], object] | None = None,
) -> Restamped | None:
    """Re-stamp the ops of ``given`` after ``have`` once the hub answered that it ``recorded``
    the list (and holds ``have`` of this node): see the module's steps. None: nothing changed
    (nothing to re-stamp, or the hub did not record the list)."""
    if not given or not recorded:
        return None
    todo = {seq: leaf for seq, leaf in given if seq > have}
    if not todo:
        return None
    return replica.restamp_tail(min(todo) - 1, now_ms, shift_ms=shift_ms, record=record, given_up=todo)
