"""A node's write scope: which ops an edge may author. Pure functions, no I/O.

An edge of unit U may write:

- ``dossier create`` with ``receiving_unit == U`` (for an id nobody else holds);
- any other dossier op for a dossier U has ever received or handled, as central holds it or as
  created earlier in the same batch;
- ``account set`` of ``password_hash`` only, for an account of unit U (a clerk changing their
  password at the commune);

and nothing else: units, procedures and accounts are reference data the city authors.

"Ever handled" rather than "handles now": the units a dossier has been in only grow (like sync's
scopes), so a check that passed once passes forever. That matters twice. A batch refused is
refused for good (an edge's seqs are dense, nothing after it can be accepted either), so an
edge that transitions a dossier while, unknown to it, another unit transfers it away must not be
locked out: the fold keeps its op as a conflict for a clerk instead. And the check reads
central's state before the merge's transaction without a race, because nothing that happens in
between can make a passing op fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sync.ops import Op
from sync.wire import ScopeViolation

State = Mapping[str, Any]
EntityKey = tuple[str, str]

ACCOUNT_FIELDS_AN_EDGE_MAY_SET = frozenset({"password_hash"})


def dossier_units(state: State | None) -> set[str]:
    """Every unit that has received or handled the dossier (empty: central does not hold it)."""
    if not state or not state.get("_created"):
        return set()
    units = {state.get("receiving_unit"), state.get("handling_unit")}
    units.update(step.get("handling_unit") for step in state.get("steps", ()))
    return {u for u in units if isinstance(u, str) and u}


def entities(ops: Iterable[Op]) -> set[EntityKey]:
    """The entities whose state at central :func:`check_batch` needs."""
    return {(op.kind, op.entity) for op in ops}


def check_batch(ops: Sequence[Op], unit: str, states: Mapping[EntityKey, State | None]) -> None:
    """Raise :class:`ScopeViolation` at the first op outside ``unit``'s write scope.

    ``states``: central's current state of each entity the ops touch (None: not held)."""
    routed: dict[str, set[str]] = {}
    for op in ops:
        if op.kind == "dossier":
            _check_dossier(op, unit, states.get(("dossier", op.entity)), routed)
        elif op.kind == "account":
            _check_account(op, unit, states.get(("account", op.entity)))
        elif op.kind in ("unit", "procedure"):
            raise ScopeViolation(
                f"op {op.node}#{op.seq} changes the {op.kind} {op.entity}: reference data is written "
                "by the city only"
            )
        else:
            raise ScopeViolation(f"op {op.node}#{op.seq} is of kind {op.kind!r}, which no edge may write")


def _check_dossier(op: Op, unit: str, state: State | None, routed: dict[str, set[str]]) -> None:
    units = routed.get(op.entity)
    if units is None:
        units = routed[op.entity] = dossier_units(state)
    payload = op.payload
    if op.action == "create":
        if payload.get("receiving_unit") != unit:
            raise ScopeViolation(
                f"op {op.node}#{op.seq} creates dossier {op.entity} for receiving unit "
                f"{payload.get('receiving_unit')!r}; this node receives for unit {unit} only"
            )
        if units and unit not in units:
            raise ScopeViolation(f"op {op.node}#{op.seq} re-creates dossier {op.entity} of another unit")
        units.update(u for u in (payload.get("receiving_unit"), payload.get("handling_unit")) if u)
        return
    if unit not in units:
        raise ScopeViolation(
            f"op {op.node}#{op.seq} ({op.action}) touches dossier {op.entity}, which unit {unit} has "
            "neither received nor handled"
        )
    if op.action == "transfer" and isinstance(payload.get("handling_unit"), str):
        units.add(payload["handling_unit"])


def _check_account(op: Op, unit: str, state: State | None) -> None:
    if op.action != "set" or not ACCOUNT_FIELDS_AN_EDGE_MAY_SET.issuperset(op.payload):
        raise ScopeViolation(
            f"op {op.node}#{op.seq} ({op.action} account {op.entity}): an edge may only change the "
            "password of an account of its unit; accounts are created and edited at the city"
        )
    if not state or state.get("unit") != unit:
        raise ScopeViolation(
            f"op {op.node}#{op.seq} changes the password of account {op.entity}, which is not an "
            f"account of unit {unit}"
        )
