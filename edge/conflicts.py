"""Conflicts: the ops of a dossier that sync kept but could not apply, as people read them.

Sync keeps every op that its place in the order refused (another box acted first while the two
were apart), with the fold's English reason (:mod:`schema.reasons`). The dossier page and the
JSON API show the same list, with the reason in the reader's language; the home page tells the
clerk whose action lost until they open the dossier.

Who has *seen* a conflict is the box's own business, kept in the session book
(``sessions.db``, :meth:`edge.sessions.SessionBook.mark_seen`), not in the change log: it is no
state of the dossier that another replica needs, and a page read must not take the node's one
writer (nor wait behind a sync's merge) to note it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.i18n import N_, current_language, format_date, gettext_
from schema import reasons
from schema.status import as_status
from sync.fold import Conflict
from sync.ops import Op
from sync.replica import Replica

ROLE_WORDS = {"clerk": N_("one-stop-shop clerk"), "leader": N_("unit leader"), "admin": N_("administrator")}
"""A role as a reason names it (inside a sentence)."""


def _status(described: str) -> str:
    code = reasons.status_code(described)
    status = as_status(code)
    if status is None:
        return described
    return f"{code} ({status.vi if current_language.get() == 'vi' else status.en})"


def _param(name: str, value: str) -> str:
    if name in reasons.STATUS_PARAMS:
        return _status(value)
    if name == "role":
        return gettext_(ROLE_WORDS[value]) if value in ROLE_WORDS else value
    if name == "who":
        words = [gettext_(ROLE_WORDS[r]) if r in ROLE_WORDS else r for r in value.split(reasons.ROLES_OR)]
        either = gettext_("or")
        return f" {either} ".join(words)
    if name == "date":
        try:
            return format_date(value)
        except ValueError:
            return value
    if name == "problem":
        found = reasons.explain_problem(value)
        if found is not None:
            return gettext_(found[0], **found[1])
    return value


def reason_text(reason: str) -> str:
    """The fold's reason in the current language (the catalogs translate its template)."""
    found = reasons.explain(reason)
    if found is None:
        # A reason this version has no template for (a newer box's rule): say so in the
        # clerk's language, and keep the record's words beside it.
        return gettext_("a rule of another software version refused it: {reason}", reason=reason)
    template, params = found
    return gettext_(template, **{name: _param(name, value) for name, value in params.items()})


def _described(conflict: Conflict, op: Op | None) -> dict[str, Any]:
    payload = dict(op.payload) if op else {}
    return {
        "node": conflict.node,
        "seq": conflict.seq,
        "action": conflict.action,
        "actor": payload.get("by"),
        "role": payload.get("role"),
        "at": op.hlc.wall if op else None,
        "note": payload.get("note"),
        "reason": reason_text(conflict.reason),
        "to_status": payload.get("to") if conflict.action == "transition" else None,
        "handling_unit": payload.get("handling_unit") if conflict.action == "transfer" else None,
        "due_date": payload.get("due_date") if conflict.action == "extend" else None,
    }


def of_dossier(replica: Replica, dossier_id: str) -> list[dict[str, Any]]:
    """What the dossier's kept conflicts tried, who did it, when, and why it was not applied.
    Call after the actor was checked to see the dossier."""
    kept = replica.conflicts("dossier", dossier_id)
    if not kept:
        return []
    ops = {(op.node, op.seq): op for op in replica.ops_of("dossier", dossier_id)}
    return [_described(c, ops.get((c.node, c.seq))) for c in kept]


def lost_by(replica: Replica, username: str, seen: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """This node's conflicts that were ``username``'s actions and that ``username`` has not
    seen on the dossier's page since: ``[{dossier, node, seq, action, actor, reason, …}]``.

    A clerk acts at their own box, so only this node's ops are looked at; conflicts are rare
    (a few a month), so reading them and their dossiers' ops per home page stays cheap."""
    me = replica.identity.node
    done = set(seen)
    waiting: dict[str, list[Conflict]] = {}
    for conflict in replica.conflicts("dossier"):
        if conflict.node == me and (conflict.node, conflict.seq) not in done:
            waiting.setdefault(conflict.entity, []).append(conflict)
    out = []
    for entity, kept in waiting.items():
        ops = {(op.node, op.seq): op for op in replica.ops_of("dossier", entity)}
        for conflict in kept:
            op = ops.get((conflict.node, conflict.seq))
            if op is not None and op.payload.get("by") == username:
                out.append({"dossier": entity, **_described(conflict, op)})
    return sorted(out, key=lambda c: c["at"] or 0, reverse=True)
