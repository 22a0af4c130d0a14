"""Refusals and sync requests in the words of the people who read them (city IT, a leader).

The sync library and the city's endpoints raise errors with an English message for the logs and
a stable ``code`` (``revoked_node``, ``outside_write_scope`` …). Pages show the code's sentence
from the catalogs, never the English message: it names node ids and internals, and it is not in
the catalogs. :func:`refusal` is the one place that turns a stored refusal into that sentence.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge import i18n
from edge.i18n import N_

REFUSALS: dict[str, str] = {
    "revoked_node": N_("The box's key was revoked by the city: its requests are refused."),
    "unknown_node": N_("The city does not know this box's key."),
    "bad_signature": N_("A signature did not verify: nothing of the request was applied."),
    "verification_failed": N_("The data did not verify: nothing of it was applied."),
    "equivocation": N_("The box sent two different versions of the same change."),
    "corrupt_batch": N_("The data sent could not be read."),
    "clock_drift": N_("The box's clock is too far ahead of the city's."),
    "stale_request": N_("The request's time is too far from the city's clock."),
    "replayed_request": N_("The same request arrived twice; the copy was refused."),
    "protocol_version": N_("The box's software is too old or too new for the city server."),
    "outside_write_scope": N_("The box sent changes outside its commune's scope."),
    "request_too_large": N_("The request was larger than the city accepts."),
    "blob_too_large": N_("A scan was larger than the city accepts."),
    "bad_chunk": N_("A piece of a scan did not fit what was already received."),
    "blob_not_found": N_("A scan asked for is not held here."),
    "corrupt_blob": N_("A scan was damaged on the way."),
    "unknown_kind": N_("The box sent a kind of record this city does not know."),
    "bundle_not_for_this_node": N_("The USB bundle was made for another box."),
    "peer_unreachable": N_("No connection to the city server."),
    "sync_error": N_("The sync request was refused."),
    "invalid": N_("A form was refused."),
    "forbidden": N_("Not allowed for the role."),
    "not_found": N_("No such dossier."),
    "too_large": N_("The file was too large."),
    "not_authenticated": N_("Wrong username or password."),
    "locked_out": N_("The account was locked after too many wrong passwords."),
}
"""The sentence for each refusal code of the sync protocol and the USB bundles."""

ENDPOINTS: dict[str, str] = {
    "time": N_("clock check"),
    "hello": N_("status report"),
    "push": N_("send changes"),
    "pull": N_("fetch changes"),
    "digest": N_("full comparison"),
    "blob_size": N_("scan upload (resume)"),
    "blob_put": N_("scan upload"),
    "blob_get": N_("scan download"),
}
"""What each sync request does, for the node page's request history."""

_NOT_PARAMETERS = frozenset({"code", "status", "message", "msgid"})


def refusal(code: str | None, detail: Mapping[str, object] | None = None) -> str:
    """The sentence for a refusal: the translated message when the refusal kept its msgid (a
    typed error of the web app: ``msgid`` and its parameters in ``detail``), else the code's
    sentence, else the code itself (never an untranslated English message)."""
    detail = detail or {}
    msgid = detail.get("msgid")
    if isinstance(msgid, str):
        params = {k: v for k, v in detail.items() if k not in _NOT_PARAMETERS}
        try:
            return i18n.gettext_(msgid, **params)
        except (KeyError, IndexError, ValueError):
            pass
    message = detail.get("message")
    if isinstance(message, str) and message:
        translated = i18n.gettext_(message)
        if translated != message or i18n.current_language.get() == "en":
            return translated
    if code in REFUSALS:
        return i18n.gettext_(REFUSALS[code])
    return code or ""


def endpoint(name: str) -> str:
    known = ENDPOINTS.get(name)
    return i18n.gettext_(known) if known else name
