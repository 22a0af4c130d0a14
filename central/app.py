"""The city server's web app: the sync endpoints in front of the clerks' pages.

Central is a node too: it reuses the edge's pages, API, auth and i18n (``edge.app.create_app``
on the city's node) so city admins log in and search every dossier of the province, and adds
what only the city serves, in front of them: the sync protocol under ``/sync/v1``, the fleet
dashboard under ``/fleet`` (admins) and Prometheus metrics at ``/metrics`` (an admin's login or the
scrape token: see :mod:`central.metrics`). Typed sync errors reach the edge app's one error
handler, which answers JSON under ``/sync/``.
"""

from __future__ import annotations

from starlette.applications import Starlette

from central import dashboard, openapi, syncapi
from central.fleetviews import FleetSettings
from central.hub import Hub
from central.metrics import Metrics, SyncTimer, scrape_token
from edge.app import create_app
from edge.settings import Settings


def create_central_app(
    settings: Settings, hub: Hub, fleet_settings: FleetSettings | None = None
) -> Starlette:
    """``fleet_settings``: the dashboard's (the silent-node alert threshold …); defaults if None."""
    fleet_settings = fleet_settings or FleetSettings()
    app = create_app(settings, hub.node)
    metrics = Metrics(hub.fleet, fleet_settings, hub.now_ms, scrape_token(hub.node.data_dir))
    app.router.routes[0:0] = [
        *openapi.routes(),
        *syncapi.routes(hub),
        *dashboard.routes(hub, fleet_settings),
        *metrics.routes(),
    ]
    app.add_middleware(SyncTimer, histogram=metrics.sync_seconds)
    app.state.hub = hub
    app.state.metrics = metrics
    return app
