"""What a dossier's printed papers need: the received documents, the QR code of its code, and
which step of its control sheet prints which form.

Form 01 of Circular 03/2025/TT-VPCP (giấy tiếp nhận hồ sơ và hẹn trả kết quả) lists the
documents received with their form and count and carries the dossier code; the QR code is
drawn on the box (segno, inline SVG), never fetched from elsewhere. Forms 02 to 05 are notices
to the applicant, each printed from the step that made it (:func:`notice_of`): the request to
supplement (02), the refusal (03), the apology with a new appointment date (04), the stop or
the withdrawal (05).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import segno

from schema.dossier import DOCUMENT_FORMS


@dataclass(frozen=True)
class ReceivedDocument:
    name: str
    form: str
    """A value of schema.dossier.DocumentForm."""
    count: int


def documents_of(dossier: dict[str, Any]) -> list[ReceivedDocument]:
    """The documents received with a dossier, whether the row holds them as JSON text or a list."""
    raw = dossier.get("documents") or []
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [
        ReceivedDocument(str(item.get("name", "")), str(item.get("form", "")), int(item.get("count", 1)))
        for item in items
        if isinstance(item, dict)
    ]


def components_of(procedure: dict[str, Any]) -> list[dict[str, Any]]:
    """A procedure's document components (checklist), from JSON text or a list."""
    raw = procedure.get("documents") or []
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [item for item in items if isinstance(item, dict)]


def accepted_forms(component: dict[str, Any]) -> list[str]:
    """The forms (original, copy, electronic) in which the procedure accepts this component."""
    return [form for form in DOCUMENT_FORMS if component.get(form, True)]


def qr_svg(code: str) -> str:
    """The dossier code as an inline SVG QR code (no style attribute: the CSP forbids them)."""
    return str(segno.make(code, micro=False, error="m").svg_inline(scale=3, border=2, svgclass="qr"))


@dataclass(frozen=True)
class Notice:
    form: str
    """"02" … "05": the form's number in the circular's annex."""
    kind: str
    """supplement | refusal | apology | stop | withdrawal"""


_NOTICE_OF_STATUS = {
    5: Notice("02", "supplement"),
    3: Notice("03", "refusal"),
    8: Notice("05", "stop"),
    7: Notice("05", "withdrawal"),
}


def notice_of(step: dict[str, Any]) -> Notice | None:
    """The form a control-sheet step prints, if any (a dossier step as queries.dossier reads it)."""
    if step.get("action") == "extend":
        return Notice("04", "apology")
    if step.get("action") == "transition" and step.get("from_status") != step.get("to_status"):
        return _NOTICE_OF_STATUS.get(int(step.get("to_status") or 0))
    return None
