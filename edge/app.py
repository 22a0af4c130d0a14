"""The commune web app: ``create_app(settings, node)`` wires pages, API, static files, errors.

Adapters come in as arguments (the node: replica, blob store, clock), so tests build the app on
a temporary node and the city server reuses the same pages.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge import api, i18n, syncclient, syncloop, views
from edge.audit import DAY_MS
from edge.auth import Throttle, Tokens
from edge.disk import DiskWatch
from edge.errors import EdgeError
from edge.lantls import HSTS
from edge.node import Node
from edge.settings import Settings
from edge.web import AppState, Extension, handle_error, make_templates
from schema.errors import SchemaError
from sync.errors import SyncError

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


class LanguageMiddleware:
    """Sets the language of this request: ?lang= (remembered in a cookie), the cookie, the default."""

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        language = i18n.pick_language(request.cookies.get("lang"), self.default)
        token = i18n.current_language.set(language)
        try:
            await self.app(scope, receive, send)
        finally:
            i18n.current_language.reset(token)


class SecurityHeaders:
    """No framing, no sniffing, no third-party anything: the box serves all it needs itself."""

    HEADERS = (
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            b"frame-ancestors 'none'; form-action 'self'",
        ),
    )

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.headers = [*self.HEADERS, *([(b"strict-transport-security", HSTS)] if hsts else [])]
        """HSTS only from a box that serves HTTPS (its cookies are Secure)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings,
    node: Node,
    *,
    sync_peer: syncclient.PeerFactory = syncclient.http_peer,
    background: bool = True,
    extension: Extension | None = None,
) -> Starlette:
    """``sync_peer`` makes the link to the city; ``background`` runs the sync loop while the app
    serves (for a node with a city; tests pass False and drive rounds themselves); ``extension``
    is what an app built on this one adds (:class:`edge.web.Extension`)."""
    extension = extension or Extension()
    node.audit.keep_read_ms = settings.read_log_days * DAY_MS
    node.audit.prune_reads()  # then every thousand reads while the app serves
    templates = make_templates(str(TEMPLATES), *extension.templates)
    app = Starlette(
        lifespan=syncloop.lifespan(node, settings, sync_peer, background=background),
        routes=[
            *views.routes(),
            *api.routes(),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders, hsts=settings.secure_cookies),
            Middleware(
                SessionMiddleware,
                secret_key=node.secret.hex(),
                session_cookie="motcua_session",
                max_age=settings.session_hours * 3600,
                same_site="strict",
                https_only=settings.secure_cookies,
            ),
            Middleware(LanguageMiddleware, default=settings.language),
        ],
        # Typed errors, and the storage errors of a full or read-only disk (503); anything else
        # is logged with its traceback and answered with the generic 500 message.
        exception_handlers={
            cls: handle_error
            for cls in (EdgeError, SchemaError, SyncError, HTTPException, sqlite3.OperationalError, OSError)
        },
    )
    app.state.motcua = AppState(
        settings=settings,
        node=node,
        templates=templates,
        throttle=Throttle(settings.login_attempts, settings.lockout_minutes * 60),
        tokens=Tokens(node.secret, settings.session_hours * 3600),
        disk=DiskWatch(node.data_dir, settings.disk_warn_mb * 1024 * 1024),
        extension=extension,
    )
    app.state.sync_peer = sync_peer
    app.state.sync_loop = None
    return app
