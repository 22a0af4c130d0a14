"""WAL checkpoints from a thread of their own (sync/checkpoint.py)."""

from __future__ import annotations

import sqlite3
import threading

from toydoc import open_replica, write

from sync.checkpoint import BACKSTOP_PAGES, DEFAULT_PAGES, checkpoint
from sync.identity import Identity


def autocheckpoint(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_the_thread_checkpoints_while_writers_commit_without_it(tmp_path):
    replica = open_replica(tmp_path / "r.db", Identity.generate("ua"))
    checkpoints = replica.checkpointer(interval_s=0.01)
    checkpoints.start()
    try:
        # While it runs, a writer's commit only checkpoints past the backstop.
        assert autocheckpoint(replica.conn) == BACKSTOP_PAGES
        for i in range(300):
            write(replica, f"d{i}", "create", {"title": f"hồ sơ {i}" * 20})
        done = threading.Event()
        while checkpoints.last is None or checkpoints.last.checkpointed == 0:
            done.wait(0.01)
        assert checkpoints.runs >= 1
    finally:
        checkpoints.stop()
    assert autocheckpoint(replica.conn) == DEFAULT_PAGES
    replica.close()

    reopened = open_replica(tmp_path / "r.db", Identity.generate("ua"))
    assert reopened.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(reopened.states("doc")) == 300
    reopened.close()


def test_a_passive_checkpoint_does_not_wait_for_an_open_write(tmp_path):
    replica = open_replica(tmp_path / "r.db", Identity.generate("ua"))
    write(replica, "d0", "create", {"title": "a"})
    other = sqlite3.connect(tmp_path / "r.db", isolation_level=None, timeout=0.1)
    with replica.write() as w:
        w.append("doc", "d1", "create", {"title": "b"})
        # A writer holds the write lock: the checkpoint copies what it can and returns.
        result = checkpoint(other)
        assert result.wal_pages >= result.checkpointed >= 0
    other.close()
    assert replica.state("doc", "d1") is not None
    replica.close()


def test_stop_without_start_and_twice_is_harmless(tmp_path):
    replica = open_replica(tmp_path / "r.db", Identity.generate("ua"))
    checkpoints = replica.checkpointer()
    checkpoints.stop()
    checkpoints.start()
    checkpoints.stop()
    checkpoints.stop()
    assert autocheckpoint(replica.conn) == DEFAULT_PAGES
    replica.close()
