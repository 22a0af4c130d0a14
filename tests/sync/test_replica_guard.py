"""The change log is the only write path: SQLite itself refuses other writes to domain tables."""

import sqlite3
from dataclasses import replace

import pytest
from toydoc import DOC

from sync.identity import Identity
from sync.replica import Replica


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, title TEXT)")


def _project(conn, changed):
    conn.executemany(
        "INSERT INTO docs (id, title) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title",
        [(entity, state.get("title")) for entity, state in changed],
    )


@pytest.fixture
def replica(tmp_path):
    r = Replica(
        tmp_path / "r.db", Identity.generate("31135"), [replace(DOC, project=_project)], migrate=_migrate
    )
    yield r
    r.close()


def test_projectors_may_write_domain_tables(replica):
    with replica.write() as w:
        w.append("doc", "d1", "create", {"title": "Tờ khai"})
    assert replica.conn.execute("SELECT title FROM docs WHERE id = 'd1'").fetchone() == ("Tờ khai",)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO docs (id, title) VALUES ('x', 'bypass')",
        "UPDATE docs SET title = 'bypass'",
        "DELETE FROM docs",
    ],
)
def test_a_write_that_bypasses_the_log_is_refused_and_rolls_back(replica, statement):
    with replica.write() as w:
        w.append("doc", "d1", "create", {"title": "Tờ khai"})
    before = (replica.op_count(), replica.state_digest())

    def bypass() -> None:
        with replica.write() as w:
            w.append("doc", "d2", "create", {"title": "second"})
            w.conn.execute(statement)

    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        bypass()
    assert (replica.op_count(), replica.state_digest()) == before
    assert replica.conn.execute("SELECT id, title FROM docs").fetchall() == [("d1", "Tờ khai")]
