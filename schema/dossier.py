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

A Draft that decodes is well-formed, not yet valid: whether the procedure exists, the units are
known, the citizen id fits the date of birth, is decided by the one check that reads the
database (``edge.dossiers.check_draft``), which turns a Draft into the op payload that the fold's
checks (:data:`schema.fields.DOSSIER_CREATE_CHECKS`) accept. The fold keeps its own, looser
checks on purpose: it must go on accepting every payload an older version wrote.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

import msgspec

from schema.status import CLOSED, DEADLINE_RUNNING, OPEN

__all__ = [
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
    "Document",
    "DocumentForm",
    "Draft",
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
Fee = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


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
