"""Dossier pages: receive, list and search, a dossier, its actions, the receipt."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
