"""The city server's web app: the sync endpoints in front of the clerks' pages.

Central is a node too: it reuses the edge's pages, API, auth and i18n (``edge.app.create_app``
on the city's node) so city admins log in and search every dossier of the province, and adds
what only the city serves, in front of them: the sync protocol under ``/sync/v1``. Typed sync
errors reach the edge app's one error handler, which answers JSON under ``/sync/``.
"""

from __future__ import annotations

from starlette.applications import Starlette

from central import syncapi
from central.hub import Hub
from edge.app import create_app
from edge.settings import Settings


def create_central_app(settings: Settings, hub: Hub) -> Starlette:
    app = create_app(settings, hub.node)
    app.router.routes[0:0] = syncapi.routes(hub)
    app.state.hub = hub
    return app
