"""Log in, log out, choose the language, the home page."""

from __future__ import annotations

import time
from urllib.parse import urlparse

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from edge import conflicts, i18n, queries
from edge.accounts import set_password
from edge.auth import Actor, authenticate, new_csrf_token
from edge.dossiers import today
from edge.errors import InvalidInput, LockedOut
from edge.web import AppState, audit, check_csrf, current_actor, render, state


def _safe_next(target: str | None) -> str:
    """Only a local path: a login link must not send the clerk to another site."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def login_form(request: Request) -> Response:
    return render(request, "login.html", {"next": _safe_next(request.query_params.get("next"))})


def _authenticate(app: AppState, username: str, password: str, address: str | None) -> Actor | None:
    # argon2 takes tens of milliseconds on purpose: off the event loop, so others are served.
    with app.node.reader() as conn:
        return authenticate(conn, app.throttle, username, password, address)


async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    app = state(request)
    error = None
    try:
        address = request.client.host if request.client else None
        actor = await run_in_threadpool(_authenticate, app, username, password, address)
        if actor is None:
            error = i18n.gettext_("Wrong username or password.")
            audit(request, "login_failed", actor=username[:64])
    except LockedOut as exc:
        actor, error = None, i18n.gettext_(exc.message, **exc.params)
        audit(request, "locked_out", actor=username[:64])
    if actor is None:
        context = {"next": target, "username": username, "error": error}
        return render(request, "login.html", context, status=400)
    start_session(request, actor.username, app.node.sessions.generation(actor.username))
    return RedirectResponse(target, status_code=303)


def start_session(request: Request, username: str, generation: int) -> None:
    """A fresh session: nothing from before it (a planted cookie) survives, and it has its own
    id so that logging out ends it on the server too (:mod:`edge.sessions`)."""
    request.session.clear()
    request.session["user"] = username
    request.session["sid"] = new_csrf_token()
    request.session["generation"] = generation
    request.session["csrf"] = new_csrf_token()


async def logout(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    sid = request.session.get("sid")
    if isinstance(sid, str):
        until_ms = int(time.time() * 1000) + state(request).settings.session_hours * 3_600_000
        state(request).node.sessions.end(sid, until_ms)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def language(request: Request) -> Response:
    code = request.path_params["code"]
    if code not in i18n.LANGUAGES:
        raise InvalidInput("Unknown language.")
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie("lang", code, max_age=365 * 86400, samesite="strict", httponly=True)
    return response


def home(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    day = today(app.node)
    with app.node.reader() as conn:
        counts = queries.home_counts(conn, actor, day)
        received = queries.list_dossiers(
            conn, actor, queries.Filters(received_from=day, received_to=day), day, 1, 10
        )
        due = queries.list_dossiers(conn, actor, queries.Filters(due="soon"), day, 1, 10)
        overdue = queries.list_dossiers(conn, actor, queries.Filters(due="overdue"), day, 1, 10)
        shown = [d["procedure_code"] for page in (received, due, overdue) for d in page.items]
        names = queries.procedure_short_names(conn, shown)
    lost = []
    # Only dossiers the clerk may see are listed, and the counts already say whether any of them
    # has a conflict: on the usual day (none) the change log is not read at all.
    if counts["with_conflicts"]:
        lost = conflicts.lost_by(app.node.replica, actor.username, app.node.sessions.seen(actor.username))
    if lost:
        with app.node.reader() as conn:
            codes = queries.dossier_codes(conn, actor, [c["dossier"] for c in lost])
        # One the clerk may no longer see (transferred away) could never be opened, so never seen.
        lost = [{**c, "code": codes[c["dossier"]]} for c in lost if c["dossier"] in codes]
    context = {
        "actor": actor,
        "counts": counts,
        "received": received,
        "due": due,
        "overdue": overdue,
        "today": day,
        "procedure_names": names,
        "lost": lost,
    }
    return render(request, "home.html", context)


def password_form(request: Request) -> Response:
    return render(request, "account_password.html", {"actor": current_actor(request)})


def _change_password(app: AppState, actor: Actor, current: str, new: str, again: str) -> None:
    with app.node.reader() as conn:
        if authenticate(conn, app.throttle, actor.username, current) is None:
            raise InvalidInput("The current password is wrong.", field="current", audit="login_failed")
    if new != again:
        raise InvalidInput("The two new passwords differ.", field="again")
    set_password(app.node, actor.username, new)


async def password_change(request: Request) -> Response:
    """A clerk changes their own password offline; the op reaches the city at the next sync."""
    actor = current_actor(request)
    form = await request.form()
    check_csrf(request, form)
    app = state(request)
    fields = [str(form.get(name, "")) for name in ("current", "new", "again")]
    try:
        await run_in_threadpool(_change_password, app, actor, *fields)
    except (InvalidInput, LockedOut) as exc:
        if exc.audit:
            audit(request, exc.audit, code=exc.code, message=str(exc))
        message = i18n.gettext_(exc.message, **exc.params)
        return render(request, "account_password.html", {"actor": actor, "error": message}, status=422)
    # Every other session of this account ends (a cookie left on another PC); this one goes on.
    start_session(request, actor.username, app.node.sessions.end_all(actor.username))
    return render(request, "account_password.html", {"actor": actor, "done": True})


def routes() -> list[BaseRoute]:
    return [
        Route("/", home, name="home"),
        Route("/login", login_form, methods=["GET"], name="login"),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/lang/{code}", language, name="language"),
        Route("/account/password", password_form, methods=["GET"], name="password"),
        Route("/account/password", password_change, methods=["POST"]),
    ]
