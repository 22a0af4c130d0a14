"""The deterministic fold: an entity's state from its ops, in HLC order.

The domain registers a :class:`Kind` per entity kind: a reducer per op kind (``action``) and,
optionally, a projector that mirrors folded states into the domain's own query tables.

Reducer contract: ``reducer(state, op)`` either mutates ``state`` (a plain dict of JSON-able
values that the fold owns) or raises :class:`Rejected` *before* mutating anything. A rejected op
is kept in the log and reported as a :class:`Conflict`; it is never dropped. Reducers must be
pure functions of (state, op): no clock, no I/O, no randomness, so every replica folds the same
ops to the same state whatever order they arrived in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.errors import UnknownKind
from sync.ops import Op

State = dict[str, Any]
Reducer = Callable[[State, Op], None]
Projector = Callable[[sqlite3.Connection, Sequence[tuple[str, State]]], None]
"""Called inside the write transaction with (entity id, folded state) of every changed entity."""


class Rejected(Exception):
    """Raised by a reducer: this op is not valid at its place in the order."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Conflict:
    kind: str
    entity: str
    node: str
    seq: int
    action: str
    reason: str


@dataclass(frozen=True)
class Kind:
    name: str
    reducers: Mapping[str, Reducer]
    project: Projector | None = None
    scope_of: Callable[[State], Iterable[str]] | None = None
    """Optional: the scope keys (e.g. unit codes) an entity of this kind belongs to."""
    fields: frozenset[str] = field(default_factory=frozenset)


def apply(kind: Kind, state: State, ops: Iterable[Op], conflicts: list[Conflict]) -> State:
    """Apply ops (already in fold order, all after ``state``) to ``state`` in place."""
    reducers = kind.reducers
    for op in ops:
        reducer = reducers.get(op.action)
        if reducer is None:
            conflicts.append(Conflict(kind.name, op.entity, op.node, op.seq, op.action, "unknown action"))
            continue
        try:
            reducer(state, op)
        except Rejected as exc:
            conflicts.append(Conflict(kind.name, op.entity, op.node, op.seq, op.action, exc.reason))
    return state


def fold(kind: Kind, ops: Iterable[Op]) -> tuple[State, list[Conflict]]:
    """Fold an entity's whole history, in any arrival order, into (state, conflicts)."""
    conflicts: list[Conflict] = []
    state = apply(kind, {}, sorted(ops, key=lambda op: op.key), conflicts)
    return state, conflicts


class Registry:
    """The kinds a replica knows, by name."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._kinds = {k.name: k for k in kinds}

    def __getitem__(self, name: str) -> Kind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(f"no entity kind named {name!r} is registered") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Any:
        return iter(self._kinds.values())


# --- reducer builders -------------------------------------------------------------------------


def lww(fields: Iterable[str], *, create: bool = False) -> Reducer:
    """Last-writer-wins registers: every payload item sets its field.

    In HLC order the last write is applied last, so it wins. A field outside ``fields`` rejects
    the whole op. With ``create=True`` the op also marks the entity as existing.
    """
    allowed = frozenset(fields)

    def reducer(state: State, op: Op) -> None:
        if not allowed.issuperset(op.payload):
            unknown = sorted(set(op.payload) - allowed)
            raise Rejected(f"unknown field(s): {', '.join(unknown)}")
        if create:
            if state.get("_created"):
                raise Rejected("entity already exists")
            state["_created"] = True
        elif not state.get("_created"):
            raise Rejected("entity does not exist yet")
        state.update(op.payload)

    return reducer


def state_machine(
    field_name: str,
    check: Callable[[Any, Any, Op], str | None],
    *,
    target_key: str = "to",
    also_set: Iterable[str] = (),
) -> Reducer:
    """A field that moves by transitions: ``check(current, target, op)`` returns a reason to
    refuse, or None to allow. Payload keys in ``also_set`` are stored with the move."""
    extra = frozenset(also_set)

    def reducer(state: State, op: Op) -> None:
        if not state.get("_created"):
            raise Rejected("entity does not exist yet")
        target = op.payload.get(target_key)
        reason = check(state.get(field_name), target, op)
        if reason is not None:
            raise Rejected(reason)
        state[field_name] = target
        for key in extra & op.payload.keys():
            state[key] = op.payload[key]

    return reducer
