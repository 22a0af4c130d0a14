"""The domain's entity kinds for :mod:`sync`: their reducers (pure rules) and projectors.

Kinds and their actions::

    unit       upsert                       LWW over UNIT_CHECKS; the first upsert creates
    procedure  upsert                       LWW over PROCEDURE_CHECKS; the first upsert creates
    account    create, set                  the entity id is the username (see below)
    dossier    create, set, transition,     status machine of schema.status, timeline of steps,
               transfer, extend, attach     attachments keyed by sha256

Every reducer checks the whole op first and raises :class:`~sync.fold.Rejected` before it
mutates anything; the fold then keeps the op as a conflict for a clerk to see. Reducers read
only (state, op): the step time is the op's HLC wall time, never a clock.

A dossier's state (JSON-like, stored by sync, projected by :mod:`schema.projection`)::

    _created, _stamp            exists; packed HLC stamp of the last op applied
    code, procedure, receiving_unit, handling_unit, received_at     set at create
    <DOSSIER_FIELDS>            LWW registers (applicant_*, portal_code, due_date, fee, …)
    status                      portal status code 1..10
    processed_at, closed_at     HLC wall ms of the move to 9 / to a terminal status
    steps                       [{node, seq, stamp, at, by, role, action, from, to, note,
                                  handling_unit}] in fold order: the timeline
    attachments                 {sha256: {name, mime, size, by, at}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schema import fields, reasons
from schema.projection import (
    project_accounts,
    project_dossiers,
    project_procedures,
    project_units,
)
from schema.status import TERMINAL, Status, as_status, check_transition
from sync.fold import Kind, Reducer, Rejected, State
from sync.ops import Op

EVERYWHERE = "*"
"""Scope key of reference data: every replica holds it."""

# Once a dossier is closed only the portal code may still change: the national portal can
# assign it late, after the result was returned.
_SETTABLE_WHEN_CLOSED = frozenset({"portal_code"})


def _check(payload: Mapping[str, Any], checks: Mapping[str, fields.Check], *required: str) -> None:
    reason = fields.check_payload(payload, checks, required)
    if reason is not None:
        raise Rejected(reason)


def _own(value: Any) -> Any:
    # The state must not share mutable values with the (immutable) op's payload. Payloads are
    # JSON-like, so a walk over lists and dicts is a full copy, and much cheaper than deepcopy.
    if isinstance(value, list):
        return [_own(item) for item in value]
    if isinstance(value, dict):
        return {key: _own(item) for key, item in value.items()}
    return value


def _exists(state: State, missing: str) -> None:
    if not state.get("_created"):
        raise Rejected(missing)


# --- dossier ------------------------------------------------------------------------------------


def _step(op: Op, action: str, source: int | None, target: int, handling_unit: str) -> dict[str, Any]:
    payload = op.payload
    return {
        "node": op.node,
        "seq": op.seq,
        "stamp": op.stamp,
        "at": op.hlc.wall,
        "by": payload["by"],
        "role": payload["role"],
        "action": action,
        "from": source,
        "to": target,
        "note": payload.get("note"),
        "handling_unit": handling_unit,
    }


def _open_status(state: State) -> Status:
    status = Status(state["status"])
    if status in TERMINAL:
        raise Rejected(reasons.CLOSED.format(status=status.describe()))
    return status


def dossier_create(state: State, op: Op) -> None:
    payload = op.payload
    _check(payload, fields.DOSSIER_CREATE_CHECKS, *fields.DOSSIER_CREATE_REQUIRED)
    if state.get("_created"):
        raise Rejected(reasons.DOSSIER_EXISTS)
    state["_created"] = True
    state.update({name: _own(value) for name, value in fields.DOSSIER_DEFAULTS.items()})
    for name, value in payload.items():
        if name not in fields.ACTOR_CHECKS:
            state[name] = _own(value)
    state["status"] = int(Status.NEW)
    state["processed_at"] = None
    state["closed_at"] = None
    state["steps"] = [_step(op, "create", None, int(Status.NEW), payload["handling_unit"])]
    state["attachments"] = {}
    state["_stamp"] = op.stamp


def dossier_set(state: State, op: Op) -> None:
    _check(op.payload, fields.DOSSIER_CHECKS)
    _exists(state, reasons.DOSSIER_MISSING)
    if state["status"] in TERMINAL and not _SETTABLE_WHEN_CLOSED.issuperset(op.payload):
        raise Rejected(reasons.CLOSED.format(status=Status(state["status"]).describe()))
    for name, value in op.payload.items():
        state[name] = _own(value)
    state["_stamp"] = op.stamp


def dossier_transition(state: State, op: Op) -> None:
    payload = op.payload
    _check(payload, fields.TRANSITION_CHECKS, "to", "by", "role")
    _exists(state, reasons.DOSSIER_MISSING)
    reason = check_transition(state["status"], payload["to"], payload["role"])
    if reason is not None:
        raise Rejected(reason)
    source, target = state["status"], payload["to"]
    state["status"] = target
    if target == Status.PROCESSED:
        state["processed_at"] = op.hlc.wall
    if as_status(target) in TERMINAL:
        state["closed_at"] = op.hlc.wall
    state["steps"].append(_step(op, "transition", source, target, state["handling_unit"]))
    state["_stamp"] = op.stamp


def dossier_transfer(state: State, op: Op) -> None:
    payload = op.payload
    _check(payload, fields.TRANSFER_CHECKS, "handling_unit", "by", "role")
    _exists(state, reasons.DOSSIER_MISSING)
    status = _open_status(state)
    unit = payload["handling_unit"]
    if unit == state["handling_unit"]:
        raise Rejected(reasons.ALREADY_HANDLED.format(unit=unit))
    state["handling_unit"] = unit
    state["steps"].append(_step(op, "transfer", int(status), int(status), unit))
    state["_stamp"] = op.stamp


def dossier_extend(state: State, op: Op) -> None:
    """Form 04: the unit apologises and sets a new appointment date; the timeline shows it."""
    payload = op.payload
    _check(payload, fields.EXTEND_CHECKS, "due_date", "by", "role", "note")
    _exists(state, reasons.DOSSIER_MISSING)
    status = _open_status(state)
    if not payload.get("note"):
        raise Rejected(reasons.EXTENSION_WITHOUT_REASON)
    if state.get("due_date") and payload["due_date"] <= state["due_date"]:
        raise Rejected(reasons.DATE_NOT_LATER.format(date=state["due_date"]))
    state["due_date"] = payload["due_date"]
    state["steps"].append(_step(op, "extend", int(status), int(status), state["handling_unit"]))
    state["_stamp"] = op.stamp


def dossier_attach(state: State, op: Op) -> None:
    payload = op.payload
    _check(payload, fields.ATTACH_CHECKS, *fields.ATTACH_CHECKS)
    _exists(state, reasons.DOSSIER_MISSING)
    # Keyed by content: attaching the same scan twice changes nothing; the first in fold order
    # keeps its name, so every replica shows the same one.
    if payload["sha256"] not in state["attachments"]:
        state["attachments"][payload["sha256"]] = {
            "name": payload["name"],
            "mime": payload["mime"],
            "size": payload["size"],
            "by": payload["by"],
            "at": op.hlc.wall,
        }
        state["_stamp"] = op.stamp


def dossier_scope(state: State) -> Iterable[str]:
    return {unit for unit in (state.get("receiving_unit"), state.get("handling_unit")) if unit}


# --- reference data and accounts ----------------------------------------------------------------


def upsert(checks: Mapping[str, fields.Check], required: Iterable[str], what: str) -> Reducer:
    """Create-or-update LWW registers: the first upsert in fold order must carry ``required``."""
    needed = tuple(required)

    def reducer(state: State, op: Op) -> None:
        _check(op.payload, checks, *(() if state.get("_created") else needed))
        state["_created"] = True
        state.update({name: _own(value) for name, value in op.payload.items()})
        state["_stamp"] = op.stamp

    reducer.__name__ = f"{what}_upsert"
    return reducer


def account_create(state: State, op: Op) -> None:
    payload = op.payload
    _check(payload, fields.ACCOUNT_CHECKS, *fields.ACCOUNT_REQUIRED)
    # The entity id is the username: two nodes creating one username then collide on one
    # entity (the later create is a conflict) instead of making two accounts that log in alike.
    if payload["username"] != op.entity:
        raise Rejected(reasons.ACCOUNT_ID.format(username=repr(payload["username"])))
    if state.get("_created"):
        raise Rejected(reasons.ACCOUNT_EXISTS.format(account=repr(op.entity)))
    state.update({"_created": True, "active": True, **payload, "_stamp": op.stamp})


def account_set(state: State, op: Op) -> None:
    settable = {name: fields.ACCOUNT_CHECKS[name] for name in fields.ACCOUNT_SETTABLE}
    _check(op.payload, settable)
    _exists(state, reasons.ACCOUNT_MISSING)
    state.update(op.payload)
    state["_stamp"] = op.stamp


def _everywhere(state: State) -> Iterable[str]:
    return (EVERYWHERE,)


def _account_scope(state: State) -> Iterable[str]:
    return {state["unit"]} if state.get("unit") else set()


UNIT = Kind(
    name="unit",
    reducers={"upsert": upsert(fields.UNIT_CHECKS, fields.UNIT_REQUIRED, "unit")},
    project=project_units,
    scope_of=_everywhere,
    fields=frozenset(fields.UNIT_CHECKS),
)
PROCEDURE = Kind(
    name="procedure",
    reducers={"upsert": upsert(fields.PROCEDURE_CHECKS, fields.PROCEDURE_REQUIRED, "procedure")},
    project=project_procedures,
    scope_of=_everywhere,
    fields=frozenset(fields.PROCEDURE_CHECKS),
)
ACCOUNT = Kind(
    name="account",
    reducers={"create": account_create, "set": account_set},
    project=project_accounts,
    scope_of=_account_scope,
    fields=fields.ACCOUNT_SETTABLE,
)
DOSSIER = Kind(
    name="dossier",
    reducers={
        "create": dossier_create,
        "set": dossier_set,
        "transition": dossier_transition,
        "transfer": dossier_transfer,
        "extend": dossier_extend,
        "attach": dossier_attach,
    },
    project=project_dossiers,
    scope_of=dossier_scope,
    fields=fields.DOSSIER_FIELDS,
)

KINDS: list[Kind] = [UNIT, PROCEDURE, ACCOUNT, DOSSIER]
