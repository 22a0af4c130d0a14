"""Errors of the edge app, each with the HTTP status and the code the one handler renders.

    EdgeError                 400 unless said otherwise
    ├── ConfigError           a bad setting or data directory (the CLI prints it and exits 2)
    ├── InvalidInput          a form or JSON field is wrong (422); carries the field name
    │   └── InvalidFields     several fields of one form are wrong: each of them, in form order
    ├── NotAuthenticated      no or expired session / token (401)
    ├── Forbidden             the role or unit may not do this (403)
    ├── NotFound              no such dossier, procedure … — or one the actor may not see (404)
    ├── Conflict              the dossier moved meanwhile; the action no longer applies (409)
    ├── TooLarge              an upload over the limit (413)
    ├── LockedOut             too many failed logins; try again later (429)
    └── Unavailable           the disk is full or read-only (503)

Messages are written for a clerk; handlers translate them (the msgid is the English text).
An error whose ``audit`` is set (by its class, or by the raiser: ``NotFound(..., audit=
"cross_unit")``) is also written to the audit log (:mod:`edge.audit`) by the one handler.
"""

from __future__ import annotations


class EdgeError(Exception):
    status = 400
    code = "bad_request"
    audit: str | None = None
    """The audit log's event name when this refusal may be an attack; None: not audited."""

    def __init__(
        self, message: str, *, field: str | None = None, audit: str | None = None, **params: object
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.params = params
        if audit is not None:
            self.audit = audit

    def __str__(self) -> str:
        """The English message with its parameters (logs, the CLI); pages translate it."""
        return self.message.format(**self.params) if self.params else self.message


class ConfigError(EdgeError):
    code = "config"


class InvalidInput(EdgeError):
    status = 422
    code = "invalid"


class InvalidFields(InvalidInput):
    """Every wrong field of one submitted form, so the clerk fixes them all in one go; the first
    one is this error's own message and field (what the API and the logs show)."""

    def __init__(self, problems: list[InvalidInput]) -> None:
        first = problems[0]
        super().__init__(first.message, field=first.field)
        self.params = first.params
        self.problems = problems


class NotAuthenticated(EdgeError):
    status = 401
    code = "not_authenticated"


class Forbidden(EdgeError):
    status = 403
    code = "forbidden"
    audit = "forbidden"


class NotFound(EdgeError):
    status = 404
    code = "not_found"


class Conflict(EdgeError):
    status = 409
    code = "conflict"


class TooLarge(EdgeError):
    status = 413
    code = "too_large"
    audit = "too_large"


class LockedOut(EdgeError):
    status = 429
    code = "locked_out"
    audit = "locked_out"


class Unavailable(EdgeError):
    status = 503
    code = "unavailable"
