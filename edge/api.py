"""The JSON API (``/api/v1``), for integrations and tests; documented at ``/openapi.json``.

Every call but the token request carries ``Authorization: Bearer <token>`` (edge.web reads it;
a session cookie alone never authenticates an API call, so no CSRF token is needed here). Bodies
are decoded strictly into msgspec Structs (unknown fields refused) and size-bounded; every refusal
is a typed error, rendered by the one handler as ``{"error": {"code", "message", "field"}}``.
The rules themselves live in the service layer (edge.dossiers, edge.queries), shared with the
pages: this module only translates between HTTP and those calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edge import clockcheck, conflicts, i18n, openapi, queries
from edge.auth import Actor, authenticate
from edge.dossiers import (
    attach,
    available_actions,
    check_request_key,
    perform,
    receive,
    today,
)
from edge.errors import EdgeError, InvalidInput, NotAuthenticated, NotFound, TooLarge
from edge.syncstate import badge
from edge.uploads import Scan, check_scan, whole_multipart
from edge.web import audit_refusal, current_actor, log_read, state
from schema.dossier import Document, Draft, Long, Short

PREFIX = "/api/v1"
MAX_JSON_BYTES = 64 * 1024
MAX_FILES = 10
"""Scans in one attachments request."""
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000
_MULTIPART_OVERHEAD = 64 * 1024

T = TypeVar("T")

# --- request bodies ------------------------------------------------------------------------------
# Bounds here are about the wire (no megabyte names, no 30-digit integers reaching SQLite); what a
# valid dossier is stays the service layer's business, so its messages are the same as the pages'.
# A new dossier's body is schema.dossier's Draft itself.


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class ActionIn(msgspec.Struct, forbid_unknown_fields=True):
    action: Short
    note: Long = ""
    handling_unit: Short = ""
    due_date: date | None = None


BODIES: dict[str, type[msgspec.Struct]] = {
    "TokenRequest": TokenRequest,
    "DossierCreate": Draft,
    "Document": Document,
    "ActionRequest": ActionIn,
}
"""The Structs behind the request schemas of the OpenAPI document (tests keep them in step)."""

# --- plumbing ------------------------------------------------------------------------------------


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(data), status, headers, media_type="application/json")


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (declared or not)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge("The request is larger than {kb} KB.", kb=limit >> 10)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge("The request is larger than {kb} KB.", kb=limit >> 10)
        yield chunk


_AT = re.compile(r" - at `\$\.?([A-Za-z_][A-Za-z0-9_]*)?[^`]*`$")
_NAMED = re.compile(r"field `([^`]+)`")


def _field_of(message: str) -> str | None:
    """The top-level field a msgspec error is about: ``$.documents[0].name`` -> ``documents``."""
    at = _AT.search(message)
    if at is not None and at.group(1):
        return at.group(1)
    named = _NAMED.search(message)
    return named.group(1) if named else None


async def _body(request: Request, kind: type[T]) -> T:
    chunks = [chunk async for chunk in _limited(request, MAX_JSON_BYTES)]
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidInput("The request needs a JSON body.")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            "The request body is not valid: {reason}.", field=_field_of(str(exc)), reason=str(exc)
        ) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
        raise EdgeError("The request body is not valid JSON: {reason}.", reason=str(exc)) from exc


def _query(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, each at most once, none unknown; empty values count as absent."""
    params = request.query_params
    out = {}
    for name in params:
        if name not in allowed:
            raise InvalidInput("Unknown query parameter {name}.", field=name, name=name)
        values = params.getlist(name)
        if len(values) > 1:
            raise InvalidInput("Give {name} only once.", field=name, name=name)
        if values[0].strip():
            out[name] = values[0].strip()
    return out


def _bounded_int(params: dict[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    value = params.get(name)
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise InvalidInput(
            "{name} must be a whole number from {low} to {high}.", field=name, name=name, low=low, high=high
        )
    return int(value)


def _text(params: dict[str, str], name: str, max_length: int) -> str:
    value = params.get(name, "")
    if len(value) > max_length:
        raise InvalidInput("{name} is too long.", field=name, name=name)
    return value


def _decode_json_column(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return []
    return value if value is not None else []


def _dossier_out(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["documents"] = _decode_json_column(row.get("documents"))
    out["digitised"] = bool(row.get("digitised"))
    return out


def _actions_out(actor: Actor, row: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "label": i18n.gettext_(a.label),
            "to_status": None if a.to is None else int(a.to),
            "form": a.form,
            "note_required": a.note_required,
        }
        for a in available_actions(actor, row["status"], row["handling_unit"])
    ]


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work off the event loop, as the pages do: a read (its own read-only
    connection), argon2, and every write. A write waits for the replica's lock and then for
    its commit's fsync (seconds on an old disk, longer while a sync merges); on the event loop
    that would stall every clerk's page. ``Replica.write`` serialises the threads itself."""
    return await run_in_threadpool(fn, *args, **kwargs)


async def _read_dossier(request: Request, actor: Actor, dossier_id: str) -> dict[str, Any]:
    """The dossier as the API shows it; NotFound when absent or not visible to the actor."""
    node = state(request).node

    def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with node.reader() as conn:
            found = queries.dossier(conn, actor, dossier_id)
        # The same list as the page's, reasons in the request's language; "seen" is the page's:
        # an integration reading a dossier is not its clerk opening it.
        kept = conflicts.of_dossier(node.replica, dossier_id) if found["conflict_count"] else []
        return found, kept

    row, kept = await _call(read)
    out = _dossier_out(row)
    out["actions"] = _actions_out(actor, row)
    out["conflicts"] = kept
    return out


# --- endpoints -----------------------------------------------------------------------------------


async def issue_token(request: Request) -> Response:
    body = await _body(request, TokenRequest)
    app = state(request)

    address = request.client.host if request.client else None

    def check() -> Actor | None:
        with app.node.reader() as conn:
            return authenticate(conn, app.throttle, body.username.strip(), body.password, address)

    actor = await _call(check)  # LockedOut (429) propagates
    if actor is None:
        raise NotAuthenticated("Wrong username or password.", audit="login_failed", actor=body.username[:64])
    token = app.tokens.issue(actor.username)
    return _json({"token": token, "token_type": "bearer", "expires_in": app.tokens.max_age_s})


async def create_dossier(request: Request) -> Response:
    actor = current_actor(request)
    data = await _body(request, Draft)
    app = state(request)
    clock = clockcheck.for_node(app.node, app.settings.clock_skew_warn_s * 1000)
    key = check_request_key(request.headers.get("Idempotency-Key"))
    received = await _call(receive, app.node, actor, data, [], clock, key)
    return _json(
        {
            "id": received.id,
            "code": received.code,
            "status": received.status,
            "due_date": received.due_date,
            "clock_warning": received.clock_warning,
        },
        201,
        {"Location": f"{PREFIX}/dossiers/{received.id}"},
    )


_LIST_PARAMS = ("status", "q", "procedure", "due", "conflicts", "page", "page_size")


async def list_dossiers(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    params = _query(request, _LIST_PARAMS)
    due = params.get("due")
    if due not in (None, "overdue", "soon"):
        raise InvalidInput("due must be overdue or soon.", field="due")
    filters = queries.Filters(
        status=_bounded_int(params, "status", 1, 10, None),
        procedure=_text(params, "procedure", 40) or None,
        due=due,
        q=_text(params, "q", 200),
        conflicts=_bounded_int(params, "conflicts", 0, 1, 0) == 1,
    )
    page = _bounded_int(params, "page", 1, MAX_PAGE, 1) or 1
    default_size = min(app.settings.page_size, MAX_PAGE_SIZE)
    page_size = _bounded_int(params, "page_size", 1, MAX_PAGE_SIZE, default_size) or default_size

    def read() -> tuple[queries.Page, NotFound | None]:
        with app.node.reader() as conn:
            found = queries.list_dossiers(conn, actor, filters, today(app.node), page, page_size)
            return found, queries.hidden_code(conn, actor, filters.q) if found.total == 0 else None

    found, hidden = await _call(read)
    if hidden is not None:
        audit_refusal(request, hidden)
    # list_dossiers clamps a page past the end to the last one; an API caller asked for that
    # page, so it gets it, empty, rather than a page it did not ask for.
    items = [_dossier_out(row) for row in found.items] if found.page == page else []
    more = found.more and found.page == page
    return _json({"items": items, "page": page, "page_size": page_size, "total": found.total, "more": more})


async def get_dossier(request: Request) -> Response:
    actor = current_actor(request)
    found = await _read_dossier(request, actor, request.path_params["id"])
    log_read(request, actor, "api", found)
    return _json(found)


async def act_on_dossier(request: Request) -> Response:
    actor = current_actor(request)
    dossier_id = request.path_params["id"]
    await _read_dossier(request, actor, dossier_id)  # 404 before anything else, as for absent ids
    body = await _body(request, ActionIn)
    node = state(request).node
    if body.action == "extend" and body.due_date is not None and body.due_date <= today(node):
        raise InvalidInput("The new appointment date must be after today.", field="due_date")
    await _call(
        perform,
        node,
        actor,
        dossier_id,
        body.action,
        note=body.note,
        handling_unit=body.handling_unit,
        due_date=body.due_date,
    )
    return _json(await _read_dossier(request, actor, dossier_id))


async def _scans(request: Request, max_bytes: int) -> list[Scan]:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInput("Send the scans as multipart/form-data in the field scans.", field="scans")
    limit = MAX_FILES * max_bytes + _MULTIPART_OVERHEAD
    body = whole_multipart(_limited(request, limit), content_type)
    parser = MultiPartParser(request.headers, body, max_files=MAX_FILES, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise EdgeError("The upload is not valid multipart data: {reason}", reason=exc.message) from exc
    try:
        for name, _ in form.multi_items():
            if name != "scans":
                raise InvalidInput("Unknown field {name}: send the files in scans.", field=name, name=name)
        scans = []
        for item in form.getlist("scans"):
            if not isinstance(item, UploadFile):
                raise InvalidInput("scans holds files, not text.", field="scans")
            data = await item.read(max_bytes + 1)
            scans.append(check_scan(item.filename or "scan", data, max_bytes))
        if not scans:
            raise InvalidInput("Choose at least one file.", field="scans")
        return scans
    finally:
        await form.close()


async def add_attachments(request: Request) -> Response:
    actor = current_actor(request)
    dossier_id = request.path_params["id"]
    app = state(request)
    await _read_dossier(request, actor, dossier_id)
    scans = await _scans(request, app.settings.max_upload_bytes)
    digests = await _call(attach, app.node, actor, dossier_id, scans)
    added = [
        {"sha256": digest, "name": scan.name, "mime": scan.mime, "size": len(scan.data)}
        for scan, digest in zip(scans, digests, strict=True)
    ]
    return _json({"attachments": added}, 201)


async def list_procedures(request: Request) -> Response:
    current_actor(request)
    params = _query(request, ("q",))
    q = _text(params, "q", 200)
    node = state(request).node

    def read() -> list[dict[str, Any]]:
        with node.reader() as conn:
            return queries.procedures(conn, q)

    rows = await _call(read)
    items = [{**row, "documents": _decode_json_column(row.get("documents"))} for row in rows]
    return _json({"items": items})


async def sync_status(request: Request) -> Response:
    current_actor(request)
    _query(request, ())
    app = state(request)
    node = app.node
    current = await _call(badge, node)  # waits for the replica's lock while a write holds it
    vector = dict(node.replica.vector())
    clock = clockcheck.for_node(node, app.settings.clock_skew_warn_s * 1000)
    disk = app.disk.state()
    return _json(
        {
            **asdict(current),
            "node": node.config.node,
            "unit": node.config.unit,
            "unit_name": node.unit.name if node.unit else None,
            "vector": vector,
            "vector_size": len(vector),
            "ops_held": sum(vector.values()),
            "clock": {"suspect": clock.suspect, "skew_ms": clock.skew_ms, "reason": clock.text},
            "disk": {
                "free_bytes": disk.free_bytes,
                "read_only": disk.read_only,
                "problem": disk.problem(app.disk.warn_bytes),
            },
        }
    )


async def openapi_document(request: Request) -> Response:
    return Response(openapi.DOCUMENT, media_type="application/json")


async def dossiers(request: Request) -> Response:
    # One route for the collection: a 405 on it then names both methods in `Allow`.
    return await (create_dossier(request) if request.method == "POST" else list_dossiers(request))


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PREFIX}/auth/token", issue_token, methods=["POST"]),
        Route(f"{PREFIX}/dossiers", dossiers, methods=["GET", "POST"]),
        Route(f"{PREFIX}/dossiers/{{id}}", get_dossier, methods=["GET"]),
        Route(f"{PREFIX}/dossiers/{{id}}/actions", act_on_dossier, methods=["POST"]),
        Route(f"{PREFIX}/dossiers/{{id}}/attachments", add_attachments, methods=["POST"]),
        Route(f"{PREFIX}/procedures", list_procedures, methods=["GET"]),
        Route(f"{PREFIX}/sync/status", sync_status, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
    ]
