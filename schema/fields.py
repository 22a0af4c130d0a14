"""Field checks for op payloads: what each entity kind's fields may hold.

Reducers check every payload against these before touching state, so a folded state always
fits the projection tables (their NOT NULL and CHECK constraints can then never fail a merge).
Only shape is checked here; domain rules that need context (a CCCD's province, a procedure's
existence) belong to the forms that author the op, not to the fold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Any, get_origin

import msgspec

from schema import reasons
from schema.dossier import Created, Registers, unpack
from schema.status import ROLES
from schema.units import KINDS as UNIT_KINDS

Check = Callable[[Any], str | None]


def text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return reasons.NOT_TEXT
    return None


def any_text(value: Any) -> str | None:
    return None if isinstance(value, str) else reasons.NOT_ANY_TEXT


def optional_text(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else reasons.NOT_TEXT_OR_NULL


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def optional_date(value: Any) -> str | None:
    if value is None or _is_iso_date(value):
        return None
    return reasons.NOT_A_DATE


def count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return reasons.NOT_A_COUNT
    return None


def optional_count(value: Any) -> str | None:
    return None if value is None else count(value)


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else reasons.NOT_A_FLAG


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else reasons.NOT_ONE_OF.format(choices=", ".join(choices))

    return check


def records(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return reasons.NOT_RECORDS
    return None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256(value: Any) -> str | None:
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return None
    return reasons.NOT_A_DIGEST


def check_payload(
    payload: Mapping[str, Any], checks: Mapping[str, Check], required: Iterable[str] = ()
) -> str | None:
    """The first thing wrong with ``payload``, in words, or None."""
    if not checks.keys() >= payload.keys():
        return reasons.UNKNOWN_FIELDS.format(fields=", ".join(sorted(payload.keys() - checks.keys())))
    missing = [name for name in required if name not in payload]
    if missing:
        return reasons.MISSING_FIELDS.format(fields=", ".join(missing))
    for name, value in payload.items():
        reason = checks[name](value)
        if reason is not None:
            return reasons.BAD_FIELD.format(field=name, problem=reason)
    return None


# --- dossier ------------------------------------------------------------------------------------


def check_of(annotation: Any) -> Check:
    """The fold's check of one field, derived from its type in :mod:`schema.dossier`: msgspec
    decides whether the value fits (type, enum, pattern, bounds) and the reason is written from
    the field's shape, in the words older versions wrote (:data:`schema.reasons.PROBLEMS`)."""
    field = unpack(annotation)
    base = field.base
    longest = field.bound("max_length")
    if isinstance(base, type) and issubclass(base, StrEnum):
        problem = reasons.NOT_ONE_OF.format(choices=", ".join(member.value for member in base))
    elif base is bool:
        problem = reasons.NOT_A_FLAG
    elif base is int:
        problem = reasons.NOT_A_COUNT
    elif base is date:
        problem = reasons.NOT_A_DATE
    elif get_origin(base) is list:
        problem = reasons.NOT_RECORDS
    elif base is str:
        must_have_text = field.bound("pattern") is not None
        problem = (
            reasons.NOT_TEXT_OR_NULL
            if field.nullable
            else reasons.NOT_TEXT
            if must_have_text
            else reasons.NOT_ANY_TEXT
        )
    else:
        raise TypeError(f"no fold check for a field of type {annotation!r}")

    def check(value: Any) -> str | None:
        try:
            msgspec.convert(value, annotation, strict=True)
        except msgspec.ValidationError:
            if longest is not None and isinstance(value, str) and len(value) > longest:
                return reasons.TOO_LONG.format(limit=longest)
            return problem
        return None

    return check


def checks_of(struct: type[msgspec.Struct]) -> dict[str, Check]:
    return {field.name: check_of(field.type) for field in msgspec.structs.fields(struct)}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def _defaults(struct: type[msgspec.Struct]) -> dict[str, Any]:
    found = {}
    for field in msgspec.structs.fields(struct):
        if field.default is not msgspec.NODEFAULT:
            found[field.name] = _plain(field.default)
        elif field.default_factory is not msgspec.NODEFAULT:
            found[field.name] = field.default_factory()
    return found


DOSSIER_CHECKS: Mapping[str, Check] = checks_of(Registers)
DOSSIER_FIELDS = frozenset(DOSSIER_CHECKS)
"""The dossier's last-writer-wins registers: what a ``set`` op may change."""

DOSSIER_DEFAULTS: Mapping[str, Any] = _defaults(Registers)
"""What a ``create`` that omits a register leaves in it."""

ACTOR_CHECKS: Mapping[str, Check] = {"by": text, "role": one_of(*ROLES), "note": optional_text}

DOSSIER_CREATE_CHECKS: Mapping[str, Check] = {**checks_of(Created), **ACTOR_CHECKS}
DOSSIER_CREATE_REQUIRED = (
    "code",
    "procedure",
    "receiving_unit",
    "handling_unit",
    "applicant_name",
    "received_at",
    "by",
    "role",
)
""":class:`~schema.dossier.Created`'s required fields and the actor's, in the order a refusal
has always named them (the reason is on the record); tests/schema/test_dossier.py holds that
they are the Struct's."""

TRANSITION_CHECKS: Mapping[str, Check] = {**ACTOR_CHECKS, "to": count}
TRANSFER_CHECKS: Mapping[str, Check] = {**ACTOR_CHECKS, "handling_unit": text}
EXTEND_CHECKS: Mapping[str, Check] = {**ACTOR_CHECKS, "due_date": optional_date}
ATTACH_CHECKS: Mapping[str, Check] = {
    "sha256": sha256,
    "name": text,
    "mime": text,
    "size": count,
    "by": text,
}

# --- reference data -----------------------------------------------------------------------------

UNIT_CHECKS: Mapping[str, Check] = {
    "name": text,
    "division_type": any_text,
    "kind": one_of(*UNIT_KINDS),
    "province_code": text,
    "parent_code": optional_text,
    "active": flag,
}
UNIT_REQUIRED = ("name", "kind", "province_code")

PROCEDURE_CHECKS: Mapping[str, Check] = {
    "name": text,
    "sector": any_text,
    "handling_level": any_text,
    "processing_days": optional_count,
    "documents": records,
    "fee": count,
    "fee_online": count,
    "result": any_text,
    "legal_basis": any_text,
    "active": flag,
}
PROCEDURE_REQUIRED = ("name",)

ACCOUNT_CHECKS: Mapping[str, Check] = {
    "username": text,
    "full_name": text,
    "unit": text,
    "role": one_of(*ROLES),
    "password_hash": text,
    "active": flag,
}
ACCOUNT_REQUIRED = ("username", "full_name", "unit", "role", "password_hash")
ACCOUNT_SETTABLE = frozenset({"full_name", "role", "password_hash", "active"})
