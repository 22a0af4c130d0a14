"""What a box keeps of its sync with the city between rounds (:class:`SyncState`), and the sync
badge every page shows: online or not, last successful sync, changes waiting."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from edge.node import FORWARD_JUMP, Node
from sync.attempts import Outcome, latest
from sync.replica import Replica

CENTRAL = "central"
"""The peer name under which a node remembers what the city holds."""

# Their keys among the small values kept next to the log (Replica.meta): stored, never renamed.
CURSOR = "sync.feed_cursor"
OFFSET = "sync.clock_offset_ms"
DRIFT = "sync.clock_drift_ms"
BLOBS_UP = "sync.blobs_up"
LAST_ERROR = "sync.last_error"
CERTS_SINCE = "sync.certs_since_ms"
COMPARED_AT = "sync.compared_at_ms"
REVOKED_AFTER = "sync.revoked:"
"""Followed by a node id: after which of its ops a revocation the city certified was applied."""


def _int(value: int | str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class SyncState:
    """The box's sync state, typed: read it with :meth:`load`, change one value with its setter
    (each writes its own key at once, so a round cut anywhere keeps what it did)."""

    feed_cursor: int = 0
    """How far this box has followed the city's feed."""
    clock_offset_ms: int = 0
    """The calibration the city's time gave the clock at the last round."""
    clock_drift_ms: int | None = None
    """How far this box's own clock was from the city's at the last hello (positive: behind)."""
    blobs_up: tuple[str, ...] = ()
    """Scans the city holds ops for and must still receive (sorted)."""
    last_error: str | None = None
    """Why the last round failed, told to the city at the next hello."""
    certs_since_ms: int = 0
    """The newest city certificate applied here."""
    compared_at_ms: int = 0
    """When this box last compared its scope's digest with the city's and they matched."""
    forward_jump_ms: int = 0
    """How far the clock jumped ahead at boot while offline (0: none, or the city confirmed it)."""

    @classmethod
    def load(cls, replica: Replica) -> SyncState:
        drift = replica.meta(DRIFT)
        error = replica.meta(LAST_ERROR)
        try:
            clock_drift_ms = None if drift is None else int(drift)
        except ValueError:
            clock_drift_ms = None
        return cls(
            feed_cursor=_int(replica.meta(CURSOR)),
            clock_offset_ms=_int(replica.meta(OFFSET)),
            clock_drift_ms=clock_drift_ms,
            blobs_up=tuple(_list(replica.meta(BLOBS_UP))),
            last_error=str(error) if error else None,
            certs_since_ms=_int(replica.meta(CERTS_SINCE)),
            compared_at_ms=_int(replica.meta(COMPARED_AT)),
            forward_jump_ms=_int(replica.meta(FORWARD_JUMP)),
        )

    @staticmethod
    def set_feed_cursor(replica: Replica, cursor: int) -> None:
        replica.set_meta(CURSOR, cursor)

    @staticmethod
    def set_clock_offset(replica: Replica, offset_ms: int) -> None:
        replica.set_meta(OFFSET, offset_ms)

    @staticmethod
    def clear_forward_jump(replica: Replica) -> None:
        """The city's time stands for the clock now."""
        if replica.meta(FORWARD_JUMP):
            replica.set_meta(FORWARD_JUMP, 0)

    @staticmethod
    def set_clock_drift(replica: Replica, drift_ms: int) -> None:
        replica.set_meta(DRIFT, drift_ms)

    @staticmethod
    def set_blobs_up(replica: Replica, shas: Iterable[str]) -> None:
        replica.set_meta(BLOBS_UP, json.dumps(sorted(set(shas))))

    @staticmethod
    def set_last_error(replica: Replica, error: str | None) -> None:
        replica.set_meta(LAST_ERROR, error or "")

    @staticmethod
    def set_certs_since(replica: Replica, issued_ms: int) -> None:
        replica.set_meta(CERTS_SINCE, issued_ms)

    @staticmethod
    def set_compared_at(replica: Replica, at_ms: int) -> None:
        replica.set_meta(COMPARED_AT, at_ms)

    @staticmethod
    def revoked_after(replica: Replica, node: str) -> int | str | None:
        return replica.meta(REVOKED_AFTER + node)

    @staticmethod
    def set_revoked_after(replica: Replica, node: str, seq: int) -> None:
        replica.set_meta(REVOKED_AFTER + node, seq)


def _list(value: int | str | None) -> list[str]:
    if not isinstance(value, str) or not value:
        return []
    try:
        items = json.loads(value)
    except ValueError:
        return []
    return [str(item) for item in items] if isinstance(items, list) else []


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
