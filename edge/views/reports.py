"""The unit's Decision 766 indicators, with a chart rendered on the server.

``GET /reports?year=YYYY&procedure=CODE``: for the actor's unit (admin: every unit), the
dossiers received in the year, per month, with how many were processed on time, how many are
overdue, and the digitised and online shares. Without a procedure the months sum every
procedure and a second table lists each procedure's year; with one, the months are that
procedure's. The charts are drawn by :mod:`edge.charts`; the tables carry the same figures and
are what a screen reader reads.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edge import charts, i18n, queries
from edge.dossiers import today
from edge.errors import InvalidInput
from edge.queries import ReportRow
from edge.web import current_actor, render, state
from schema.indicators import BASES

FIRST_YEAR, LAST_YEAR = 2000, 2100
PROCEDURE_ROWS = 80
"""At most this many procedures in the year table (the busiest): the page must stay small even
at the city, where the catalogue holds 2,000+ procedures."""

_CODE = re.compile(r"\d\.\d{6}")
ON_TIME, OVERDUE, OTHER = "#1f7a33", "#a3001b", "#9aa3ad"
DIGITISED, ONLINE = "#1f5fa3", "#b86e00"


@dataclass(frozen=True)
class ProcedureYear:
    code: str
    name: str
    total: ReportRow


def _year(raw: str | None, day: date) -> int:
    if raw is None or raw.strip() == "":
        return day.year
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) == 4) or not FIRST_YEAR <= int(text) <= LAST_YEAR:
        raise InvalidInput(
            "The year must be a number between {first} and {last}.",
            field="year",
            first=FIRST_YEAR,
            last=LAST_YEAR,
        )
    return int(text)


def _basis(raw: str | None) -> str:
    basis = (raw or "received").strip() or "received"
    if basis not in BASES:
        raise InvalidInput("Count dossiers received at the unit or handled by it.", field="basis")
    return basis


def _procedure(raw: str | None) -> str:
    code = (raw or "").strip()
    if code and not _CODE.fullmatch(code):
        raise InvalidInput("A procedure code looks like 1.004194.", field="procedure")
    return code


def total(rows: Iterable[ReportRow], procedure: str = "", month: str = "") -> ReportRow:
    """The sum of ``rows`` as one row (its share() then gives the overall shares)."""
    sums = [0, 0, 0, 0, 0]
    for row in rows:
        for i, value in enumerate((row.received, row.on_time, row.overdue, row.digitised, row.online)):
            sums[i] += value
    return ReportRow(procedure, month, *sums)


def by_month(rows: Sequence[ReportRow], year: int) -> list[ReportRow]:
    """Twelve rows, January first; a month without dossiers is a row of zeros."""
    months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    return [total((r for r in rows if r.month == month), month=month) for month in months]


def by_procedure(rows: Sequence[ReportRow], names: dict[str, str]) -> list[ProcedureYear]:
    codes = sorted({r.procedure for r in rows})
    years = [
        ProcedureYear(code, names.get(code, ""), total((r for r in rows if r.procedure == code), code))
        for code in codes
    ]
    return sorted(years, key=lambda p: (-p.total.received, p.code))


def _procedure_names(conn: sqlite3.Connection, codes: Sequence[str]) -> dict[str, str]:
    # Only the procedures on the page: the city's catalogue is far bigger than one report.
    names: dict[str, str] = {}
    for start in range(0, len(codes), 500):
        chunk = list(codes[start : start + 500])
        marks = ",".join("?" * len(chunk))
        names.update(conn.execute(f"SELECT code, name FROM procedures WHERE code IN ({marks})", chunk))
    return names


def month_label(month: int) -> str:
    return i18n.gettext_("T{month}", month=month)


def percent(part: int, whole: int) -> str:
    """``53,2 %`` in Vietnamese, ``53.2 %`` in English; a dash when there is nothing to divide."""
    if not whole:
        return "–"
    text = f"{100 * part / whole:.1f}"
    if i18n.current_language.get() == "vi":
        text = text.replace(".", ",")
    return f"{text} %"


def _charts(months: Sequence[ReportRow], year: int, subject: str) -> tuple[Markup, Markup]:
    _ = i18n.gettext_
    labels = [month_label(m) for m in range(1, 13)]
    in_table = _("The same figures are in the table “By month” below.")
    bars = charts.stacked_bars(
        "chart-deadlines",
        _("Dossiers received in {year} by month: {subject}", year=year, subject=subject),
        labels,
        [
            charts.Series(_("On time"), [r.on_time for r in months], ON_TIME),
            charts.Series(_("Overdue"), [r.overdue for r in months], OVERDUE),
            charts.Series(
                _("Not yet due or closed without a result"),
                [r.received - r.on_time - r.overdue for r in months],
                OTHER,
            ),
        ],
        x_label=_("Month received"),
        y_label=_("Dossiers"),
        description=in_table,
        empty=_("No dossiers received in this year."),
    )
    shares = charts.lines(
        "chart-shares",
        _("Digitised and online shares in {year}: {subject}", year=year, subject=subject),
        labels,
        [
            charts.Series(
                _("Digitised"),
                [100 * r.share(r.digitised) if r.received else None for r in months],
                DIGITISED,
            ),
            charts.Series(
                _("Received online"),
                [100 * r.share(r.online) if r.received else None for r in months],
                ONLINE,
            ),
        ],
        x_label=_("Month received"),
        y_label=_("Share of dossiers received"),
        description=in_table,
        maximum=100,
        suffix="%",
        empty=_("No dossiers received in this year."),
    )
    # The charts escape every text themselves.
    return Markup(bars), Markup(shares)  # noqa: S704


def reports(request: Request) -> Response:
    actor = current_actor(request)
    app = state(request)
    day = today(app.node)
    year = _year(request.query_params.get("year"), day)
    code = _procedure(request.query_params.get("procedure"))
    basis = _basis(request.query_params.get("basis"))
    city_wide = actor.role == "admin"  # the city's admin (a box's own accounts are its unit's)
    with app.node.reader() as conn:
        rows = queries.report(conn, actor, year, day, basis, city_wide)
        codes = sorted({r.procedure for r in rows} | ({code} if code else set()))
        names = _procedure_names(conn, codes)
    procedures = by_procedure(rows, names)
    shown = procedures[:PROCEDURE_ROWS]
    choices = [(p.code, p.name) for p in sorted(shown, key=lambda p: p.code)]
    if code and code not in {c for c, _ in choices}:
        choices.insert(0, (code, names.get(code, "")))
    selected = [r for r in rows if r.procedure == code] if code else rows
    months = by_month(selected, year)
    subject = f"{code} {names.get(code, '')}".strip() if code else i18n.gettext_("all procedures")
    bars, shares = _charts(months, year, subject)
    years = sorted({*range(day.year - 4, day.year + 1), year}, reverse=True)
    context = {
        "actor": actor,
        "year": year,
        "years": years,
        "basis": basis,
        "city_wide": city_wide,
        "procedure": code,
        "procedure_name": names.get(code, ""),
        "choices": choices,
        "months": [(month_label(i + 1), row) for i, row in enumerate(months)],
        "total": total(months),
        "procedures": shown,
        "hidden": len(procedures) - len(shown),
        "bars": bars,
        "shares": shares,
        "percent": percent,
    }
    return render(request, "reports.html", context)


def routes() -> list[BaseRoute]:
    return [Route("/reports", reports, name="reports")]
