"""Numbered migrations: applied once, each all or nothing, refused when the file is newer."""

from __future__ import annotations

import sqlite3

import pytest
from toydoc import open_replica, write

from sync.db import connect, install
from sync.errors import MigrationError, SchemaTooNew
from sync.identity import Identity
from sync.migrations import Migration, apply, current_version, from_directory

V1 = Migration(1, "t", "CREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1);")
V2 = Migration(2, "u", "CREATE TABLE u (y TEXT);")


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "m.db")
    yield c
    c.close()


def tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_applies_in_order_once(conn) -> None:
    assert apply(conn, "app", [V1, V2]) == [1, 2]
    assert apply(conn, "app", [V1, V2]) == []
    assert current_version(conn, "app") == 2
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # not run twice
    assert current_version(conn, "other") == 0


def test_only_new_migrations_run(conn) -> None:
    apply(conn, "app", [V1])
    assert apply(conn, "app", [V1, V2]) == [2]
    assert {"t", "u"} <= tables(conn)


def test_failed_migration_leaves_the_previous_version(conn) -> None:
    bad = Migration(2, "bad", "CREATE TABLE v (z);\nINSERT INTO nowhere VALUES (1);")
    apply(conn, "app", [V1])
    with pytest.raises(MigrationError, match="app migration 2"):
        apply(conn, "app", [V1, bad])
    assert current_version(conn, "app") == 1
    assert "v" not in tables(conn)  # its first statement was rolled back too


def test_callable_step_runs_in_the_transaction(conn) -> None:
    def step(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE w (a)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        apply(conn, "app", [Migration(1, "w", step)])
    assert "w" not in tables(conn)
    assert current_version(conn, "app") == 0


def test_database_newer_than_the_code_is_refused(conn) -> None:
    apply(conn, "app", [V1, V2])
    with pytest.raises(SchemaTooNew, match="upgrade"):
        apply(conn, "app", [V1])


@pytest.mark.parametrize("versions", [[2, 1], [1, 1]])
def test_versions_must_ascend(conn, versions) -> None:
    with pytest.raises(MigrationError, match="unique and ascending"):
        apply(conn, "app", [Migration(v, f"m{v}", "SELECT 1;") for v in versions])


def test_incomplete_sql_is_refused(conn) -> None:
    with pytest.raises(MigrationError, match="incomplete"):
        apply(conn, "app", [Migration(1, "half", "CREATE TABLE t (x);\nCREATE TABLE u (")])
    assert current_version(conn, "app") == 0


def test_from_directory(tmp_path) -> None:
    (tmp_path / "0002_second.sql").write_text("CREATE TABLE b (x);")
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x);")
    found = from_directory(tmp_path)
    assert [(m.version, m.name) for m in found] == [(1, "first"), (2, "second")]
    (tmp_path / "readme.sql").write_text("")
    with pytest.raises(MigrationError, match="number"):
        from_directory(tmp_path)


def test_sync_schema_install_is_idempotent_and_replica_runs_domain_migrations(tmp_path) -> None:
    ident = Identity.generate("u1")
    r = open_replica(tmp_path / "r.db", ident)
    write(r, "d1", "create", {"title": "t"})
    r.close()
    c = connect(tmp_path / "r.db")
    try:
        install(c)  # again: nothing to do, nothing lost
        assert c.execute("SELECT count(*) FROM sync_op").fetchone()[0] == 1
    finally:
        c.close()
    from toydoc import KINDS

    from sync.replica import Replica

    r = Replica(tmp_path / "r.db", ident, KINDS, migrate=lambda c: apply(c, "domain", [V1]))
    try:
        assert r.conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        assert r.op_count() == 1
    finally:
        r.close()
