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


class Document(msgspec.Struct, forbid_unknown_fields=True):
    """One document of the procedure's list, as received."""

    name: Long
    form: DocumentForm
    count: Count = 1


class Draft(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A dossier as a clerk receives it, before the checks that read the database.

    Field names are the API's (``citizen_id``, ``phone``…); the op payload stores them as
    ``applicant_citizen_id``, ``applicant_phone``… (:data:`schema.fields.DOSSIER_CHECKS`)."""

    procedure: Short
    applicant_type: ApplicantType = ApplicantType.CITIZEN
    applicant_name: Short
    citizen_id: Short = ""
    dob: date | None = None
    phone: Short = ""
    email: Short = ""
    address: Long = ""
    address_unit: Short = ""
    documents: Annotated[list[Document], msgspec.Meta(max_length=50)] = []
    fee: Fee | None = None
    """None: the procedure's fee."""
    channel: Channel = Channel.DIRECT
    handling_unit: Short = ""
    """Empty: this node's unit; another unit for a non-territorial dossier."""
    confirm_clock: bool = False
    """Receive although the box's clock is suspect: the clerk checked today's date."""


DRAFT_FIELDS: tuple[str, ...] = Draft.__struct_fields__
"""The draft's fields in the receive form's order: the order its errors are listed in."""
