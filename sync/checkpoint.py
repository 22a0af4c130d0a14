"""WAL checkpoints off the writers' path.

SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past
``wal_autocheckpoint`` pages: that commit copies every page of the WAL back into the database and
fsyncs it, so one clerk's receipt or one box's push pays for everyone's writes since the last
checkpoint (at the city, most of a push's COMMIT time; docs/BENCHMARKS.md, issue 10).

A :class:`Checkpointer` runs passive checkpoints from a thread and a connection of its own
while a node serves, and raises the writer's automatic threshold to :data:`BACKSTOP_PAGES`, a
backstop for when the thread falls behind. A passive checkpoint never waits for a writer or a
reader and never blocks one; it copies what no reader still needs (litestream holds its own read
transaction, so it still sees every frame it has not replicated). Durability is unchanged: a
commit is durable in the WAL (``synchronous = FULL``) whether or not it was checkpointed.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sync.db import connect

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 16_384
"""The writer's own automatic checkpoint while a checkpointer runs (64 MiB of 4 KiB pages)."""
DEFAULT_PAGES = 1_000
"""SQLite's default threshold, restored when the checkpointer stops."""


@dataclass(frozen=True)
class Result:
    """What one checkpoint did, as ``PRAGMA wal_checkpoint`` reports it."""

    busy: bool
    wal_pages: int
    checkpointed: int


def checkpoint(conn: sqlite3.Connection) -> Result:
    """One passive checkpoint on ``conn`` (never blocks a writer or a reader)."""
    busy, wal_pages, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return Result(bool(busy), int(wal_pages), int(checkpointed))


class Checkpointer:
    """A thread that checkpoints one database every ``interval_s`` seconds while it runs."""

    def __init__(
        self, path: str | Path, autocheckpoint: Callable[[int], None], *, interval_s: float = 1.0
    ) -> None:
        """``autocheckpoint(pages)`` sets the writer connection's own threshold."""
        self.path = Path(path)
        self.autocheckpoint = autocheckpoint
        self.interval_s = interval_s
        self.runs = 0
        self.last: Result | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self.autocheckpoint(BACKSTOP_PAGES)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after a last checkpoint; the writer checkpoints by itself again."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        with contextlib.suppress(sqlite3.ProgrammingError):  # the writer was closed first
            self.autocheckpoint(DEFAULT_PAGES)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                stopping = self._stop.wait(self.interval_s)
                try:
                    if conn is None:
                        conn = connect(self.path)
                        # A checkpoint copies WAL frames to the file without the page cache.
                        conn.execute("PRAGMA cache_size = -256")
                    self.last = checkpoint(conn)
                    self.runs += 1
                except sqlite3.Error as exc:
                    # A full or vanished disk: the writer reports that to the clerk; this
                    # thread tries again next time, on a new connection.
                    log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
                    if conn is not None:
                        conn.close()
                        conn = None
                if stopping:
                    return
        finally:
            if conn is not None:
                conn.close()
