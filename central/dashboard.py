"""The fleet dashboard for city IT: every node at a glance, one node in depth, the routing
queue and the Decision 766 indicators per unit. Admins only; every form carries CSRF.

    GET  /fleet                       all nodes, worst first; refreshes itself with htmx
    GET  /fleet/table                 the table alone (what the page's htmx polls every 15 s)
    GET  /fleet/nodes/{node}          attempt history (?page=), charts, certificate, revoke form
    POST /fleet/nodes/{node}/revoke   revoke; the admin types the node id in ``confirm``
    GET  /fleet/routing               non-territorial dossiers not yet at their handling unit
    GET  /fleet/indicators            ?year=&by=receiving|handling, with a chart

The city-wide dossier search is the edge's own ``/dossiers`` (an admin sees every unit); the
fleet pages link to it. Pages stay small (< 60 KB for 120 nodes): long texts are cut, lists
are paged or capped, charts are server-side SVG.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from central import cityviews, fleetviews, tls
from central.charts import Part, Row, share_bars
from central.cityviews import BY_UNIT, Target, UnitIndicators
from central.fleet import Status
from central.fleetviews import FleetSettings, NodeRow
from central.hub import Hub
from central.registry import revoke_node
from edge import charts, i18n, queries, reasons
from edge.auth import Actor
from edge.dossiers import today
from edge.errors import InvalidInput, NotFound
from edge.views.reports import percent
from edge.web import check_csrf, current_actor, render, require_role, state
from schema.indicators import Counts
from schema.units import COMMUNE, SPECIAL_ZONE, WARD
from sync.identity import fingerprint

FIRST_YEAR, LAST_YEAR = 2000, 2100
BOXED_KINDS = (COMMUNE, WARD, SPECIAL_ZONE)
"""Units that each get a box: the fleet page lists those without one too."""
CHART_UNITS = 40
"""Units drawn in the indicators chart (those with the most overdue share; the table has all)."""
ERROR_CHARS = 40
"""Errors are cut to this length in the fleet table (the node page shows them whole)."""
IN_COLOUR, OUT_COLOUR, LAG_COLOUR = "#1f5fa3", "#b86e00", "#a3001b"
ON_TIME, OVERDUE, OTHER = "#1f7a33", "#a3001b", "#9aa3ad"


def duration(ms: int | float | None) -> str:
    """A short, translated duration: "2 d 3 h", "3 h 20 min", "45 min", "12 s"; "" for None."""
    if ms is None:
        return ""
    _ = i18n.gettext_
    seconds = int(abs(ms) // 1000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return _("{d} d {h} h", d=days, h=hours)
    if hours:
        return _("{h} h {m} min", h=hours, m=minutes)
    if minutes:
        return _("{m} min", m=minutes)
    return _("{s} s", s=secs)


def drift_text(drift_ms: int | None) -> str:
    """The node's clock against the city's (drift = city - node: positive means behind)."""
    if drift_ms is None:
        return ""
    if abs(drift_ms) < 1000:
        return i18n.gettext_("in step")
    if drift_ms > 0:
        return i18n.gettext_("{d} behind", d=duration(drift_ms))
    return i18n.gettext_("{d} ahead", d=duration(drift_ms))


def whole_region(name: str) -> str:
    """ "The whole city" for a centrally-run city (Thành phố Cần Thơ), else "the whole province"."""
    if name.startswith("Thành phố"):
        return i18n.gettext_("The whole city")
    return i18n.gettext_("The whole province")


def short(text: str | None, limit: int = ERROR_CHARS) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int_param(request: Request, name: str, default: int) -> int:
    raw = (request.query_params.get(name) or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else default


@dataclass
class Dashboard:
    hub: Hub
    settings: FleetSettings

    def _admin(self, request: Request) -> Actor:
        actor = current_actor(request)
        require_role(actor, "admin")
        return actor

    def _common(self, request: Request, actor: Actor, section: str) -> dict[str, Any]:
        app = state(request)
        return {
            "actor": actor,
            "section": section,
            "now_ms": self.hub.now_ms(),
            "duration": duration,
            "drift_text": drift_text,
            "short": short,
            "reason": reasons.refusal,
            "endpoint_label": reasons.endpoint,
            "drift_warn_ms": app.settings.clock_skew_warn_s * 1000,
            "silent_hours": self.settings.silent_hours,
            "whole_region": whole_region(app.node.unit.name if app.node.unit else ""),
        }

    # --- the fleet table ------------------------------------------------------------------------

    def rows(self, request: Request) -> list[NodeRow]:
        registrations = self.hub.fleet.registrations()
        statuses = {s.node: s for s in self.hub.fleet.statuses()}
        oldest: dict[str, int | None] = {}
        with state(request).node.reader() as conn:
            names = queries.unit_names(conn, sorted({r.unit for r in registrations}))
            for r in registrations:
                status = statuses.get(r.node)
                if status is not None and not r.revoked and (status.central_waiting or 0) > 0:
                    oldest[r.node] = cityviews.oldest_waiting_ms(
                        self.hub.replica, r.unit, status.cursor or 0, r.node
                    )
        return fleetviews.node_rows(
            registrations, statuses.values(), names, self.hub.now_ms(), self.settings.silent_ms, oldest
        )

    def unboxed(self, request: Request, rows: list[NodeRow]) -> list[tuple[str, str]]:
        """(code, name) of the province's communes and wards with no box registered, by name."""
        boxed = {row.unit for row in rows}
        node = state(request).node
        with node.reader() as conn:
            units = queries.units(conn, node.config.province)
        return [(u["code"], u["name"]) for u in units if u["kind"] in BOXED_KINDS and u["code"] not in boxed]

    def _table_context(self, request: Request, actor: Actor) -> dict[str, Any]:
        rows = self.rows(request)
        unboxed = self.unboxed(request, rows)
        return {
            **self._common(request, actor, "fleet"),
            "rows": rows,
            "unboxed": unboxed,
            "units": len({row.unit for row in rows}) + len(unboxed),
            "boxes": sum(1 for row in rows if not row.revoked),
            "alerts": sum(1 for row in rows if row.alert),
            "erroring": sum(1 for row in rows if row.erroring and not row.revoked),
        }

    def fleet(self, request: Request) -> Response:
        actor = self._admin(request)
        revoked = {r.node for r in self.hub.fleet.registrations() if r.revoked}
        expiring = [
            (node, at)
            for node, at in tls.expiring(state(request).node.data_dir, self.hub.now_ms())
            if node not in revoked
        ]
        context = {
            **self._table_context(request, actor),
            "certs_expiring": expiring,
            "renew_days": tls.RENEW_DAYS,
        }
        return render(request, "fleet.html", context)

    def table(self, request: Request) -> Response:
        actor = self._admin(request)
        return render(request, "_fleet_table.html", self._table_context(request, actor))

    # --- one node -------------------------------------------------------------------------------

    def _node_context(self, request: Request, actor: Actor, node: str) -> dict[str, Any]:
        registration = self.hub.fleet.registration(node)
        if registration is None:
            raise NotFound("No node {node} is registered here.", node=node)
        status = self.hub.fleet.status(node) or Status(node)
        now = self.hub.now_ms()
        with state(request).node.reader() as conn:
            name = queries.unit_names(conn, [registration.unit]).get(registration.unit, registration.unit)
        row = fleetviews.node_row(registration, status, name, now, self.settings.silent_ms)
        size = self.settings.attempts_per_page
        day = today(state(request).node)
        days = fleetviews.days_ending(day, self.settings.chart_days)
        bounds = [(fleetviews.day_start_ms(d), fleetviews.day_start_ms(d + timedelta(days=1))) for d in days]
        fleet = self.hub.fleet
        attempts, total = fleet.attempt_page(node, _int_param(request, "page", 1), size)
        traffic = fleetviews.ops_per_day(fleet, node, days)
        before, oks = fleet.successful_syncs(node, bounds[0][0])
        baseline = before if before is not None else registration.registered_ms
        stale = fleetviews.staleness_by_day(oks, baseline, bounds, now)
        pages = max(1, -(-total // size))
        return {
            **self._common(request, actor, "node"),
            "row": row,
            "registration": registration,
            "fingerprint": fingerprint(registration.public_key),
            "attempts": attempts,
            "total": total,
            "page": min(max(1, _int_param(request, "page", 1)), pages),
            "pages": pages,
            "ops_chart": self._ops_chart(days, traffic),
            "lag_chart": self._lag_chart(days, stale),
            "days": [(d, t, s) for d, t, s in zip(days, traffic, stale, strict=True)],
            "revoke_error": None,
        }

    def _ops_chart(self, days: list[date], traffic: list[tuple[int, int]]) -> Markup:
        _ = i18n.gettext_
        svg = charts.lines(
            "chart-ops",
            _("Ops per day, last {n} days", n=len(days)),
            [d.strftime("%d/%m") for d in days],
            [
                charts.Series(_("Received from the node"), [t[0] for t in traffic], IN_COLOUR),
                charts.Series(_("Sent to the node"), [t[1] for t in traffic], OUT_COLOUR),
            ],
            x_label=_("Day"),
            y_label=_("Ops"),
            description=_("The same figures are in the table “By day” below."),
        )
        return Markup(svg)  # noqa: S704  (the chart escapes every text itself)

    def _lag_chart(self, days: list[date], stale: list[float | None]) -> Markup:
        _ = i18n.gettext_
        values, unit = lag_in_sensible_unit(stale)
        svg = charts.lines(
            "chart-lag",
            _("Longest time without a successful sync, per day"),
            [d.strftime("%d/%m") for d in days],
            [charts.Series(unit, values, LAG_COLOUR)],
            x_label=_("Day"),
            y_label=unit,
            description=_("The same figures are in the table “By day” below."),
            empty=_("No sync yet."),
        )
        return Markup(svg)  # noqa: S704

    def node(self, request: Request) -> Response:
        actor = self._admin(request)
        context = self._node_context(request, actor, request.path_params["node"])
        return render(request, "fleet_node.html", context)

    async def revoke(self, request: Request) -> Response:
        actor = self._admin(request)
        form = await request.form(max_files=0, max_fields=10)
        check_csrf(request, form)
        node = request.path_params["node"]
        if self.hub.fleet.registration(node) is None:
            raise NotFound("No node {node} is registered here.", node=node)
        typed = str(form.get("confirm") or "").strip()
        if typed != node:
            context = await run_in_threadpool(self._node_context, request, actor, node)
            context["revoke_error"] = i18n.gettext_(
                "Type the node id {node} exactly to confirm; nothing was revoked.", node=node
            )
            return render(request, "fleet_node.html", context, status=InvalidInput.status)
        await run_in_threadpool(revoke_node, self.hub.city, node)
        return RedirectResponse(f"/fleet/nodes/{node}", status_code=303)

    # --- the routing queue --------------------------------------------------------------------

    def routing(self, request: Request) -> Response:
        actor = self._admin(request)
        statuses = {s.node: s for s in self.hub.fleet.statuses()}
        targets = []
        for r in self.hub.fleet.registrations():
            if r.revoked:
                continue
            status = statuses.get(r.node)
            cursor = (status.cursor if status else None) or 0
            served = (status.served_cursor if status else None) or 0
            targets.append(Target(r.node, r.unit, cursor, served))
        with state(request).node.reader() as conn:
            items, total = cityviews.routing_queue(
                conn, self.hub.replica, targets, self.settings.routing_rows
            )
            names = queries.unit_names(
                conn, sorted({i.receiving_unit for i in items} | {i.handling_unit for i in items})
            )
        context = {
            **self._common(request, actor, "routing"),
            "items": items,
            "total": total,
            "names": names,
        }
        return render(request, "fleet_routing.html", context)

    # --- indicators per unit --------------------------------------------------------------------

    def indicators(self, request: Request) -> Response:
        actor = self._admin(request)
        day = today(state(request).node)
        year = _year(request.query_params.get("year"), day)
        by = (request.query_params.get("by") or "receiving").strip()
        if by not in BY_UNIT:
            raise InvalidInput("Count dossiers by the receiving or the handling unit.", field="by")
        with state(request).node.reader() as conn:
            units = cityviews.unit_indicators(conn, year, day, by)
        total = Counts.total(u.counts for u in units)
        context = {
            **self._common(request, actor, "indicators"),
            "year": year,
            "years": sorted({*range(day.year - 4, day.year + 1), year}, reverse=True),
            "by": by,
            "units": units,
            "total": total,
            "percent": percent,
            "chart": self._indicators_chart(units, year),
            "charted": min(len(units), CHART_UNITS),
        }
        return render(request, "fleet_indicators.html", context)

    def _indicators_chart(self, units: list[UnitIndicators], year: int) -> Markup:
        _ = i18n.gettext_
        worst = sorted(
            units, key=lambda u: (-(u.counts.share(u.counts.overdue) or 0.0), -u.counts.received, u.name)
        )[:CHART_UNITS]
        svg = share_bars(
            "chart-units",
            _("Dossiers received in {year}: share on time and overdue, per unit", year=year),
            [
                Part(_("On time"), ON_TIME),
                Part(_("Overdue"), OVERDUE),
                Part(_("Not yet due or closed without a result"), OTHER),
            ],
            [
                Row(u.name, [c.on_time, c.overdue, c.received - c.on_time - c.overdue])
                for u in worst
                for c in [u.counts]
            ],
            description=_("Units with the largest overdue share first; every unit is in the table below."),
            empty=_("No dossiers received in this year."),
        )
        return Markup(svg)  # noqa: S704  (the chart escapes every text itself)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/fleet", self.fleet, name="fleet"),
            Route("/fleet/table", self.table, name="fleet_table"),
            Route("/fleet/routing", self.routing, name="fleet_routing"),
            Route("/fleet/indicators", self.indicators, name="fleet_indicators"),
            Route("/fleet/nodes/{node}", self.node, name="fleet_node"),
            Route("/fleet/nodes/{node}/revoke", self.revoke, methods=["POST"], name="fleet_revoke"),
        ]


def lag_in_sensible_unit(hours: list[float | None]) -> tuple[list[float | None], str]:
    """The lag chart's values in minutes when the longest is under two hours, in days when it is
    over three days, else in hours; and the unit's translated name (the y axis' label)."""
    longest = max((h for h in hours if h is not None), default=0.0)
    if longest < 2:
        return [None if h is None else round(h * 60, 1) for h in hours], i18n.gettext_("Minutes")
    if longest > 72:
        return [None if h is None else round(h / 24, 2) for h in hours], i18n.gettext_("Days")
    return hours, i18n.gettext_("Hours")


def _year(raw: str | None, day: date) -> int:
    text = (raw or "").strip()
    if not text:
        return day.year
    if not (text.isascii() and text.isdigit() and len(text) == 4) or not FIRST_YEAR <= int(text) <= LAST_YEAR:
        raise InvalidInput(
            "The year must be a number between {first} and {last}.",
            field="year",
            first=FIRST_YEAR,
            last=LAST_YEAR,
        )
    return int(text)


def routes(hub: Hub, settings: FleetSettings) -> list[BaseRoute]:
    return Dashboard(hub, settings).routes()
