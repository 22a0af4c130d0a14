"""What a dossier's printed papers need: the received documents, the QR code of its code.

Form 01 of Circular 03/2025/TT-VPCP (giấy tiếp nhận hồ sơ và hẹn trả kết quả) lists the
documents received with their form and count and carries the dossier code; the QR code is
drawn on the box (segno, inline SVG), never fetched from elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import segno


@dataclass(frozen=True)
class ReceivedDocument:
    name: str
    form: str
    """original | copy | electronic"""
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
    return [form for form in ("original", "copy", "electronic") if component.get(form, True)]


def qr_svg(code: str) -> str:
    """The dossier code as an inline SVG QR code (no style attribute: the CSP forbids them)."""
    return str(segno.make(code, micro=False, error="m").svg_inline(scale=3, border=2, svgclass="qr"))
