"""A toy domain for the sync tests: ``doc`` entities with LWW fields and a status machine.

sync/ is domain-free; these tests register this kind instead of dossiers. The module also holds
a plain-Python model of the same rules (no sync.fold) for differential checks, and a few helpers
to build replicas and move batches between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sync.batch import Batch
from sync.clock import Clock
from sync.fold import Kind, lww, state_machine
from sync.identity import Identity
from sync.ops import Op
from sync.replica import MergeReport, Replica

FIELDS = ("title", "owner", "note")

# status -> statuses it may move to (None: created, no status yet)
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({"open"}),
    "open": frozenset({"review", "closed"}),
    "review": frozenset({"open", "closed"}),
    "closed": frozenset(),
}
STATUSES = ("open", "review", "closed")


def check_move(current: Any, target: Any, op: Op) -> str | None:
    if target not in TRANSITIONS.get(current, frozenset()):
        return f"cannot move from {current} to {target}"
    return None


DOC = Kind(
    "doc",
    {
        "create": lww(FIELDS, create=True),
        "set": lww(FIELDS),
        "move": state_machine("status", check_move),
    },
)
KINDS = (DOC,)


def model_fold(ops: Iterable[Op]) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The doc rules written out by hand: (state, [(node, seq) of conflicting ops])."""
    state: dict[str, Any] = {}
    conflicts: list[tuple[str, int]] = []
    for op in sorted(ops, key=lambda o: (o.stamp, o.node)):
        created = state.get("_created", False)
        if op.action in ("create", "set"):
            ok = set(op.payload) <= set(FIELDS) and (created != (op.action == "create"))
            if ok:
                state["_created"] = True
                state.update(op.payload)
        elif op.action == "move":
            target = op.payload.get("to")
            ok = created and target in TRANSITIONS.get(state.get("status"), frozenset())
            if ok:
                state["status"] = target
        else:
            ok = False
        if not ok:
            conflicts.append((op.node, op.seq))
    return state, conflicts


def without_conflicts(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {k: v for k, v in state.items() if k != "_conflicts"}


class FakeWall:
    """A settable wall clock in milliseconds."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def open_replica(path: Path, identity: Identity, wall: FakeWall | None = None, **clock_kw: Any) -> Replica:
    clock = Clock(wall=wall, **clock_kw) if wall is not None else None
    return Replica(path, identity, KINDS, clock=clock)


def trust_all(replicas: Iterable[Replica]) -> None:
    replicas = list(replicas)
    for r in replicas:
        for other in replicas:
            r.trust(other.identity.node, other.identity.public_raw)


def write(replica: Replica, entity: str, action: str, payload: dict[str, Any]) -> Op:
    with replica.write() as w:
        return w.append("doc", entity, action, payload)


def sync(src: Replica, dst: Replica, max_bytes: int = 1 << 20) -> list[MergeReport]:
    """Send everything ``src`` holds and ``dst`` lacks, in order."""
    return [dst.merge(b) for b in list(src.batches(dst.vector(), max_bytes=max_bytes))]


def snapshot(replica: Replica) -> tuple[int, dict[str, int], bytes, bytes, int]:
    """What must not change when a merge is refused."""
    return (
        replica.op_count(),
        replica.vector().to_dict(),
        replica.state_digest(),
        replica.digest(),
        replica.pending_count(),
    )


def batches_of(src: Replica, their: dict[str, int] | None = None, max_bytes: int = 1 << 20) -> list[Batch]:
    return list(src.batches(their or {}, max_bytes=max_bytes))
