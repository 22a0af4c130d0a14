"""The sync badge every page shows: online or not, last successful sync, changes waiting."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.node import Node
from sync.attempts import Outcome, latest

CENTRAL = "central"
"""The peer name under which a node remembers what the city holds."""


@dataclass(frozen=True)
class Badge:
    connected: bool
    """A central is configured for this node (False: a standalone node)."""
    online: bool | None
    """The last attempt's outcome; None before the first attempt."""
    last_ok_ms: int | None
    last_attempt_ms: int | None
    last_error: str | None
    waiting: int
    """This node's own ops the city does not have yet, as far as this node knows."""


def badge(node: Node) -> Badge:
    me = node.identity.node
    own = node.replica.vector()[me]
    at_city = node.replica.peer_vector(CENTRAL)[me]
    with node.reader() as conn:
        last, last_ok = latest(conn)
    return Badge(
        connected=node.config.central_url is not None,
        online=None if last is None else last.outcome == Outcome.OK,
        last_ok_ms=last_ok,
        last_attempt_ms=last.at_ms if last else None,
        last_error=last.error if last and last.outcome != Outcome.OK else None,
        waiting=max(0, own - at_city),
    )


def waiting_since(node: Node, kind: str, entity: str) -> int | None:
    """When the oldest change of this node to an entity that the city has not acknowledged was
    made (HLC wall ms), or None when all of them reached the city (or there is no city)."""
    if node.config.central_url is None:
        return None
    me = node.identity.node
    at_city = node.replica.peer_vector(CENTRAL)[me]
    waiting = [op.hlc.wall for op in node.replica.ops_of(kind, entity) if op.node == me and op.seq > at_city]
    return min(waiting) if waiting else None


def next_sync_in_s(node: Node, since_ms: int, interval_s: int, now_ms: int) -> int | None:
    """Seconds until the next round, when changes made at ``since_ms`` are only waiting for it:
    the last round worked, these changes came after it, and the next round is not overdue. None
    when they are really stuck (the last round failed, there was none, or rounds stopped): then
    the page keeps the warning."""
    with node.reader() as conn:
        last, _ = latest(conn)
    if last is None or last.outcome != Outcome.OK or since_ms < last.at_ms:
        return None
    due_ms = last.at_ms + interval_s * 1000
    if now_ms > due_ms + interval_s * 1000:
        return None
    return max(0, math.ceil((due_ms - now_ms) / 1000))
