"""Forms 02 to 05 of Circular 03/2025/TT-VPCP: the notices a dossier's steps give the applicant.

Each is printed from the step that made it (:func:`edge.receipt.notice_of`), right after the
action (the dossier page links to it) or later from the control sheet, with the receipt's A4
layout and print CSS. Read-only: nothing here writes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edge import queries, receipt
from edge.errors import NotFound
from edge.web import current_actor, log_read, render, state


def _appointments(request: Request, dossier_id: str, steps: list[dict[str, Any]], upto: int) -> list[str]:
    """The appointment dates a dossier had up to step ``upto``, oldest first: the receipt's,
    then each extension's (form 04 prints the one it replaces and the new one)."""
    ops = {(op.node, op.seq): op for op in state(request).node.replica.ops_of("dossier", dossier_id)}
    dates = []
    for step in steps:
        if step["position"] > upto:
            break
        op = ops.get((step["node"], step["seq"]))
        due = op.payload.get("due_date") if op and step["action"] in ("create", "extend") else None
        if isinstance(due, str):
            dates.append(due)
    return dates


def notice_page(request: Request) -> Response:
    """Forms 02 to 05, printed from the step that made them (right after it, or later from the
    control sheet); the same A4 layout and print CSS as the receipt."""
    actor = current_actor(request)
    app = state(request)
    dossier_id, position = request.path_params["id"], request.path_params["position"]
    with app.node.reader() as conn:
        found = queries.dossier(conn, actor, dossier_id)
        step = next((s for s in found["steps"] if s["position"] == position), None)
        notice = receipt.notice_of(step) if step else None
        if step is None or notice is None:
            raise NotFound("This step of the dossier prints no form.")
        try:
            procedure: dict[str, Any] | None = queries.procedure(conn, found["procedure_code"])
        except NotFound:
            procedure = None
        codes = [found["receiving_unit"], found["handling_unit"], step["handling_unit"]]
        names = queries.unit_names(conn, codes)
        people = queries.account_names(conn, [step["actor"]])
    dates = _appointments(request, dossier_id, found["steps"], position) if notice.kind == "apology" else []
    context = {
        "actor": actor,
        "d": found,
        "procedure": procedure,
        "step": step,
        "notice": notice,
        "unit_names": names,
        "signer": people.get(step["actor"], step["actor"]),
        "new_date": dates[-1] if dates else None,
        "previous_date": dates[-2] if len(dates) > 1 else None,
    }
    log_read(request, actor, "form", found, position=position)
    return render(request, "notice.html", context)


def routes() -> list[BaseRoute]:
    return [Route("/dossiers/{id}/forms/{position:int}", notice_page, methods=["GET"], name="notice")]
