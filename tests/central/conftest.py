"""Fixtures for the central tests: a city, two edges from node files, a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from centralkit import World, city_world

from edge import auth


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> None:
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    with city_world(tmp_path) as w:
        yield w
