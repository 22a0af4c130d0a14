"""The PostgreSQL the tests get (tests/integration/pgcluster.py, fixtures in tests/conftest.py):
a real server, on 127.0.0.1 only, a fresh database per test, and a failure (never a skip) with
one sentence when no server can be had."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pgcluster
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_each_test_gets_a_fresh_empty_database_of_a_real_server(postgres_url, postgres_server) -> None:
    with psycopg.connect(postgres_url) as conn:
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        conn.execute("CREATE TABLE mine (x integer)")
    assert version >= 150000
    assert tables == 0
    with postgres_server.database() as other, psycopg.connect(other) as conn:
        assert other != postgres_url
        assert conn.execute("SELECT to_regclass('mine')").fetchone()[0] is None  # not the other's table


@pytest.mark.skipif(
    bool(os.environ.get(pgcluster.URL_ENV)), reason="an existing server's settings are its own"
)
def test_the_cluster_listens_on_loopback_only_and_not_as_root(postgres_url) -> None:
    with psycopg.connect(postgres_url) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        data = conn.execute("SHOW data_directory").fetchone()[0]
    assert listen == "127.0.0.1"
    assert os.stat(data).st_uid != 0


def test_without_server_binaries_the_tests_fail_with_one_sentence(tmp_path) -> None:
    """No binaries and no MOTCUA_TEST_POSTGRES_URL: the test that needs PostgreSQL errors, with
    a sentence naming what is missing; it is not skipped."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", pgcluster.URL_ENV))}
    env[pgcluster.BINDIR_ENV] = str(empty)
    test = "tests/integration/test_pgcluster.py::test_each_test_gets_a_fresh_empty_database_of_a_real_server"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout
    assert "skipped" not in done.stdout
    assert (
        f"PostgreSQL tests cannot run: {pgcluster.BINDIR_ENV}={empty} holds no 'postgres' binary"
        in done.stdout
    )
