"""Request plumbing shared by the pages and the API: who is asking, CSRF, rendering, errors.

One exception handler maps every typed error (edge, schema, sync) to a response: JSON
``{"error": {"code", "message", "field"}}`` under ``/api/``, a page or an htmx partial elsewhere,
a redirect to the login page when the session is missing. A clerk never sees a traceback.

An app built on this one (the city's) adds what only it has through an :class:`Extension`:
its templates, the URLs whose callers are machines, a hook the error handler calls; edge itself
knows nothing of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from edge import clockcheck, i18n
from edge.auth import Actor, Throttle, Tokens, load_actor, new_csrf_token, same_token
from edge.disk import DiskWatch, is_disk_error
from edge.errors import EdgeError, Forbidden, NotAuthenticated, Unavailable
from edge.i18n import N_
from edge.node import Node
from edge.settings import Settings
from edge.syncstate import badge
from schema.errors import SchemaError
from schema.status import as_status
from sync.errors import SyncError

log = logging.getLogger("motcua.edge")


@dataclass(frozen=True)
class Extension:
    """What an app built on edge's adds to it (the city: its dashboard, the sync protocol)."""

    templates: Sequence[Path] = ()
    """Template directories searched before edge's own."""
    machine_paths: tuple[str, ...] = ()
    """URL prefixes, besides ``/api/``, whose callers are machines: errors answer in JSON."""
    sync_badge: bool = True
    """Whether pages show this node's sync badge (a node that others sync with has none)."""
    on_error: Callable[[Request, Exception], None] | None = None
    """Called by the one error handler with a typed error before it answers (to audit it)."""


@dataclass
class AppState:
    settings: Settings
    node: Node
    templates: Jinja2Templates
    throttle: Throttle
    tokens: Tokens
    disk: DiskWatch
    extension: Extension = field(default_factory=Extension)


def state(request: Request) -> AppState:
    found: AppState = request.app.state.motcua
    return found


def is_api(request: Request) -> bool:
    """Machine callers get JSON errors: the JSON API and the extension's machine paths."""
    return request.url.path.startswith(("/api/", *state(request).extension.machine_paths))


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- who is asking ------------------------------------------------------------------------------


def session_actor(request: Request) -> Actor | None:
    username = request.session.get("user")
    if not username:
        return None
    sid, generation = request.session.get("sid"), request.session.get("generation")
    if (
        not isinstance(sid, str)
        or not isinstance(generation, int)
        or not state(request).node.sessions.valid(sid, str(username), generation)
    ):
        request.session.clear()  # logged out, or ended by a password change: a copied cookie opens nothing
        return None
    with state(request).node.reader() as conn:
        return load_actor(conn, username)


def current_actor(request: Request) -> Actor:
    """The logged-in clerk (session) or API caller (bearer token); NotAuthenticated otherwise."""
    if is_api(request):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        username = state(request).tokens.username(token) if scheme.lower() == "bearer" else None
        actor = None
        if username:
            with state(request).node.reader() as conn:
                actor = load_actor(conn, username)
        if actor is None:
            raise NotAuthenticated("A valid bearer token is required.")
        return actor
    actor = session_actor(request)
    if actor is None:
        request.session.clear()
        raise NotAuthenticated("Please log in.")
    return actor


def require_role(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise Forbidden("Your role may not do this.")


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = new_csrf_token()
    return str(token)


def check_csrf(request: Request, form: FormData) -> None:
    given = form.get("csrf") or request.headers.get("X-CSRF-Token")
    if not same_token(request.session.get("csrf"), str(given) if given else None):
        raise Forbidden(
            "The form has expired or did not come from this site. Reload the page and try again.",
            audit="csrf",
        )


# --- rendering ----------------------------------------------------------------------------------


def make_templates(directory: str, *before: Path) -> Jinja2Templates:
    """Edge's templates in ``directory``; an extension's directories ``before`` are searched first."""
    env = Environment(
        loader=ChoiceLoader([*(FileSystemLoader(str(d)) for d in before), FileSystemLoader(directory)]),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Old-style callables: _("… {n} …", n=…) reaches i18n.gettext_ with its keyword arguments,
    # and the result is a plain str, so autoescape still escapes whatever a parameter carried.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=i18n.gettext_, ngettext=i18n.ngettext_, newstyle=False
    )
    env.filters.update(date=i18n.format_date, datetime=i18n.format_datetime, money=i18n.format_money)
    env.globals["status_label"] = status_label
    return Jinja2Templates(env=env)


def status_label(code: int) -> str:
    """The portal's name of a status, in the page's language (the codes are the portal's)."""
    status = as_status(code)
    if status is None:
        return str(code)
    return status.vi if i18n.current_language.get() == "vi" else status.en


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    app = state(request)
    actor = context.get("actor") if context else None
    if actor is None:
        actor = session_actor(request)
    clock = clockcheck.for_node(app.node, app.settings.clock_skew_warn_s * 1000)
    full = {
        "request": request,
        "actor": actor,
        "lang": i18n.current_language.get(),
        "csrf": csrf_token(request),
        "unit": app.node.unit,
        "node": app.node.config,
        "sync_badge": app.extension.sync_badge,
        "clock": clock,
        "badge": badge(app.node) if actor else None,
        "disk": app.disk.state() if actor else None,
        "disk_problem": app.disk.problem() if actor else None,
        "sync_outcome": request.session.pop("sync_outcome", None)
        if actor and "session" in request.scope
        else None,
        **(context or {}),
    }
    return app.templates.TemplateResponse(request, template, full, status_code=status)


# --- errors ---------------------------------------------------------------------------------------


def _error_response(request: Request, status: int, code: str, message: str, field: str | None) -> Response:
    if is_api(request):
        body: dict[str, Any] = {"code": code, "message": message}
        if field:
            body["field"] = field
        return JSONResponse({"error": body}, status_code=status)
    if status == 401:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": f"/login?next={target}"})
        return RedirectResponse(f"/login?next={target}", status_code=303)
    template = "_error.html" if is_htmx(request) else "error.html"
    context = {"status": status, "code": code, "message": message, "field": field}
    # htmx swaps only 2xx by default: answer 200 with the message so the clerk sees it in place.
    return render(request, template, context, status=200 if is_htmx(request) else status)


_AUDIT_FIELDS = frozenset(
    {"event", "actor", "remote", "method", "path", "code", "status", "message", "msgid"}
)


def audit(request: Request, event: str, **detail: object) -> None:
    """Write a refusal to the node's audit log, with who asked (a session or token's user when
    known, never a password) and from where."""
    claimed = detail.pop("actor", None)
    actor = request.session.get("user") if "session" in request.scope else None
    actor = actor or claimed
    client = request.client.host if request.client else None
    state(request).node.audit.record(
        event,
        actor=str(actor) if actor else None,
        remote=client,
        method=request.method,
        path=request.url.path,
        **detail,
    )


def log_read(request: Request, actor: Actor, what: str, dossier: Mapping[str, Any], **detail: object) -> None:
    """Note in the read log that ``actor`` read ``dossier`` (a row of ``edge.queries``): its
    page, receipt, a form, its record, a scan or its API JSON (:data:`edge.audit.READS`). Called
    once the dossier was found and shown to them, never for a refusal (that is audited)."""
    state(request).node.audit.read(
        actor.username,
        what,
        str(dossier["id"]),
        str(dossier.get("code") or "") or None,
        remote=request.client.host if request.client else None,
        detail=detail,
    )


def audit_refusal(request: Request, exc: EdgeError) -> None:
    """Audit a typed error that may be an attack (its ``audit`` is set); the one handler calls
    this, and so does a page that answers a refusal itself to keep the clerk's form."""
    if not exc.audit:
        return
    # The error's parameters say what was reached for (which dossier, which file).
    named = {k: v for k, v in exc.params.items() if k not in _AUDIT_FIELDS}
    audit(
        request,
        exc.audit,
        **named,
        code=exc.code,
        status=exc.status,
        message=str(exc),
        msgid=exc.message,  # the page translates it with the parameters above
        actor=exc.params.get("actor"),
    )


def disk_refusal(exc: BaseException) -> Unavailable:
    """What the clerk is told when a full or read-only disk refused a write (the technician
    finds the error in the log)."""
    log.error("storage problem: %s", exc)
    return Unavailable("The disk is full or read-only: nothing was saved. Tell the technician.")


async def handle_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, EdgeError):
        audit_refusal(request, exc)
        message = i18n.gettext_(exc.message, **exc.params)
        return _error_response(request, exc.status, exc.code, message, exc.field)
    if isinstance(exc, SchemaError | SyncError):
        on_error = state(request).extension.on_error
        if on_error is not None:
            on_error(request, exc)
        return _error_response(request, exc.status, exc.code, i18n.gettext_(exc.message), None)
    if isinstance(exc, HTTPException):
        message = {404: N_("Page not found."), 405: N_("Method not allowed.")}.get(
            exc.status_code, N_("Request refused.")
        )
        response = _error_response(request, exc.status_code, "http_error", i18n.gettext_(message), None)
        # Starlette's 405 names the resource's methods in `Allow`, which RFC 9110 requires be sent.
        response.headers.update(exc.headers or {})
        return response
    if is_disk_error(exc):
        err = disk_refusal(exc)
        return _error_response(request, err.status, err.code, i18n.gettext_(err.message), None)
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    message = i18n.gettext_(
        "Something went wrong on the box; nothing was saved. Try again or tell the technician."
    )
    return _error_response(request, 500, "internal", message, None)
