"""Numbered migrations on a real PostgreSQL: the rules of sync.migrations (applied once, each all
or nothing, recorded, a newer database refused), and several processes starting at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from sync.errors import MigrationError, SchemaTooNew
from sync.pgmigrations import Migration, apply, current_version

V1 = Migration(1, "t", "CREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1);")
V2 = Migration(2, "u", "CREATE TABLE u (y TEXT);")


@pytest.fixture
def conn(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as c:
        yield c


def tables(conn) -> set[str]:
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return {r[0] for r in rows}


def test_applies_in_order_once(conn) -> None:
    assert apply(conn, "app", [V1, V2]) == [1, 2]
    assert apply(conn, "app", [V1, V2]) == []
    assert current_version(conn, "app") == 2
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # not run twice
    assert current_version(conn, "other") == 0
    names = conn.execute("SELECT version, name FROM migrations WHERE namespace = 'app' ORDER BY 1").fetchall()
    assert names == [(1, "t"), (2, "u")]


def test_only_new_migrations_run(conn) -> None:
    apply(conn, "app", [V1])
    assert apply(conn, "app", [V1, V2]) == [2]
    assert {"t", "u"} <= tables(conn)


def test_a_failed_migration_leaves_the_previous_version(conn) -> None:
    bad = Migration(2, "bad", "CREATE TABLE v (z INTEGER);\nINSERT INTO nowhere VALUES (1);")
    apply(conn, "app", [V1])
    with pytest.raises(MigrationError, match=r"app migration 2 \(bad\) failed: .*nowhere"):
        apply(conn, "app", [V1, bad])
    assert current_version(conn, "app") == 1
    assert "v" not in tables(conn)  # its first statement was rolled back too


def test_a_callable_step_runs_in_the_transaction(conn) -> None:
    def step(c: psycopg.Connection) -> None:
        c.execute("CREATE TABLE w (a INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        apply(conn, "app", [Migration(1, "w", step)])
    assert "w" not in tables(conn)
    assert current_version(conn, "app") == 0


def test_a_database_newer_than_the_code_is_refused(conn) -> None:
    apply(conn, "app", [V1, V2])
    with pytest.raises(SchemaTooNew, match="version 2, but this software only knows up to version 1"):
        apply(conn, "app", [V1])


@pytest.mark.parametrize("versions", [[2, 1], [1, 1]])
def test_versions_must_ascend(conn, versions) -> None:
    with pytest.raises(MigrationError, match="unique and ascending"):
        apply(conn, "app", [Migration(v, f"m{v}", "SELECT 1;") for v in versions])


def test_a_connection_inside_a_transaction_is_refused(postgres_url) -> None:
    with psycopg.connect(postgres_url) as c, pytest.raises(MigrationError, match="autocommit"):
        apply(c, "app", [V1])


def test_processes_starting_together_run_each_migration_once(postgres_url) -> None:
    """Several city workers start at once on one database: each migration runs exactly once
    (a second run of V1 would insert a second row), and every worker ends at the last version."""
    slow = Migration(3, "slow", "SELECT pg_sleep(0.2); INSERT INTO t VALUES (3);")
    start = threading.Barrier(4)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as c:
                start.wait()
                applied.append(apply(c, "app", [V1, V2, slow]))
                assert current_version(c, "app") == 3
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for run in applied for v in run) == [1, 2, 3]
    with psycopg.connect(postgres_url) as c:
        assert sorted(r[0] for r in c.execute("SELECT x FROM t")) == [1, 3]
