"""Sessions that end when the clerk logs out, not when the cookie expires.

Sessions are signed cookies (Starlette's SessionMiddleware): nothing on the server knows them,
so a cookie copied off a shared office PC before its clerk logged out would work until it
expired (``session_hours``). Each session therefore carries a random id and the time of its
login, and the box keeps, in ``sessions.db`` beside its database (its own file, like the audit
log: the node's writer only takes change-log writes):

- the ids of sessions that were logged out, until they would have expired anyway;
- per account, a generation number: a password change moves it on, which ends every other
  session of that account (a number, not a time: a box whose clock falls back to 2000 must not
  lock its clerks out for 26 years).

One indexed lookup per request in a small file. Losing the file (a restored backup) only lets
old cookies live out their expiry, as before.

It also keeps which conflicts (a clerk's action that sync could not apply) each clerk has seen
on the dossier's page: the home page tells them until they have. That is the box's memory of a
clerk's reading, not state of the dossier, so it stays out of the change log (no op per page
view, no replication) and out of the node's database (a page read must not take its one writer
or wait behind a merge). Losing it shows a clerk's lost actions once more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

from sync.db import open_side
from sync.migrations import Migration

SESSIONS_FILE = "sessions.db"

MIGRATIONS = [
    Migration(
        1,
        "sessions",
        """
        CREATE TABLE ended (sid TEXT PRIMARY KEY, until_ms INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE generation (username TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
        """,
    ),
    Migration(
        2,
        "seen conflicts",
        """
        CREATE TABLE seen_conflict (
            username TEXT NOT NULL, node TEXT NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (username, node, seq)
        ) WITHOUT ROWID;
        """,
    ),
]


def now_ms() -> int:
    return int(time.time() * 1000)


class SessionBook:
    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._conn = open_side(path, "sessions", MIGRATIONS)

    def end(self, sid: str, until_ms: int) -> None:
        """Logged out: ``sid`` opens nothing from now on (kept until it would have expired)."""
        with self._lock:
            self._conn.execute("DELETE FROM ended WHERE until_ms < ?", (now_ms(),))
            self._conn.execute("INSERT OR REPLACE INTO ended (sid, until_ms) VALUES (?, ?)", (sid, until_ms))

    def generation(self, username: str) -> int:
        """What a new session of ``username`` carries."""
        with self._lock:
            row = self._conn.execute("SELECT n FROM generation WHERE username = ?", (username,)).fetchone()
        return 0 if row is None else int(row[0])

    def end_all(self, username: str) -> int:
        """Every session of ``username`` ends; returns the generation a new one carries."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO generation (username, n) VALUES (?, 1) "
                "ON CONFLICT (username) DO UPDATE SET n = n + 1",
                (username,),
            )
            row = self._conn.execute("SELECT n FROM generation WHERE username = ?", (username,)).fetchone()
        return int(row[0])

    def valid(self, sid: str, username: str, generation: int) -> bool:
        if self.generation(username) != generation:
            return False
        with self._lock:
            return self._conn.execute("SELECT 1 FROM ended WHERE sid = ?", (sid,)).fetchone() is None

    def mark_seen(self, username: str, conflicts: Iterable[tuple[str, int]]) -> None:
        """``username`` has seen these conflicts (node, seq of the op kept aside). Idempotent."""
        rows = [(username, node, seq) for node, seq in conflicts]
        if not rows:
            return
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO seen_conflict (username, node, seq) VALUES (?, ?, ?)", rows
            )

    def seen(self, username: str) -> set[tuple[str, int]]:
        """The conflicts ``username`` has seen: (node, seq)."""
        with self._lock:
            rows = self._conn.execute("SELECT node, seq FROM seen_conflict WHERE username = ?", (username,))
            return {(str(node), int(seq)) for node, seq in rows.fetchall()}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
