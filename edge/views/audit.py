"""What the box (or the city) refused, for the people who answer for it: ``GET /audit``.

A leader of the commune or an admin sees the audit log of the node they are logged in to
(:mod:`edge.audit`): a chart of refusals per day over the last two weeks by kind, the counts,
and the newest lines. A burst of failed logins or of reaches into other units' dossiers reads
at a glance in the chart; the table says who, from where, and what. Clerks do not see it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edge import charts, i18n, reasons
from edge.audit import Entry
from edge.i18n import N_
from edge.web import current_actor, render, require_role, state

DAYS = 14
NEWEST = 100
VN = timedelta(hours=7)

GROUPS: list[tuple[str, tuple[str, ...], str]] = [
    (N_("Logins"), ("login_failed", "locked_out"), "#b86e00"),
    (N_("Access"), ("csrf", "forbidden", "cross_unit"), "#a3001b"),
    (N_("Uploads"), ("upload_refused", "too_large"), "#1f5fa3"),
    (N_("Sync and USB"), ("sync_refused", "bundle_refused"), "#5a2d82"),
]
"""The chart's series: refusals grouped by what they threaten."""

EVENTS = {
    "login_failed": N_("Wrong password"),
    "locked_out": N_("Login while locked"),
    "csrf": N_("Form without a valid token"),
    "forbidden": N_("Not allowed for the role"),
    "cross_unit": N_("Another unit's dossier"),
    "upload_refused": N_("File is not a scan"),
    "too_large": N_("Too large"),
    "sync_refused": N_("Sync refused"),
    "bundle_refused": N_("USB bundle refused"),
}


def event_label(event: str) -> str:
    known = EVENTS.get(event)
    return i18n.gettext_(known) if known else event


def _day(ms: int) -> str:
    return (datetime.fromtimestamp(ms / 1000, UTC) + VN).strftime("%d/%m")


def per_day(entries: list[Entry], now_ms: int) -> tuple[list[str], list[charts.Series]]:
    """Categories (the last ``DAYS`` days, oldest first) and one series per group."""
    today = datetime.fromtimestamp(now_ms / 1000, UTC) + VN
    days = [(today - timedelta(days=DAYS - 1 - i)).strftime("%d/%m") for i in range(DAYS)]
    index = {d: i for i, d in enumerate(days)}
    series = []
    for label, events, colour in GROUPS:
        values: list[float | None] = [0.0] * DAYS
        for e in entries:
            i = index.get(_day(e.at_ms))
            if i is not None and e.event in events:
                values[i] = (values[i] or 0.0) + 1
        series.append(charts.Series(i18n.gettext_(label), values, colour))
    return days, series


async def audit_page(request: Request) -> Response:
    actor = current_actor(request)
    require_role(actor, "leader", "admin")
    log = state(request).node.audit
    now_ms = int(time.time() * 1000)
    since = now_ms - DAYS * 86_400_000
    counts = log.counts(since)
    entries = log.entries(since_ms=since, limit=50_000)
    days, series = per_day(entries, now_ms)
    _ = i18n.gettext_
    chart = charts.stacked_bars(
        "chart-audit",
        _("Refusals per day, last {days} days", days=DAYS),
        days,
        series,
        x_label=_("Day"),
        y_label=_("Refusals"),
        description=_("The same counts by kind are in the table below."),
        empty=_("Nothing was refused in these days."),
    )
    context = {
        "chart": Markup(chart),  # noqa: S704 (charts escapes every text it draws)
        "counts": [(event_label(e), n) for e, n in counts.items()],
        "total": sum(counts.values()),
        "entries": entries[:NEWEST],
        "event_label": event_label,
        "detail_text": lambda e: reasons.refusal(str(e.detail.get("code") or ""), e.detail),
        "days": DAYS,
    }
    return render(request, "audit.html", context)


def routes() -> list[BaseRoute]:
    return [Route("/audit", audit_page, methods=["GET"], name="audit")]
