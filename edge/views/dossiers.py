"""Dossier pages: receive, list and search, a dossier, its actions, its scans, the receipt.

Every form is a plain ``<form method=post>`` with a hidden ``csrf`` field; htmx only turns the
search box into a live search and an action into a partial update of the dossier's status,
actions and timeline. The rules live in :mod:`edge.dossiers` (writes) and :mod:`edge.queries`
(reads, scoped to the clerk's unit); this module reads forms and renders.
"""

from __future__ import annotations

import secrets
import sqlite3
import unicodedata
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from datetime import date
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from edge import clockcheck, conflicts, queries, receipt
from edge.auth import Actor
from edge.disk import is_disk_error
from edge.dossiers import (
    ACTIONS,
    Action,
    attach,
    available_actions,
    check_request_key,
    perform,
    receive,
    today,
)
from edge.errors import Conflict, EdgeError, Forbidden, InvalidFields, InvalidInput, NotFound, TooLarge
from edge.i18n import gettext_, parse_date
from edge.syncstate import next_sync_in_s, waiting_since
from edge.unitpicker import unit_choices
from edge.uploads import Scan, check_scan, sniff, whole_multipart
from edge.web import (
    audit_refusal,
    check_csrf,
    current_actor,
    disk_refusal,
    is_htmx,
    log_read,
    render,
    state,
)
from schema.dossier import (
    APPLICANT_TYPES,
    CHANNELS,
    DEADLINE_RUNNING,
    DOCUMENT_FORMS,
    DRAFT_FIELDS,
    ApplicantType,
    Channel,
    Document,
    DocumentForm,
    Draft,
)
from sync.blobs import BlobNotFound, check_digest

MAX_SCANS = 20
"""Files in one upload: a dossier's scans, not an archive."""
SMALL_FORM = 64 * 1024
"""An action form is a few fields; anything bigger is not one of ours."""
VARY = {"Vary": "HX-Request"}


# --- reading forms ---------------------------------------------------------------------------


def _upload_limit(request: Request) -> int:
    """Bytes a whole upload may take: a few maximal scans and the form around them."""
    return state(request).settings.max_upload_bytes * 4 + 256 * 1024


def _too_large(limit: int) -> TooLarge:
    return TooLarge("The upload is larger than {mb} MB in total.", field="scans", mb=max(1, limit >> 20))


async def _bounded(stream: AsyncGenerator[bytes, None], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _too_large(limit)
        yield chunk


def _digits(text: str, at_most: int) -> bool:
    """Whether ``text`` is 1..``at_most`` ASCII digits: str.isdigit() also takes "²", which
    int() refuses, and int() refuses more than 4,300 digits."""
    return 0 < len(text) <= at_most and text.isascii() and text.isdigit()


async def read_form(request: Request, limit: int) -> FormData:
    """The posted form, refused with 413 as soon as it passes ``limit`` bytes (Content-Length
    first, then while streaming: a chunked body cannot fill the disk either)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not _digits(declared, 18) or int(declared) > limit):
        raise _too_large(limit)
    header = request.headers.get("content-type", "")
    content_type = header.split(";")[0].strip().lower()
    multipart = header if content_type == "multipart/form-data" else ""
    parser: MultiPartParser | FormParser
    async with (
        aclosing(request.stream()) as raw,
        aclosing(_bounded(raw, limit)) as bounded,
        aclosing(whole_multipart(bounded, multipart)) as stream,
    ):
        try:
            if content_type == "multipart/form-data":
                parser = MultiPartParser(request.headers, stream, max_files=MAX_SCANS, max_fields=200)
            elif content_type == "application/x-www-form-urlencoded":
                parser = FormParser(request.headers, stream, max_fields=200)
            else:
                return FormData()
            return await parser.parse()
        except MultiPartException as exc:
            raise InvalidInput("The form could not be read: {reason}", reason=exc.message) from exc


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _scans(form: FormData, max_bytes: int) -> list[Scan]:
    scans = []
    for item in form.getlist("scans"):
        if not isinstance(item, UploadFile):
            continue
        if not item.filename and not item.size:
            continue  # the browser sends an empty part when no file was chosen
        data = await item.read(max_bytes + 1)
        scans.append(check_scan(item.filename or "scan", data, max_bytes))
    return scans


def _date(text: str, field: str, *, past: bool = False) -> date | None:
    if not text:
        return None
    try:
        return parse_date(text, past=past)
    except ValueError:
        raise InvalidInput("Write the date as dd/mm/yyyy.", field=field) from None


def _whole_number(text: str, field: str, message: str) -> int | None:
    cleaned = text.replace(".", "").replace(",", "").replace(" ", "")
    if not cleaned:
        return None
    if not _digits(cleaned, 12):
        raise InvalidInput(message, field=field)
    return int(cleaned)


def _receive_input(form: FormData, procedure: dict[str, Any]) -> tuple[Draft, list[InvalidInput]]:
    """The form as a Draft, and what could not even be read (a date, a count, a choice that is
    not one of the form's): those problems go along, so the checks that follow still run and
    every error shows at once."""
    problems: list[InvalidInput] = []

    def read(parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except InvalidInput as exc:
            problems.append(exc)
            return None

    documents = []
    for n, component in enumerate(receipt.components_of(procedure)):
        form_field, count_field = f"doc_{n}_form", f"doc_{n}_count"
        choice = _text(form, form_field) or "none"
        if choice == "none":
            continue
        if choice not in DOCUMENT_FORMS or choice not in receipt.accepted_forms(component):
            problems.append(
                InvalidInput(
                    "The procedure does not accept this form of {name}.",
                    field=form_field,
                    name=component["name"],
                )
            )
            continue
        bad_count = "A document count is between 1 and 99."
        count = read(lambda: _whole_number(_text(form, count_field) or "1", count_field, bad_count))  # noqa: B023
        if count is None or not 1 <= count <= 99:
            if not any(p.field == count_field for p in problems):
                problems.append(InvalidInput(bad_count, field=count_field))
            continue
        documents.append(Document(name=component["name"], form=DocumentForm(choice), count=count))
    applicant_type = _text(form, "applicant_type") or ApplicantType.CITIZEN
    if applicant_type not in APPLICANT_TYPES:
        problems.append(InvalidInput("Choose the applicant type.", field="applicant_type"))
        # Not "citizen": an unknown type asks for no citizen id on top.
        applicant_type = ApplicantType.ORGANISATION
    channel = _text(form, "channel") or Channel.DIRECT
    if channel not in CHANNELS:
        problems.append(InvalidInput("Unknown channel.", field="channel"))
        channel = Channel.DIRECT
    parsed: dict[str, Any] = {
        "procedure": procedure["code"],
        "applicant_type": ApplicantType(applicant_type),
        "citizen_id": _text(form, "citizen_id").replace(" ", ""),
        "dob": read(lambda: _date(_text(form, "dob"), "dob", past=True)),
        "documents": documents,
        "fee": read(lambda: _whole_number(_text(form, "fee"), "fee", "The fee is a whole number of dong.")),
        "channel": Channel(channel),
        "confirm_clock": _text(form, "confirm_clock") in ("1", "on", "yes", "true"),
    }
    # Every other field of the Draft is text, read as typed: a new one needs no line here.
    typed: dict[str, Any] = {name: _text(form, name) for name in DRAFT_FIELDS if name not in parsed}
    return Draft(**parsed, **typed), problems


def _scans_chosen(form: FormData) -> bool:
    """Whether the clerk chose any file (the browser sends an empty part when none was)."""
    return any(
        isinstance(item, UploadFile) and (item.filename or item.size) for item in form.getlist("scans")
    )


# --- the list ----------------------------------------------------------------------------------


def _filters(params: Any) -> tuple[queries.Filters, int]:
    status = params.get("status", "").strip()
    if status and not (_digits(status, 2) and 1 <= int(status) <= 10):
        raise InvalidInput("Unknown status.", field="status")
    due = params.get("due", "").strip()
    if due and due not in ("overdue", "soon"):
        raise InvalidInput("Unknown due filter.", field="due")
    page = params.get("page", "1").strip()
    with_conflicts = params.get("conflicts", "").strip()
    if with_conflicts not in ("", "0", "1"):
        raise InvalidInput("Unknown conflicts filter.", field="conflicts")
    filters = queries.Filters(
        status=int(status) if status else None,
        procedure=params.get("procedure", "").strip() or None,
        received_from=_date(params.get("received_from", "").strip(), "received_from", past=True),
        received_to=_date(params.get("received_to", "").strip(), "received_to", past=True),
        due=due or None,
        q=params.get("q", "").strip()[:200],
        conflicts=with_conflicts == "1",
    )
    return filters, int(page) if _digits(page, 6) else 1


def _query_of(filters: queries.Filters) -> dict[str, str]:
    """The non-empty filters as query parameters (the pager's links keep them)."""
    values = {
        "status": str(filters.status) if filters.status is not None else "",
        "procedure": filters.procedure or "",
        "received_from": filters.received_from.isoformat() if filters.received_from else "",
        "received_to": filters.received_to.isoformat() if filters.received_to else "",
        "due": filters.due or "",
        "q": filters.q,
        "conflicts": "1" if filters.conflicts else "",
    }
    return {k: v for k, v in values.items() if v}


def dossier_list(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    filters, page = _filters(request.query_params)
    partial = is_htmx(request) and request.headers.get("HX-History-Restore-Request") != "true"
    with app.node.reader() as conn:
        result = queries.list_dossiers(conn, actor, filters, today(app.node), page, app.settings.page_size)
        procedures = [] if partial else queries.procedure_names(conn, 51)
        hidden = queries.hidden_code(conn, actor, filters.q) if result.total == 0 else None
        names = queries.procedure_short_names(conn, (d["procedure_code"] for d in result.items))
    if hidden is not None:
        audit_refusal(request, hidden)
    context = {
        "actor": actor,
        "result": result,
        "filters": filters,
        "query": _query_of(filters),
        "procedure_names": names,
    }
    if partial:
        response = render(request, "_dossier_results.html", context)
    else:
        response = render(request, "dossiers.html", {**context, "procedures": procedures})
    response.headers.update(VARY)
    return response


# --- receiving -----------------------------------------------------------------------------------


def _receive_page(
    request: Request,
    actor: Actor,
    code: str,
    q: str = "",
    values: dict[str, str] | None = None,
    error: EdgeError | None = None,
    scans_chosen: bool = False,
    opening: bool = False,
) -> Response:
    app = state(request)
    procedure = None
    status = error.status if error else 200
    problem = _problem(error)
    with app.node.reader() as conn:
        if code:
            try:
                procedure = queries.procedure(conn, code)
            except NotFound as exc:
                problem = _problem(exc)
                status = error.status if error else 404
        choices = [] if procedure else queries.procedures(conn, q)
        units = queries.units(conn, app.node.config.province) if procedure else []
    residences = unit_choices(units, communes_only=True)
    handling_units = unit_choices(units)
    if procedure is None:
        if opening and q and len(choices) == 1 and not error:
            # Enter in the search box: one match is the procedure the clerk meant.
            return RedirectResponse(f"/dossiers/new?procedure={quote(choices[0]['code'])}", status_code=303)
        context = {"actor": actor, "q": q, "choices": choices, "error": problem}
        if is_htmx(request) and not error:
            response = render(request, "_procedure_choices.html", context)
            response.headers.update(VARY)
            return response
        return render(request, "receive.html", context, status=status)
    components = receipt.components_of(procedure)
    if values is None:
        values = _default_values(app.node.config.unit, procedure, components)
    context = {
        "actor": actor,
        "procedure": procedure,
        "components": [(n, c, receipt.accepted_forms(c)) for n, c in enumerate(components)],
        "residences": residences,
        "handling_units": handling_units,
        "values": values,
        "error": problem,
        "home_unit": app.node.config.unit,
        "max_upload_mb": app.settings.max_upload_mb,
        "today": today(app.node),
        "scans_chosen": scans_chosen,
    }
    return render(request, "receive.html", context, status=status)


def _default_values(unit: str, procedure: dict[str, Any], components: list[dict[str, Any]]) -> dict[str, str]:
    values = {
        "applicant_type": "citizen",
        "fee": str(procedure.get("fee") or 0),
        "channel": "direct",
        "handling_unit": unit,
        "address_unit": unit,
        "request_key": secrets.token_urlsafe(18),
    }
    for n, component in enumerate(components):
        forms = receipt.accepted_forms(component)
        received = component.get("required", True) and forms
        values[f"doc_{n}_form"] = forms[0] if received else "none"
        values[f"doc_{n}_count"] = str(component.get("count") or 1)
    return values


def _problem(error: EdgeError | None) -> dict[str, Any] | None:
    """What a page shows of a refusal: the first message, and ``all`` of them (one per wrong
    field, in form order) for the summary at the top and the messages beside the fields."""
    if error is None:
        return None
    each = error.problems if isinstance(error, InvalidFields) else [error]
    problems = [{"message": gettext_(e.message, **e.params), "field": e.field} for e in each]
    return {**problems[0], "code": error.code, "all": problems}


def receive_form(request: Request) -> Response:
    actor = current_actor(request)
    params = request.query_params
    code, q = params.get("procedure", "").strip(), params.get("q", "").strip()
    opening = params.get("open") == "1" and not is_htmx(request)
    return _receive_page(request, actor, code, q, opening=opening)


async def receive_post(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    form = await read_form(request, _upload_limit(request))
    try:
        check_csrf(request, form)
        code = _text(form, "procedure")
        values = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        values.pop("csrf", None)
        try:
            with app.node.reader() as conn:
                procedure = queries.procedure(conn, code)
        except NotFound:
            unknown = InvalidInput("Unknown procedure {code}.", field="procedure", code=code[:40])
            return _receive_page(request, actor, "", q=code[:40], error=unknown)
        try:
            data, problems = _receive_input(form, procedure)
            try:
                scans = await _scans(form, app.settings.max_upload_bytes)
            except InvalidInput as exc:
                audit_refusal(request, exc)  # a fake scan is no less an attack among other errors
                problems.append(exc)
                scans = []
            clock = clockcheck.for_node(app.node, app.settings.clock_skew_warn_s * 1000)
            key = check_request_key(_text(form, "request_key") or None)
            received = await run_in_threadpool(receive, app.node, actor, data, scans, clock, key, problems)
        except (InvalidInput, TooLarge) as exc:
            # A forged CSRF token or a fake scan is no less an attack when the page answers it.
            audit_refusal(request, exc)
            return _receive_page(
                request, actor, code, values=values, error=exc, scans_chosen=_scans_chosen(form)
            )
        except (sqlite3.OperationalError, OSError) as exc:
            if not is_disk_error(exc):
                raise
            # A full or read-only disk: the same form again with what the clerk typed (only the
            # scans must be chosen again), which goes through once space is freed.
            refusal = disk_refusal(exc)
            return _receive_page(
                request, actor, code, values=values, error=refusal, scans_chosen=_scans_chosen(form)
            )
    finally:
        await form.close()
    if received.clock_warning:
        request.session["clock_warning"] = [received.id, received.clock_warning]
    return RedirectResponse(f"/dossiers/{received.id}/receipt", status_code=303)


# --- one dossier ---------------------------------------------------------------------------------


def _conflicts(request: Request, actor: Actor, dossier: dict[str, Any]) -> list[dict[str, Any]]:
    """Ops of this dossier that sync kept aside, with who did what: the clerk must settle them.
    The actor's own among them count as seen from now on (the home page stops showing them)."""
    if not dossier["conflict_count"]:
        return []
    node = state(request).node
    kept = conflicts.of_dossier(node.replica, dossier["id"])
    own = [(c["node"], c["seq"]) for c in kept if c["actor"] == actor.username]
    node.sessions.mark_seen(actor.username, own)
    return kept


ACTION_GROUPS = (
    ("next", ("accept", "start", "record_supplement", "fees_paid", "processed", "return_result")),
    ("ask", ("request_supplement", "request_fees")),
    ("change", ("extend", "transfer")),
    ("end", ("refuse", "withdraw", "stop")),
)
"""The actions panel by purpose: the next step of the dossier first, what ends it last."""


def group_actions(actions: list[Action]) -> list[tuple[str, list[Action]]]:
    offered = {a.name: a for a in actions}
    groups = [(key, [offered[name] for name in names if name in offered]) for key, names in ACTION_GROUPS]
    return [(key, members) for key, members in groups if members]


def _dossier_context(request: Request, actor: Actor, dossier_id: str) -> dict[str, Any]:
    app = state(request)
    with app.node.reader() as conn:
        found = queries.dossier(conn, actor, dossier_id)
        try:
            procedure: dict[str, Any] | None = queries.procedure(conn, found["procedure_code"])
        except NotFound:
            procedure = None  # the catalogue has not reached this box yet
        actions = available_actions(actor, found["status"], found["handling_unit"])
        transfer = any(a.name == "transfer" for a in actions)
        units = queries.units(conn, app.node.config.province) if transfer else []
        # Never the unit that handles it now: a transfer there is refused anyway.
        targets = unit_choices(units, exclude=[found["handling_unit"]])
        codes = {found["receiving_unit"], found["handling_unit"]}
        codes.update(step["handling_unit"] for step in found["steps"])
        if found.get("applicant_address_unit"):
            codes.add(found["applicant_address_unit"])
        unit_names = queries.unit_names(conn, sorted(codes))
        who = [step["actor"] for step in found["steps"]] + [a["added_by"] for a in found["attachments"]]
        people = queries.account_names(conn, who)
        clock_confirmed = queries.clock_confirmed(conn, dossier_id)
    since = waiting_since(app.node, "dossier", dossier_id)
    interval = app.settings.sync_interval_s
    return {
        "clock_confirmed": clock_confirmed,
        "actor": actor,
        "d": found,
        "procedure": procedure,
        "documents": receipt.documents_of(found),
        "actions": actions,
        "action_groups": group_actions(actions),
        "notices": {s["position"]: n for s in found["steps"] if (n := receipt.notice_of(s))},
        "units": targets,
        "unit_names": unit_names,
        "people": people,
        "conflicts": _conflicts(request, actor, found),
        "waiting_since": since,
        "next_sync_in_s": None
        if since is None
        else next_sync_in_s(app.node, since, interval, app.node.clock.wall_ms()),
        "today": today(app.node).isoformat(),
        "deadline_running": found["status"] in DEADLINE_RUNNING,
        "max_upload_mb": app.settings.max_upload_mb,
        "values": {},
        "error": None,
    }


def dossier_page(request: Request) -> Response:
    actor = current_actor(request)
    context = _dossier_context(request, actor, request.path_params["id"])
    log_read(request, actor, "page", context["d"])
    return render(request, "dossier.html", context)


def _action_refused(
    request: Request, actor: Actor, dossier_id: str, exc: EdgeError, values: dict[str, str]
) -> Response:
    audit_refusal(request, exc)
    context = _dossier_context(request, actor, dossier_id)
    context.update(error=_problem(exc), values=values)
    if is_htmx(request):
        # htmx swaps only 2xx answers: the refusal replaces the actions where the clerk acted.
        return render(request, "_dossier_state.html", context)
    return render(request, "dossier.html", context, status=exc.status)


async def dossier_action(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    dossier_id = request.path_params["id"]
    form = await read_form(request, SMALL_FORM)
    values = {name: _text(form, name) for name in ("action", "note", "handling_unit", "due_date")}
    try:
        check_csrf(request, form)
        if values["action"] not in ACTIONS:
            raise InvalidInput("Unknown action {name}.", field="action", name=values["action"][:40])
        action = ACTIONS[values["action"]]
        if action.final and _text(form, "confirmed") != "1":
            return _confirmation(request, actor, dossier_id, action, values)
        new_state = await run_in_threadpool(
            perform,
            app.node,
            actor,
            dossier_id,
            values["action"],
            note=values["note"],
            handling_unit=values["handling_unit"],
            due_date=_date(values["due_date"], "due_date"),
        )
    except (InvalidInput, Forbidden, Conflict) as exc:
        return _action_refused(request, actor, dossier_id, exc, values)
    if not actor.may_see(new_state.get("receiving_unit", ""), new_state.get("handling_unit", "")):
        # Transferred away from the clerk's unit: it is no longer theirs to see.
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": "/dossiers"})
        return RedirectResponse("/dossiers", status_code=303)
    if is_htmx(request):
        context = await run_in_threadpool(_dossier_context, request, actor, dossier_id)
        return render(request, "_dossier_state.html", context)
    return RedirectResponse(f"/dossiers/{dossier_id}", status_code=303)


def _confirmation(
    request: Request, actor: Actor, dossier_id: str, action: Action, values: dict[str, str]
) -> Response:
    """Refusing, a withdrawal, stopping: nothing undoes them, so the clerk sees whose dossier
    it is and confirms (a page of its own, so it needs no JavaScript). The action is checked
    first: a confirmation is never asked for what would then be refused."""
    context = _dossier_context(request, actor, dossier_id)
    if action.name not in {a.name for a in context["actions"]}:
        raise Forbidden("This action is not possible for this dossier now, or not for your role.")
    if action.note_required and not values["note"]:
        raise InvalidInput("This action needs a reason.", field="note")
    context.update(action=action, values=values)
    return render(request, "_action_confirm.html" if is_htmx(request) else "action_confirm.html", context)


async def add_attachments(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    dossier_id = request.path_params["id"]
    with app.node.reader() as conn:
        queries.dossier(conn, actor, dossier_id)  # 404 before reading a byte of someone else's
    form = await read_form(request, _upload_limit(request))
    try:
        check_csrf(request, form)
        scans = await _scans(form, app.settings.max_upload_bytes)
        await run_in_threadpool(attach, app.node, actor, dossier_id, scans)
    finally:
        await form.close()
    return RedirectResponse(f"/dossiers/{dossier_id}#attachments", status_code=303)


def _ascii_name(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in folded if ch.isascii() and (ch.isalnum() or ch in " .-_()"))
    return plain.strip() or "scan"


def attachment(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    dossier_id, digest = request.path_params["id"], request.path_params["sha256"]
    with app.node.reader() as conn:
        found = queries.dossier(conn, actor, dossier_id)
    held = next((a for a in found["attachments"] if a["sha256"] == digest), None)
    if held is None:
        raise NotFound("No such scan in this dossier.")
    try:
        data = app.node.blobs.get(check_digest(digest))
    except BlobNotFound:
        raise NotFound("The scan has not reached this box yet; it comes with the next sync.") from None
    name = held["name"]
    log_read(request, actor, "scan", found, sha256=digest, name=name)
    disposition = f"attachment; filename=\"{_ascii_name(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
    # The type comes from the bytes, not from what an op says: a scan is never served as HTML.
    return Response(
        data,
        media_type=sniff(data) or "application/octet-stream",
        headers={
            "Content-Disposition": disposition,
            "Cache-Control": "private, max-age=3600",
        },
    )


def receipt_page(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    dossier_id = request.path_params["id"]
    with app.node.reader() as conn:
        found = queries.dossier(conn, actor, dossier_id)
        try:
            procedure: dict[str, Any] | None = queries.procedure(conn, found["procedure_code"])
        except NotFound:
            procedure = None
        names = queries.unit_names(conn, [found["receiving_unit"], found["handling_unit"]])
        creator = found["steps"][0]["actor"] if found["steps"] else ""
        people = queries.account_names(conn, [creator])
    remembered = request.session.get("clock_warning")
    warning = remembered[1] if isinstance(remembered, list) and remembered[:1] == [dossier_id] else None
    context = {
        "actor": actor,
        "d": found,
        "procedure": procedure,
        "documents": receipt.documents_of(found),
        "unit_names": names,
        "clerk": people.get(creator, creator),
        "qr": receipt.qr_svg(found["code"]),
        "clock_warning": warning,
    }
    log_read(request, actor, "receipt", found)
    return render(request, "receipt.html", context)


def routes() -> list[BaseRoute]:
    return [
        Route("/dossiers", dossier_list, methods=["GET"], name="dossiers"),
        Route("/dossiers", receive_post, methods=["POST"]),
        Route("/dossiers/new", receive_form, methods=["GET"], name="receive"),
        Route("/dossiers/{id}", dossier_page, methods=["GET"], name="dossier"),
        Route("/dossiers/{id}/actions", dossier_action, methods=["POST"]),
        Route("/dossiers/{id}/attachments", add_attachments, methods=["POST"]),
        Route("/dossiers/{id}/attachments/{sha256}", attachment, methods=["GET"]),
        Route("/dossiers/{id}/receipt", receipt_page, methods=["GET"], name="receipt"),
    ]
