"""The unit's Decision 766 indicators, with a chart rendered on the server."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
