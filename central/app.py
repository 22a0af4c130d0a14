"""The city server's web app: the sync endpoints in front of the clerks' pages.

Central is a node too: it reuses the edge's pages, API, auth and i18n (``edge.app.create_app``
on the city's node) so city admins log in and search every dossier of the province, and adds
what only the city serves, in front of them: the sync protocol under ``/sync/v1``, the fleet
dashboard under ``/fleet`` (admins) and Prometheus metrics at ``/metrics`` (an admin's login or the
scrape token: see :mod:`central.metrics`). Typed sync errors reach the edge app's one error
handler, which answers JSON under ``/sync/`` and has the city's refusals of a node audited: the
city hands edge these through an :class:`edge.web.Extension`, with its own templates.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request

from central import dashboard, openapi, syncapi
from central.fleetviews import FleetSettings
from central.hub import Hub
from central.metrics import Metrics, SyncTimer, scrape_token
from central.upstream.store import UpstreamStore
from central.upstream.views import UpstreamCollector, UpstreamPage, dossier_lines
from edge.app import create_app
from edge.settings import Settings
from edge.web import Extension, audit
from sync import wire
from sync.errors import SyncError

TEMPLATES = Path(__file__).parent / "templates"
SYNC = "/sync/"


def audit_sync_refusal(request: Request, exc: Exception) -> None:
    """A node's sync request the city refused goes to the audit log, with the node it named."""
    if isinstance(exc, SyncError) and 400 <= exc.status < 500 and request.url.path.startswith(SYNC):
        audit(
            request,
            "sync_refused",
            code=exc.code,
            status=exc.status,
            message=exc.message,
            actor=request.headers.get(wire.H_NODE),
        )


EXTENSION = Extension(
    templates=(TEMPLATES,), machine_paths=(SYNC,), sync_badge=False, on_error=audit_sync_refusal
)


def create_central_app(
    settings: Settings,
    hub: Hub,
    fleet_settings: FleetSettings | None = None,
    upstream: UpstreamStore | None = None,
) -> Starlette:
    """``fleet_settings``: the dashboard's (the silent-node alert threshold …); defaults if None."""
    fleet_settings = fleet_settings or FleetSettings()
    app = create_app(settings, hub.node, extension=EXTENSION)
    metrics = Metrics(hub.fleet, fleet_settings, hub.now_ms, scrape_token(hub.node.data_dir))
    app.router.routes[0:0] = [
        *openapi.routes(),
        *syncapi.routes(hub),
        *dashboard.routes(hub, fleet_settings),
        *metrics.routes(),
    ]
    if upstream is not None:
        page = UpstreamPage(upstream)
        app.router.routes[0:0] = page.routes()
        metrics.registry.register(UpstreamCollector(upstream, hub.now_ms))
        app.state.motcua.templates.env.globals["upstream_lines"] = partial(dossier_lines, upstream)
    app.add_middleware(SyncTimer, histogram=metrics.sync_seconds)
    app.state.hub = hub
    app.state.upstream = upstream
    app.state.metrics = metrics
    return app
