"""The dossier's vocabulary and the draft a clerk receives: one typed contract.

Everything that names what a dossier may hold is defined here once and read everywhere else:

- the closed word lists as :class:`~enum.StrEnum`: :class:`DocumentForm` (how a document was
  handed in), :class:`ApplicantType`, :class:`Channel`; the fold's payload checks
  (:mod:`schema.fields`), the catalogue's import, the printed receipt, the receive form and the
  OpenAPI document take their values from these;
- the named status sets (:data:`CLOSED`, :data:`OPEN`, :data:`DEADLINE_RUNNING`), defined in
  :mod:`schema.status` beside the status machine and re-exported here;
- :class:`Draft`, what a clerk receives, with its wire bounds (lengths, ranges, the enums): the
  JSON API decodes a request body straight into it (``msgspec.json.decode(body, type=Draft)``)
  and the receive form's parser builds one.

- :class:`Registers` and :class:`Created`, the dossier as its ops store it (the payload's names,
  ``applicant_phone`` for the draft's ``phone``), with the record's bounds: the fold's payload
  checks (:mod:`schema.fields`) are derived from these types, field by field, and the checking
  function reads its length limits from them.

A Draft that decodes is well-formed, not yet valid: whether the procedure exists, the units are
known, the citizen id fits the date of birth, is decided by the one check that reads the
database (``edge.dossiers.check_draft``), which turns a Draft into the op payload (a
:class:`Created`). The Draft's text bounds are the wire's, looser than the record's: a name is
bounded after its spaces are collapsed. The record's bounds are those the checking function has
enforced since the first version, so the fold goes on accepting every payload a version wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from schema.status import CLOSED, DEADLINE_RUNNING, OPEN

__all__ = [
    "APPLICANT",
    "APPLICANT_TYPES",
    "CHANNELS",
    "CLOSED",
    "DEADLINE_RUNNING",
    "DOCUMENT_FORMS",
    "DRAFT_FIELDS",
    "ENUMS",
    "OPEN",
    "ApplicantType",
    "Channel",
    "Created",
    "Document",
    "DocumentForm",
    "Draft",
    "Registers",
    "Unpacked",
    "max_length",
    "unpack",
]


class DocumentForm(StrEnum):
    """How a document of the procedure's list was handed in."""

    ORIGINAL = "original"
    """bản chính"""
    COPY = "copy"
    """bản sao"""
    ELECTRONIC = "electronic"
    """bản điện tử, e.g. from VNeID"""


class ApplicantType(StrEnum):
    CITIZEN = "citizen"
    ORGANISATION = "organisation"


class Channel(StrEnum):
    """Where the dossier came in: at the counter or through the online portal."""

    DIRECT = "direct"
    ONLINE = "online"


ENUMS = (DocumentForm, ApplicantType, Channel)

# The values as plain tuples, in declaration order: membership tests on raw input (``"fax" in
# DocumentForm`` raises TypeError before Python 3.12) and the fold's ``one_of`` lists.
DOCUMENT_FORMS: tuple[str, ...] = tuple(form.value for form in DocumentForm)
APPLICANT_TYPES: tuple[str, ...] = tuple(kind.value for kind in ApplicantType)
CHANNELS: tuple[str, ...] = tuple(channel.value for channel in Channel)

# --- the draft ----------------------------------------------------------------------------------
# Bounds about the wire (no megabyte names, no 30-digit integers reaching SQLite). What a valid
# dossier is (a name after trimming, a CCCD's digits, a phone's format) stays the checking
# function's business, so its messages are the same on the pages and in the API.

Short = Annotated[str, msgspec.Meta(max_length=200)]
Long = Annotated[str, msgspec.Meta(max_length=2000)]
Count = Annotated[int, msgspec.Meta(ge=1, le=99)]

# --- the record's field types: each written once, read by the Draft, the fold and the checks ---

Text = Annotated[str, msgspec.Meta(pattern=r"\S")]
"""Text with something in it (not only spaces)."""
Name = Annotated[Text, msgspec.Meta(max_length=120)]
"""A person's or an organisation's name, its spaces collapsed."""
Email = Annotated[str, msgspec.Meta(max_length=120)]
Address = Annotated[str, msgspec.Meta(max_length=300)]
Day = date
"""Stored as ISO text (YYYY-MM-DD); msgspec reads that text as a date."""
Money = Annotated[int, msgspec.Meta(ge=0)]
"""Whole dong."""
Fee = Annotated[Money, msgspec.Meta(le=10**12)]
"""What the API accepts: no 30-digit integers reaching SQLite."""
Millis = Annotated[int, msgspec.Meta(ge=0)]
"""A wall time in milliseconds since the epoch."""
Records = list[dict[str, Any]]
"""The documents as received (name, form, count), each a record."""


def _about(text: str) -> msgspec.Meta:
    """A field's description for the OpenAPI document (edge.openapi reads it from the schema)."""
    return msgspec.Meta(description=text)


class Document(msgspec.Struct, forbid_unknown_fields=True):
    """One document of the procedure's list, as received."""

    name: Annotated[Long, _about("A component of the procedure.")]
    form: DocumentForm
    count: Count = 1


class Draft(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A dossier as a clerk receives it, before the checks that read the database.

    Field names are the API's (``citizen_id``, ``phone``…); the op payload stores them as
    ``applicant_citizen_id``, ``applicant_phone``… (:data:`schema.fields.DOSSIER_CHECKS`)."""

    procedure: Annotated[Short, _about("National code, e.g. 2.000720.")]
    applicant_type: ApplicantType = ApplicantType.CITIZEN
    applicant_name: Short
    citizen_id: Annotated[Short, _about("CCCD, 12 digits; required for a citizen.")] = ""
    dob: date | None = None
    phone: Annotated[
        Short,
        _about(
            "A mobile (10 digits) or a landline with its area code (11 digits), starting with 0 or "
            "+84; spaces, dots and hyphens are ignored."
        ),
    ] = ""
    email: Short = ""
    address: Long = ""
    address_unit: Annotated[Short, _about("Unit code of the address.")] = ""
    documents: Annotated[list[Document], msgspec.Meta(max_length=50)] = []
    fee: Annotated[Fee | None, _about("VND; defaults to the procedure's fee.")] = None
    channel: Channel = Channel.DIRECT
    handling_unit: Annotated[
        Short, _about("Defaults to this node's unit; another unit for a non-territorial dossier.")
    ] = ""
    confirm_clock: Annotated[
        bool, _about("Confirm receiving while the box's clock is suspect (else 422).")
    ] = False


DRAFT_FIELDS: tuple[str, ...] = Draft.__struct_fields__
"""The draft's fields in the receive form's order: the order its errors are listed in."""


# --- the record: a dossier as its ops store it --------------------------------------------------


class Registers(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The dossier's last-writer-wins registers under their stored names: what a ``set`` op may
    change, and (with their defaults) what a ``create`` that omits them leaves. The fold's
    checks are derived from these types (:func:`schema.fields.checks_of`)."""

    portal_code: str | None = None
    channel: Channel = Channel.DIRECT
    applicant_type: ApplicantType = ApplicantType.CITIZEN
    applicant_name: Name
    applicant_citizen_id: str | None = None
    applicant_dob: Day | None = None
    applicant_phone: str | None = None
    applicant_email: Email | None = None
    applicant_address: Address | None = None
    applicant_address_unit: str | None = None
    due_date: Day | None = None
    fee: Money = 0
    documents: Records = []
    digitised: bool = False


APPLICANT: tuple[str, ...] = tuple(
    name for name in Registers.__struct_fields__ if name.startswith("applicant_")
)
"""The applicant's registers, in order: the projection's columns, the API's response fields and
the list queries' columns are these names."""


class Created(Registers, kw_only=True):
    """A ``create`` op's payload: the registers and what only the creation sets. Who created it
    (``by``, ``role``, ``note``) is checked as every action's actor is
    (:data:`schema.fields.ACTOR_CHECKS`)."""

    code: Text
    procedure: Text
    receiving_unit: Text
    handling_unit: Text
    received_at: Millis
    clock_confirmed: Text | msgspec.UnsetType = msgspec.UNSET
    """Present when the box's clock was suspect and the clerk confirmed the date anyway: why
    it was suspect (English), so the appointment date's basis is on the record."""


@dataclass(frozen=True)
class Unpacked:
    """A field's annotation taken apart: its base type, its constraints, whether it may be null."""

    base: Any
    metas: tuple[msgspec.Meta, ...]
    nullable: bool

    def bound(self, key: str) -> Any:
        """The tightest of the constraint ``key`` (``max_length``…), or None."""
        values = [getattr(meta, key) for meta in self.metas if getattr(meta, key) is not None]
        return min(values) if values else None


def unpack(annotation: Any) -> Unpacked:
    metas: list[msgspec.Meta] = []
    nullable = False
    while True:
        if get_origin(annotation) is Annotated:
            base, *extras = get_args(annotation)
            metas.extend(extra for extra in extras if isinstance(extra, msgspec.Meta))
            annotation = base
        elif get_origin(annotation) in (Union, UnionType):
            options = get_args(annotation)
            nullable = nullable or type(None) in options
            rest = [a for a in options if a is not type(None) and a is not msgspec.UnsetType]
            if len(rest) != 1:
                raise TypeError(f"a record field is one type, maybe null: {annotation!r}")
            annotation = rest[0]
        else:
            return Unpacked(annotation, tuple(metas), nullable)


def max_length(struct: type[msgspec.Struct], name: str) -> int:
    """The longest text ``struct``'s field ``name`` may hold: the checking function's limit
    (``edge.dossiers.check_draft``) and the fold's are this one number."""
    for field in msgspec.structs.fields(struct):
        if field.name == name:
            bound = unpack(field.type).bound("max_length")
            if bound is None:
                raise KeyError(f"{struct.__name__}.{name} has no length bound")
            return int(bound)
    raise KeyError(name)
