"""Settings and fixtures for the whole suite.

Hypothesis: no deadlines and no "too slow" health check. The suite runs on two shared cores
next to real servers, so timing varies by an order of magnitude; the properties are about
behaviour, and the benchmarks under bench/ are where speed is measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    import pgcluster

settings.register_profile(
    "motcua", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("motcua")


# --- a real PostgreSQL (tests/integration/pgcluster.py) -------------------------------------------
# One server per test process (under xdist, one per worker), started at the first test that asks
# for it; each test that asks gets a fresh database of its own. When no server can be had, the
# tests that need one FAIL with one sentence saying what is missing: never a skip.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pgcluster.Server]:
    import pgcluster

    try:
        server = pgcluster.server()
    except pgcluster.Unavailable as exc:
        pytest.fail(f"PostgreSQL tests cannot run: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: pgcluster.Server) -> Iterator[str]:
    """The URL of a fresh, empty database (its role may create tables), dropped after the test."""
    with postgres_server.database() as url:
        yield url
