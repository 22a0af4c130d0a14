"""Read connections are pooled (a web page took three new connections, each with a cold page
cache): a pooled connection must read exactly what a new one would."""

from __future__ import annotations

import sqlite3

import pytest
from toydoc import write

from sync.replica import READERS_KEPT


def op_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM sync_op").fetchone()[0])


def test_a_kept_connection_is_reused_and_sees_every_later_commit(make_replicas) -> None:
    (a,) = make_replicas("a")
    with a.reading() as first:
        assert op_count(first) == 0
    write(a, "d1", "create", {"title": "t"})
    with a.reading() as again:
        assert again is first
        assert op_count(again) == 1


def test_a_connection_returned_inside_a_transaction_is_rolled_back_first(make_replicas) -> None:
    (a,) = make_replicas("a")
    with a.reading() as conn:
        conn.execute("BEGIN")
        assert op_count(conn) == 0  # a snapshot from before the write below
    write(a, "d1", "create", {"title": "t"})
    with a.reading() as conn:
        assert not conn.in_transaction
        assert op_count(conn) == 1


def test_a_connection_that_failed_is_not_kept(make_replicas) -> None:
    (a,) = make_replicas("a")
    with pytest.raises(sqlite3.OperationalError), a.reading() as failed:
        failed.execute("SELECT * FROM no_such_table")
    with a.reading() as conn:
        assert conn is not failed
    with pytest.raises(sqlite3.ProgrammingError):
        failed.execute("SELECT 1")  # closed


def test_a_refusal_that_is_not_sqlites_keeps_the_connection(make_replicas) -> None:
    (a,) = make_replicas("a")
    with pytest.raises(LookupError), a.reading() as conn:
        raise LookupError("a dossier of another unit")
    with a.reading() as again:
        assert again is conn


def test_at_most_a_few_idle_connections_are_kept_and_close_ends_them(make_replicas) -> None:
    (a,) = make_replicas("a")
    held = [a.reading() for _ in range(READERS_KEPT + 3)]
    conns = [cm.__enter__() for cm in held]
    assert len({id(c) for c in conns}) == READERS_KEPT + 3  # busy ones are never shared
    for cm in held:
        cm.__exit__(None, None, None)
    closed = 0
    for conn in conns:
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError:
            closed += 1
    assert closed == 3
    a.close()
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
