"""The clerks' pages. Each module contributes its routes; all HTML, every form usable without JS."""

from __future__ import annotations

from starlette.routing import BaseRoute

from edge.views import audit, dossiers, papers, reads, reports, session, sync


def routes() -> list[BaseRoute]:
    return [
        *session.routes(),
        *dossiers.routes(),
        *papers.routes(),
        *reports.routes(),
        *sync.routes(),
        *audit.routes(),
        *reads.routes(),
    ]
