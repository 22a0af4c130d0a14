"""A node on disk: upgrades snapshot the database before migrating it."""

import sqlite3

from edge.node import init_node, open_node
from schema import db as schema_db
from sync.migrations import Migration


def test_an_upgrade_copies_the_database_aside_before_migrating(tmp_path, monkeypatch):
    node = init_node(tmp_path / "n", "31135")
    ops_before = node.replica.op_count()
    node.close()
    assert not list((tmp_path / "n").glob("pre-upgrade-*.db"))

    newer = [*schema_db.MIGRATIONS, Migration(999, "probe", "CREATE TABLE upgrade_probe (x INTEGER);")]
    monkeypatch.setattr(schema_db, "MIGRATIONS", newer)
    monkeypatch.setattr("edge.node.SCHEMA_MIGRATIONS", newer)
    node = open_node(tmp_path / "n")
    try:
        snapshot = node.upgrade_snapshot
        assert snapshot is not None
        assert snapshot.exists()
        assert node.replica.conn.execute("SELECT count(*) FROM upgrade_probe").fetchone() == (0,)
    finally:
        node.close()
    copy = sqlite3.connect(snapshot)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {r[0] for r in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "upgrade_probe" not in tables
        assert copy.execute("SELECT count(*) FROM sync_op").fetchone() == (ops_before,)
    finally:
        copy.close()


def test_no_snapshot_when_nothing_is_due(tmp_path):
    init_node(tmp_path / "n", "31135").close()
    node = open_node(tmp_path / "n")
    node.close()
    assert node.upgrade_snapshot is None
