"""The import rules of docs/ARCHITECTURE.md, held by parsing every module with `ast`.

Function-local imports count too: a local import that dodges a cycle is still an import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sync", "schema", "edge", "central", "ops")

# Which of the project's packages each package may import (besides itself).
ALLOWED = {
    "sync": set(),
    "schema": {"sync"},
    "edge": {"schema", "sync"},
    "central": {"edge", "schema", "sync"},
    "ops": {"central", "edge", "schema", "sync"},
}


def modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module name `module` imports, anywhere in its body, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name, node.lineno
            # `from edge import views` imports the submodule edge.views
            for alias in node.names:
                yield f"{name}.{alias.name}", node.lineno


def breaches(package: str) -> list[str]:
    found = []
    for module, path in modules(package):
        for name, line in imported(module, path):
            top = name.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    assert breaches(package) == []


def test_the_rules_are_those_of_the_architecture() -> None:
    # sync imports nothing of the project; schema only sync; edge never central or ops;
    # central never ops; nothing imports ops.
    assert ALLOWED["sync"] == set()
    assert ALLOWED["schema"] == {"sync"}
    assert "central" not in ALLOWED["edge"]
    assert "ops" not in ALLOWED["edge"]
    assert "ops" not in ALLOWED["central"]
    assert all("ops" not in allowed for allowed in ALLOWED.values())


def test_the_check_sees_function_local_imports(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from central import app\n    import ops.cli\n")
    names = {name for name, _ in imported("edge.mod", path)}
    assert {"central", "central.app", "ops.cli"} <= names


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("from ..central import app\nfrom . import web\n")
    names = {name for name, _ in imported("edge.views.mod", path)}
    assert {"edge.central", "edge.views.web"} <= names
