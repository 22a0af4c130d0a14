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
from typing import Any

from schema import reasons
from schema.dossier import APPLICANT_TYPES, CHANNELS
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

# The word lists are schema.dossier's enums. Their payload keys are the stored names
# (applicant_phone, not the draft's phone); these checks stay looser than the draft's bounds on
# purpose: the fold must accept every payload an older version wrote.
DOSSIER_CHECKS: Mapping[str, Check] = {
    "portal_code": optional_text,
    "channel": one_of(*CHANNELS),
    "applicant_type": one_of(*APPLICANT_TYPES),
    "applicant_name": text,
    "applicant_citizen_id": optional_text,
    "applicant_dob": optional_date,
    "applicant_phone": optional_text,
    "applicant_email": optional_text,
    "applicant_address": optional_text,
    "applicant_address_unit": optional_text,
    "due_date": optional_date,
    "fee": count,
    "documents": records,
    "digitised": flag,
}
DOSSIER_FIELDS = frozenset(DOSSIER_CHECKS)
"""The dossier's last-writer-wins registers: what a ``set`` op may change."""

DOSSIER_DEFAULTS: Mapping[str, Any] = {
    "portal_code": None,
    "channel": "direct",
    "applicant_type": "citizen",
    "applicant_citizen_id": None,
    "applicant_dob": None,
    "applicant_phone": None,
    "applicant_email": None,
    "applicant_address": None,
    "applicant_address_unit": None,
    "due_date": None,
    "fee": 0,
    "documents": [],
    "digitised": False,
}

ACTOR_CHECKS: Mapping[str, Check] = {"by": text, "role": one_of(*ROLES), "note": optional_text}

DOSSIER_CREATE_CHECKS: Mapping[str, Check] = {
    **DOSSIER_CHECKS,
    **ACTOR_CHECKS,
    "code": text,
    "procedure": text,
    "receiving_unit": text,
    "handling_unit": text,
    "received_at": count,
    # Present when the box's clock was suspect and the clerk confirmed the date anyway: why it
    # was suspect (English), so the appointment date's basis is on the record.
    "clock_confirmed": text,
}
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
