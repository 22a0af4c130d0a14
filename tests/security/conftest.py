"""Fixtures for the attack tests: a commune's node and app, a city with two communes behind a real
server, and the three checks every attack test makes: refused, audited, nothing changed.

Test modules cannot import a conftest, so the shared checks are fixtures (``audited``,
``snapshot``); the node and city fixtures mirror tests/edge's and tests/central's on purpose
(those conftests are not visible from here), built from the same kits (edgekit, centralkit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from centralkit import World, city_world
from edgekit import ACCOUNTS, PASSWORD, UNIT
from starlette.testclient import TestClient

from edge import auth
from edge.accounts import add_account
from edge.app import create_app
from edge.audit import Entry
from edge.node import Node, init_node
from edge.settings import load


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> None:
    """argon2 at its lowest cost: these tests log in (and fail to) hundreds of times."""
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


# --- a commune's node, in process -------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """Phường Ninh Kiều's box with edgekit's accounts, one of them (canbo_caikhe) of Cái Khế."""
    n = init_node(tmp_path / "node", UNIT)
    for username, (name, role, unit) in ACCOUNTS.items():
        add_account(n, username, name, role, PASSWORD, unit)
    yield n
    n.close()


@pytest.fixture
def app(node: Node):
    return create_app(load(node.data_dir), node, background=False)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


# --- the three checks --------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What an attack must leave as it was: the log (count and vector), the scans, and the
    folded state of the entities the test names."""

    ops: int
    vector: dict[str, int]
    blobs: list[str]
    states: dict[tuple[str, str], Any] = field(default_factory=dict)


def take(node: Node, *entities: tuple[str, str]) -> Snapshot:
    replica = node.replica
    return Snapshot(
        replica.op_count(),
        dict(replica.vector()),
        sorted(node.blobs.digests()),
        {(kind, entity): replica.state(kind, entity) for kind, entity in entities},
    )


@pytest.fixture
def snapshot() -> Callable[..., Snapshot]:
    """``before = snapshot(node, ("dossier", id))`` … ``assert snapshot(node, ("dossier", id)) == before``."""
    return take


def find_audited(
    node: Node, event: str, *, actor: str | None = None, path: str | None = None, since_id: int = 0
) -> Entry:
    """The newest audit entry for ``event`` (and actor, path if given) written after ``since_id``."""
    entries = [e for e in node.audit.entries(event=event, limit=10_000) if e.id > since_id]
    matching = [
        e for e in entries if (actor is None or e.actor == actor) and (path is None or e.path == path)
    ]
    everything = [(e.event, e.actor, e.path) for e in node.audit.entries(limit=20)]
    assert matching, f"no {event} entry by {actor} on {path} in the audit log; newest: {everything}"
    return matching[0]


class Audited:
    """``audited(node, "csrf", actor="canbo01", path=...)`` asserts the entry is there;
    ``audited.mark(node)`` then ``audited.since(node, mark)`` counts what came after."""

    def __call__(self, node: Node, event: str, **match: Any) -> Entry:
        return find_audited(node, event, **match)

    @staticmethod
    def mark(node: Node) -> int:
        newest = node.audit.entries(limit=1)
        return newest[0].id if newest else 0

    @staticmethod
    def since(node: Node, mark: int, event: str | None = None) -> list[Entry]:
        return [e for e in node.audit.entries(event=event, limit=10_000) if e.id > mark]


@pytest.fixture
def audited() -> Audited:
    return Audited()


# --- a city with two communes behind a real server ------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Cần Thơ's city serving on loopback, with Ninh Kiều and Cái Khế registered and their boxes
    made from the node files city IT hands out (centralkit.city_world)."""
    with city_world(tmp_path) as w:
        yield w
