"""sync's public names are re-exported from `sync/__init__.py` (after httpx's test of the same name)."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import sync

ROOT = Path(__file__).resolve().parents[2]
USERS = ("schema", "edge", "central", "ops")


def imported_from_sync_modules() -> set[tuple[str, str]]:
    """(module, name) for every `from sync.<module> import name` in the packages using sync."""
    found = set()
    for package in USERS:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 0
                    and (node.module or "").startswith("sync.")
                ):
                    found.update((node.module or "", alias.name) for alias in node.names)
    return found


def test_all_imports_are_exported() -> None:
    public = [
        name
        for name, value in vars(sync).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]
    assert sorted(sync.__all__) == sorted(public)


def test_every_name_other_packages_import_is_public() -> None:
    missing = sorted(
        f"{module}.{name}" for module, name in imported_from_sync_modules() if name not in sync.__all__
    )
    # A name imported from sync's modules by schema, edge, central or ops is part of sync's
    # public surface: add it to sync/__init__.py (and to __all__).
    assert missing == []


def test_exports_are_the_modules_own_objects() -> None:
    for module, name in imported_from_sync_modules():
        source = __import__(module, fromlist=[name])
        assert getattr(sync, name) is getattr(source, name), f"{module}.{name}"
