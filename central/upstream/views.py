"""City IT's upstream page (admins), and what a dossier's page says of the portal.

    GET  /fleet/upstream          per adapter: backlog, oldest waiting, last success, error
                                  rate; dossiers blocked by configuration; dead letters with the
                                  portal's message and a "send again" button. htmx refreshes
                                  the table every 15 s; without JavaScript, reload.
    GET  /fleet/upstream/table    the table alone (what the page polls)
    POST /fleet/upstream/retry    ``dossier`` (one) or ``all`` (every dead letter); CSRF
    GET  /fleet/upstream/dossiers/{id}   every request sent upstream for one dossier (printable),
                                  and whether the receipts' chain verifies with the city's key

:func:`dossier_line` is what the city's dossier page shows under its header
(``central/templates/_dossier_extra.html``, a Jinja global the city registers).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from central.dashboard import duration, short
from central.upstream.receipts import verify_receipts
from central.upstream.store import BLOCKED, DEAD, UpstreamStore
from edge import queries
from edge.auth import Actor
from edge.dossiers import today
from edge.errors import NotFound
from edge.i18n import TIMEZONE
from edge.views.reports import percent
from edge.web import check_csrf, current_actor, render, require_role, state
from schema.status import Status
from sync.errors import BadSignature
from sync.identity import fingerprint
from sync.replica import Replica

DEAD_SHOWN = 200
"""Dead letters listed on the page (the count says when there are more)."""


@dataclass(frozen=True)
class Line:
    """One adapter's word on one dossier."""

    adapter: str
    kind: str
    synced_ms: int | None
    synced_status: int | None
    waiting: str | None
    """"wait", "blocked", "dead" or None (nothing waits)."""
    error_code: str | None
    message: str | None


def dossier_lines(store: UpstreamStore, dossier: str) -> list[Line]:
    out = []
    items = {(i.adapter, i.op): i for i in store.items() if i.dossier == dossier}
    for config in store.adapters():
        held = store.delivered(config.name, dossier)
        item = items.get((config.name, "sync")) or items.get((config.name, "progress"))
        out.append(
            Line(
                adapter=config.name,
                kind=config.kind,
                synced_ms=held.synced_ms if held else None,
                synced_status=held.synced_status if held and held.synced_ms else None,
                waiting=item.state if item else None,
                error_code=item.error_code if item else None,
                message=item.message if item else None,
            )
        )
    return out


@dataclass(frozen=True)
class SyncedShare:
    """Decision 766's "synced to the portal" for one receiving unit and year, from receipts."""

    unit: str
    name: str
    received: int
    synced: int


def synced_shares(conn: sqlite3.Connection, synced: set[str], year: int) -> list[SyncedShare]:
    """Per receiving unit, the dossiers received in ``year`` and how many of them a portal
    accepted (:func:`central.upstream.receipts.accepted_dossiers`), units by name."""
    start = int(datetime(year, 1, 1, tzinfo=TIMEZONE).timestamp() * 1000)
    end = int(datetime(year + 1, 1, 1, tzinfo=TIMEZONE).timestamp() * 1000)
    counts: dict[str, list[int]] = {}
    for unit, dossier in conn.execute(
        "SELECT receiving_unit, id FROM dossiers WHERE received_at >= ? AND received_at < ?", (start, end)
    ):
        pair = counts.setdefault(unit, [0, 0])
        pair[0] += 1
        pair[1] += dossier in synced
    names = queries.unit_names(conn, sorted(counts))
    rows = [SyncedShare(unit, names.get(unit, unit), n, k) for unit, (n, k) in counts.items()]
    return sorted(rows, key=lambda r: (r.name, r.unit))


def _code_of(replica: Replica, dossier: str) -> str:
    found = replica.state("dossier", dossier)
    return str(found.get("code", dossier)) if found else dossier


@dataclass
class UpstreamPage:
    store: UpstreamStore
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    def _admin(self, request: Request) -> Actor:
        actor = current_actor(request)
        require_role(actor, "admin")
        return actor

    def _context(self, request: Request, actor: Actor) -> dict[str, Any]:
        replica = state(request).node.replica
        dead = self.store.items(state=DEAD)
        blocked = self.store.items(state=BLOCKED)
        year = today(state(request).node).year
        with state(request).node.reader() as conn:
            shares = synced_shares(conn, self.store.synced_dossiers(), year)
        reasons: dict[str, int] = {}
        for item in blocked:
            reasons[item.message or ""] = reasons.get(item.message or "", 0) + 1
        return {
            "actor": actor,
            "section": "upstream",
            "now_ms": self.now_ms(),
            "duration": duration,
            "short": short,
            "stats": self.store.stats(self.now_ms()),
            "dead": [(item, _code_of(replica, item.dossier)) for item in dead[:DEAD_SHOWN]],
            "dead_total": len(dead),
            "blocked": sorted(reasons.items(), key=lambda pair: -pair[1]),
            "year": year,
            "shares": shares,
            "percent": percent,
            "share_total": SyncedShare(
                "", "", sum(r.received for r in shares), sum(r.synced for r in shares)
            ),
        }

    def page(self, request: Request) -> Response:
        actor = self._admin(request)
        return render(request, "upstream.html", self._context(request, actor))

    def table(self, request: Request) -> Response:
        actor = self._admin(request)
        return render(request, "_upstream_table.html", self._context(request, actor))

    async def retry(self, request: Request) -> Response:
        self._admin(request)
        form = await request.form()
        check_csrf(request, form)
        dossier = str(form.get("dossier") or "")
        if dossier:
            self.store.retry(self.now_ms(), dossier=dossier)
        elif form.get("all"):
            self.store.retry(self.now_ms(), all_dead=True)
        return RedirectResponse("/fleet/upstream", status_code=303)

    def receipts(self, request: Request) -> Response:
        """Everything sent upstream for one dossier, printable, with the chain's verification."""
        actor = self._admin(request)
        dossier = request.path_params["dossier"]
        node = state(request).node
        found = node.replica.state("dossier", dossier)
        if found is None:
            raise NotFound("No dossier {id} here.", id=dossier)
        chain = self.store.receipts()
        try:
            verified: int | None = verify_receipts(chain, node.identity.public_raw)
            broken = None
        except BadSignature as exc:
            verified, broken = None, str(exc)
        context = {
            "actor": actor,
            "section": "upstream",
            "dossier": dossier,
            "code": str(found.get("code", dossier)),
            "records": [r for r in chain if r.receipt.dossier == dossier],
            "verified": verified,
            "broken": broken,
            "city_key": fingerprint(node.identity.public_raw),
            "status_label": lambda n: Status(n).vi if 1 <= n <= 10 else "",
        }
        return render(request, "upstream_receipts.html", context)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/fleet/upstream/dossiers/{dossier}", self.receipts, name="upstream_receipts"),
            Route("/fleet/upstream", self.page, name="upstream"),
            Route("/fleet/upstream/table", self.table, name="upstream_table"),
            Route("/fleet/upstream/retry", self.retry, methods=["POST"], name="upstream_retry"),
        ]


class UpstreamCollector(Collector):
    """Prometheus gauges per adapter (label ``adapter``), computed at scrape time::

    motcua_upstream_backlog                     dossier items waiting (blocked included)
    motcua_upstream_blocked                     waiting on a configuration error
    motcua_upstream_dead_letters                refused by the portal
    motcua_upstream_synced                      dossiers the portal holds
    motcua_upstream_oldest_waiting_seconds      age of the oldest waiting item
    motcua_upstream_last_success_timestamp_seconds
    motcua_upstream_requests_last_hour{outcome="ok"|"error"}
    """

    def __init__(self, store: UpstreamStore, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.now_ms = now_ms

    def collect(self) -> Iterable[Metric]:
        now = self.now_ms()

        def gauge(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["adapter", *(extra or [])])

        backlog = gauge("motcua_upstream_backlog", "Dossier items waiting to be sent upstream.")
        blocked = gauge("motcua_upstream_blocked", "Items waiting on a configuration error.")
        dead = gauge("motcua_upstream_dead_letters", "Items the portal refused.")
        synced = gauge("motcua_upstream_synced", "Dossiers the portal holds.")
        oldest = gauge("motcua_upstream_oldest_waiting_seconds", "Age of the oldest waiting item.")
        last = gauge("motcua_upstream_last_success_timestamp_seconds", "Last accepted send.")
        requests = gauge("motcua_upstream_requests_last_hour", "Requests in the last hour.", ["outcome"])
        for s in self.store.stats(now):
            backlog.add_metric([s.name], s.backlog)
            blocked.add_metric([s.name], s.blocked)
            dead.add_metric([s.name], s.dead)
            synced.add_metric([s.name], s.synced)
            if s.oldest_waiting_ms is not None:
                oldest.add_metric([s.name], max(0, now - s.oldest_waiting_ms) / 1000)
            if s.last_success_ms is not None:
                last.add_metric([s.name], s.last_success_ms / 1000)
            requests.add_metric([s.name, "ok"], s.requests_1h - s.errors_1h)
            requests.add_metric([s.name, "error"], s.errors_1h)
        yield from (backlog, blocked, dead, synced, oldest, last, requests)
