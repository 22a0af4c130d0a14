"""Fixtures for the edge app: a real node on disk, real accounts, a test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edgekit import ACCOUNTS, PASSWORD, UNIT
from starlette.testclient import TestClient

from edge import auth
from edge.accounts import add_account
from edge.app import create_app
from edge.node import Node, init_node
from edge.settings import load


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> None:
    """argon2 at its lowest cost: tests log in hundreds of times."""
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def node(tmp_path) -> Iterator[Node]:
    n = init_node(tmp_path / "node", UNIT)
    for username, (name, role, unit) in ACCOUNTS.items():
        add_account(n, username, name, role, PASSWORD, unit)
    yield n
    n.close()


@pytest.fixture
def app(node):
    return create_app(load(node.data_dir), node)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c
