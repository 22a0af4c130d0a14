"""Why the fold refused an op: the templates its reasons are written from, and the way back.

A reducer that refuses an op raises :class:`sync.fold.Rejected` with an English reason, and sync
keeps that text with the conflict (``sync_conflict.reason``, the same at every replica that folds
the same ops). The text is the record: logs, the CLI and older replicas read it as it is. Pages
and the API show it in the clerk's language: :func:`explain` finds the template a reason was
written from and its parameters, and the edge translates the template (a msgid of the gettext
catalogs: ``ops.i18n`` extracts the ``N_`` marks of this module) and the parameters that have
words of their own (statuses, roles, dates, a field's problem).

Keeping the English text, rather than storing a code beside it, means no change to what sync
stores or to the fold's output, so conflicts kept by earlier versions read the same way. Every
reason is written here, from one of these templates::

    reason = CLOSED.format(status=Status.WITHDRAWN.describe())

Parameters named in :data:`STATUS_PARAMS` are a status as ``Status.describe()`` writes it
(``"7 (withdrawn)"``); ``role`` is a role code; ``who`` role codes joined by ``" or "``;
``date`` an ISO date; ``problem`` a field's problem (one of :data:`PROBLEMS`, itself explained).
"""

from __future__ import annotations

import re
from functools import cache


def N_(message: str) -> str:
    """Marks a msgid for the catalogs; the text itself is the English reason."""
    return message


# --- the status machine (schema.status.check_transition) -------------------------------------
NOT_A_PORTAL_STATUS = N_("the dossier's current status {current} is not a portal status")
NOT_A_STATUS = N_("{target} is not a dossier status (1 to 10)")
UNKNOWN_ROLE = N_("unknown role {given} (expected one of: {roles})")
CLOSED_FOR_GOOD = N_("the dossier is closed in status {status}: it cannot move any more")
ALREADY_IN = N_("the dossier is already in status {status}")
NO_SUCH_MOVE = N_("a dossier in status {source} cannot move to {goal}")
ROLE_MAY_NOT = N_("a {role} may not move a dossier from {source} to {goal}: that needs a {who}")

# --- the reducers (schema.kinds) ----------------------------------------------------------------
CLOSED = N_("the dossier is closed in status {status}")
DOSSIER_MISSING = N_("the dossier does not exist yet")
DOSSIER_EXISTS = N_("the dossier already exists")
ALREADY_HANDLED = N_("the dossier is already handled by unit {unit}")
EXTENSION_WITHOUT_REASON = N_("an extension needs the apology's reason")
DATE_NOT_LATER = N_("the new date must be after the current one ({date})")
ACCOUNT_MISSING = N_("the account does not exist yet")
ACCOUNT_ID = N_("an account's id must be its username ({username})")
ACCOUNT_EXISTS = N_("the account {account} already exists")

# --- an op's payload (schema.fields.check_payload) ---------------------------------------------
UNKNOWN_FIELDS = N_("unknown field(s): {fields}")
MISSING_FIELDS = N_("missing field(s): {fields}")
BAD_FIELD = N_("{field} {problem}")

NOT_TEXT = N_("must be non-empty text")
NOT_ANY_TEXT = N_("must be text")
NOT_TEXT_OR_NULL = N_("must be text or null")
NOT_A_DATE = N_("must be a date YYYY-MM-DD or null")
NOT_A_COUNT = N_("must be a whole number >= 0")
NOT_A_FLAG = N_("must be true or false")
NOT_ONE_OF = N_("must be one of: {choices}")
NOT_RECORDS = N_("must be a list of records")
NOT_A_DIGEST = N_("must be a sha256 digest (64 lowercase hex digits)")
TOO_LONG = N_("must be at most {limit} characters")

# --- sync's own word (sync.fold.apply): an action no kind of this version knows -----------------
UNKNOWN_ACTION = N_("unknown action")

PROBLEMS = (
    NOT_TEXT,
    NOT_ANY_TEXT,
    NOT_TEXT_OR_NULL,
    NOT_A_DATE,
    NOT_A_COUNT,
    NOT_A_FLAG,
    NOT_ONE_OF,
    NOT_RECORDS,
    NOT_A_DIGEST,
    TOO_LONG,
)
"""What :data:`BAD_FIELD`'s ``problem`` may be."""

REASONS = (
    NOT_A_PORTAL_STATUS,
    NOT_A_STATUS,
    UNKNOWN_ROLE,
    CLOSED_FOR_GOOD,
    ALREADY_IN,
    NO_SUCH_MOVE,
    ROLE_MAY_NOT,
    CLOSED,
    DOSSIER_MISSING,
    DOSSIER_EXISTS,
    ALREADY_HANDLED,
    EXTENSION_WITHOUT_REASON,
    DATE_NOT_LATER,
    ACCOUNT_MISSING,
    ACCOUNT_ID,
    ACCOUNT_EXISTS,
    UNKNOWN_FIELDS,
    MISSING_FIELDS,
    UNKNOWN_ACTION,
    BAD_FIELD,  # last: "{field} {problem}" would match most sentences; its problem must explain
)
"""Every template a fold reason is written from, in the order :func:`explain` tries them."""

STATUS_PARAMS = frozenset({"status", "source", "goal"})
ROLES_OR = " or "
"""How ``who`` joins role codes."""

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_STATUS = r"\d+ \([^()]*\)"


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    position = 0
    for found in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[position : found.start()]))
        name = found.group(1)
        if name in STATUS_PARAMS:
            parts.append(f"(?P<{name}>{_STATUS})")
        elif name == "field":
            parts.append(rf"(?P<{name}>[A-Za-z_][A-Za-z0-9_]*)")
        else:
            parts.append(f"(?P<{name}>.+?)")
        position = found.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts), re.DOTALL)


def _match(reason: str, templates: tuple[str, ...]) -> tuple[str, dict[str, str]] | None:
    for template in templates:
        found = _pattern(template).fullmatch(reason)
        if found is not None:
            return template, found.groupdict()
    return None


def explain(reason: str) -> tuple[str, dict[str, str]] | None:
    """The template ``reason`` was written from and its parameters (as written), or None for
    a reason no template of this version wrote (a newer replica's, say)."""
    for template in REASONS:
        found = _match(reason, (template,))
        if found is None:
            continue
        if template == BAD_FIELD and explain_problem(found[1]["problem"]) is None:
            continue
        return found
    return None


def explain_problem(problem: str) -> tuple[str, dict[str, str]] | None:
    """What :data:`BAD_FIELD`'s ``problem`` was written from (one of :data:`PROBLEMS`)."""
    return _match(problem, PROBLEMS)


def status_code(described: str) -> int:
    """``"7 (withdrawn)"`` -> 7: the code inside a status parameter."""
    return int(described.split(" ", 1)[0])
