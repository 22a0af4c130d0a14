"""``DIR/upstream.db``: the city's upstream state, beside (never inside) the replicated log.

Not replicated and not the node's database, so the sender, the ``motcua upstream`` commands
and the web page may all write it (SQLite WAL, ``busy_timeout``), while motcua.db keeps its one
writer. Tables:

    adapter   name, kind (dvcqg | lgsp), url, username, secret file, rate limit
    code      the portal's codes of our units (electronic identifier) and sectors
    cursor    per adapter, the outbox serial taken into its queue so far
    queue     per (adapter, dossier, op): what waits, its newest stamp, tries, next try, state
              (wait | blocked: a configuration error | dead: the portal refused it), the last
              error's portal code and message
    portal    per (adapter, dossier): what the portal holds: its MaHoSo, whether it was created
              (no | unknown: a create whose answer never came | yes), the stamp and status
              delivered, when
    receipt   every request, hash-chained and signed (central/upstream/receipts.py)

Credentials are not here: each adapter's secret is its own file ``DIR/upstream/NAME.secret``,
mode 0600 (:func:`write_secret`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from central.upstream import receipts
from central.upstream.mapping import Codes
from central.upstream.outbox import PROGRESS, SYNC

UPSTREAM_FILE = "upstream.db"
SECRETS_DIR = "upstream"

WAIT, BLOCKED, DEAD = "wait", "blocked", "dead"
NO, UNKNOWN, YES = "no", "unknown", "yes"

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS adapter (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    username TEXT NOT NULL,
    secret_file TEXT NOT NULL,
    rate_per_s REAL NOT NULL,
    added_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS code (
    what TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (what, key)
);
CREATE TABLE IF NOT EXISTS cursor (
    adapter TEXT PRIMARY KEY,
    serial INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    adapter TEXT NOT NULL,
    dossier TEXT NOT NULL,
    op TEXT NOT NULL,
    stamp INTEGER NOT NULL,
    queued_ms INTEGER NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    error_code TEXT,
    message TEXT,
    last_ms INTEGER,
    PRIMARY KEY (adapter, dossier, op)
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (adapter, state, next_ms);
CREATE TABLE IF NOT EXISTS portal (
    adapter TEXT NOT NULL,
    dossier TEXT NOT NULL,
    mahoso TEXT NOT NULL,
    created TEXT NOT NULL,
    synced_stamp INTEGER NOT NULL DEFAULT 0,
    synced_status INTEGER NOT NULL DEFAULT 0,
    synced_ms INTEGER,
    progress_stamp INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (adapter, dossier)
);
CREATE INDEX IF NOT EXISTS portal_code ON portal (adapter, mahoso);
"""
    + receipts.SCHEMA
)


@dataclass(frozen=True)
class AdapterConfig:
    name: str
    kind: str
    url: str
    username: str
    secret_file: str
    rate_per_s: float


@dataclass(frozen=True)
class Item:
    adapter: str
    dossier: str
    op: str
    stamp: int
    queued_ms: int
    tries: int
    state: str
    error_code: str | None
    message: str | None


@dataclass(frozen=True)
class Delivered:
    mahoso: str
    created: str
    synced_stamp: int
    synced_status: int
    synced_ms: int | None
    progress_stamp: int


@dataclass(frozen=True)
class AdapterStats:
    name: str
    kind: str
    url: str
    backlog: int
    blocked: int
    dead: int
    oldest_waiting_ms: int | None
    last_success_ms: int | None
    requests_1h: int
    errors_1h: int
    synced: int

    @property
    def error_rate(self) -> float:
        return self.errors_1h / self.requests_1h if self.requests_1h else 0.0


def write_secret(data_dir: Path, name: str, secret: str) -> Path:
    """The adapter's credentials, readable by the service user only (0600 from creation)."""
    directory = data_dir / SECRETS_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / f"{name}.secret"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_secret(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8").strip("\n")


class UpstreamStore:
    """One connection, shared by the threads of a process behind a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA busy_timeout = 30000")
        with self._lock:
            self.conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.conn.execute(sql, tuple(args)).fetchall()

    # --- configuration ----------------------------------------------------------------------

    def add_adapter(self, config: AdapterConfig, now_ms: int) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO adapter (name, kind, url, username, secret_file, rate_per_s, added_ms) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
                "url = excluded.url, username = excluded.username, secret_file = excluded.secret_file, "
                "rate_per_s = excluded.rate_per_s",
                (
                    config.name,
                    config.kind,
                    config.url,
                    config.username,
                    config.secret_file,
                    config.rate_per_s,
                    now_ms,
                ),
            )
            c.execute("INSERT OR IGNORE INTO cursor (adapter, serial) VALUES (?, 0)", (config.name,))
            # New codes may fix what was blocked: try those again now.
            c.execute("UPDATE queue SET state = ?, next_ms = ? WHERE state = ?", (WAIT, now_ms, BLOCKED))

    def adapters(self) -> list[AdapterConfig]:
        rows = self._read(
            "SELECT name, kind, url, username, secret_file, rate_per_s FROM adapter ORDER BY name"
        )
        return [AdapterConfig(*row) for row in rows]

    def set_codes(self, what: str, codes: Mapping[str, str], now_ms: int) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO code (what, key, value) VALUES (?,?,?) "
                "ON CONFLICT (what, key) DO UPDATE SET value = excluded.value",
                [(what, key, value) for key, value in codes.items()],
            )
            c.execute("UPDATE queue SET state = ?, next_ms = ? WHERE state = ?", (WAIT, now_ms, BLOCKED))

    def codes(self) -> Codes:
        rows = self._read("SELECT what, key, value FROM code")
        return Codes(
            {key: value for what, key, value in rows if what == "unit"},
            {key: value for what, key, value in rows if what == "sector"},
        )

    # --- the queue --------------------------------------------------------------------------

    def cursor(self, adapter: str) -> int:
        rows = self._read("SELECT serial FROM cursor WHERE adapter = ?", (adapter,))
        return int(rows[0][0]) if rows else 0

    def take(self, adapter: str, rows: Iterable[tuple[str, str, int, int]], now_ms: int) -> int:
        """Queue outbox rows (dossier, op, stamp, serial) the portal does not hold yet, coalesced
        to the newest stamp per (dossier, op), and move the cursor: one transaction."""
        taken = 0
        last = None
        with self.transaction() as c:
            for dossier, op, stamp, serial in rows:
                last = serial
                held = c.execute(
                    "SELECT synced_stamp, progress_stamp FROM portal WHERE adapter = ? AND dossier = ?",
                    (adapter, dossier),
                ).fetchone()
                if held is not None and stamp <= (held[0] if op == SYNC else held[1]):
                    continue
                c.execute(
                    "INSERT INTO queue (adapter, dossier, op, stamp, queued_ms, next_ms, state) "
                    "VALUES (?,?,?,?,?,?,?) ON CONFLICT (adapter, dossier, op) DO UPDATE SET "
                    "stamp = excluded.stamp, state = excluded.state, tries = 0, next_ms = excluded.next_ms "
                    "WHERE excluded.stamp > queue.stamp",
                    (adapter, dossier, op, stamp, now_ms, now_ms, WAIT),
                )
                taken += 1
            if last is not None:
                c.execute(
                    "UPDATE cursor SET serial = ? WHERE adapter = ? AND serial < ?", (last, adapter, last)
                )
        return taken

    def due(self, adapter: str, now_ms: int, limit: int = 50) -> list[Item]:
        """Items whose time has come, records before steps, oldest first."""
        rows = self._read(
            "SELECT adapter, dossier, op, stamp, queued_ms, tries, state, error_code, message FROM queue "
            "WHERE adapter = ? AND state = ? AND next_ms <= ? "
            "ORDER BY op = ?, queued_ms LIMIT ?",
            (adapter, WAIT, now_ms, PROGRESS, limit),
        )
        return [Item(*row) for row in rows]

    def next_due_ms(self, adapter: str) -> int | None:
        rows = self._read("SELECT MIN(next_ms) FROM queue WHERE adapter = ? AND state = ?", (adapter, WAIT))
        return None if rows[0][0] is None else int(rows[0][0])

    def items(self, adapter: str | None = None, state: str | None = None) -> list[Item]:
        sql = "SELECT adapter, dossier, op, stamp, queued_ms, tries, state, error_code, message FROM queue"
        where, args = [], []
        if adapter is not None:
            where.append("adapter = ?")
            args.append(adapter)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [Item(*row) for row in self._read(sql + " ORDER BY queued_ms", args)]

    def delivered(self, adapter: str, dossier: str) -> Delivered | None:
        rows = self._read(
            "SELECT mahoso, created, synced_stamp, synced_status, synced_ms, progress_stamp FROM portal "
            "WHERE adapter = ? AND dossier = ?",
            (adapter, dossier),
        )
        return Delivered(*rows[0]) if rows else None

    def code_owner(self, adapter: str, mahoso: str, dossier: str) -> str | None:
        """Another dossier that already went to this portal under ``mahoso``, if any."""
        rows = self._read(
            "SELECT dossier FROM portal WHERE adapter = ? AND mahoso = ? AND dossier != ? LIMIT 1",
            (adapter, mahoso, dossier),
        )
        return str(rows[0][0]) if rows else None

    def mark_created(self, adapter: str, dossier: str, mahoso: str, created: str) -> None:
        """``unknown`` before a create is sent (so a crash before its answer leads to a lookup),
        ``yes`` once the portal holds it, ``no`` when a lookup found it missing."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO portal (adapter, dossier, mahoso, created) VALUES (?,?,?,?) "
                "ON CONFLICT (adapter, dossier) DO UPDATE SET mahoso = excluded.mahoso, "
                "created = excluded.created",
                (adapter, dossier, mahoso, created),
            )

    def done(self, adapter: str, item: Item, stamp: int, status: int, now_ms: int) -> None:
        """The portal accepted ``item`` at ``stamp``: record it, and drop the queue row unless a
        newer state arrived meanwhile."""
        column = "synced_stamp" if item.op == SYNC else "progress_stamp"
        with self.transaction() as c:
            if item.op == SYNC:
                c.execute(
                    "UPDATE portal SET created = ?, synced_stamp = MAX(synced_stamp, ?), synced_status = ?, "
                    "synced_ms = ? WHERE adapter = ? AND dossier = ?",
                    (YES, stamp, status, now_ms, adapter, item.dossier),
                )
            else:
                c.execute(
                    f"UPDATE portal SET {column} = MAX({column}, ?) WHERE adapter = ? AND dossier = ?",
                    (stamp, adapter, item.dossier),
                )
            c.execute(
                "DELETE FROM queue WHERE adapter = ? AND dossier = ? AND op = ? AND stamp <= ?",
                (adapter, item.dossier, item.op, stamp),
            )

    def later(
        self, item: Item, state: str, next_ms: int, error_code: str | None, message: str | None, now_ms: int
    ) -> None:
        """Not delivered: try again at ``next_ms`` (wait), after a configuration change
        (blocked), or when someone says so (dead)."""
        with self.transaction() as c:
            c.execute(
                "UPDATE queue SET state = ?, next_ms = ?, tries = tries + 1, error_code = ?, message = ?, "
                "last_ms = ? WHERE adapter = ? AND dossier = ? AND op = ? AND stamp = ?",
                (
                    state,
                    next_ms,
                    error_code,
                    message,
                    now_ms,
                    item.adapter,
                    item.dossier,
                    item.op,
                    item.stamp,
                ),
            )

    def retry(self, now_ms: int, *, dossier: str | None = None, all_dead: bool = False) -> int:
        """Send a dead (or any waiting) dossier again now; returns how many queue rows moved."""
        with self.transaction() as c:
            if dossier is not None:
                cur = c.execute(
                    "UPDATE queue SET state = ?, next_ms = ?, tries = 0 WHERE dossier = ?",
                    (WAIT, now_ms, dossier),
                )
            elif all_dead:
                cur = c.execute(
                    "UPDATE queue SET state = ?, next_ms = ?, tries = 0 WHERE state = ?", (WAIT, now_ms, DEAD)
                )
            else:
                return 0
            return int(cur.rowcount)

    # --- receipts ---------------------------------------------------------------------------

    def add_receipt(self, receipt: receipts.Receipt, sign: Callable[[bytes], bytes]) -> receipts.Record:
        with self.transaction() as c:
            return receipts.append(c, receipt, sign)

    def receipts(self, dossier: str | None = None) -> list[receipts.Record]:
        with self._lock:
            return receipts.records(self.conn, dossier)

    # --- what the page and the metrics show -------------------------------------------------

    def stats(self, now_ms: int) -> list[AdapterStats]:
        out = []
        hour_ago = now_ms - 3_600_000
        for config in self.adapters():
            name = config.name
            counts = dict(
                self._read("SELECT state, COUNT(*) FROM queue WHERE adapter = ? GROUP BY state", (name,))
            )
            oldest = self._read(
                "SELECT MIN(queued_ms) FROM queue WHERE adapter = ? AND state != ?", (name, DEAD)
            )[0][0]
            last = self._read("SELECT MAX(synced_ms) FROM portal WHERE adapter = ?", (name,))[0][0]
            synced = self._read("SELECT COUNT(*) FROM portal WHERE adapter = ? AND created = ?", (name, YES))[
                0
            ][0]
            req, err = self._read(
                "SELECT COUNT(*), COALESCE(SUM(verdict NOT IN ('ok', 'missing', 'duplicate')), 0) "
                "FROM receipt "
                "WHERE adapter = ? AND at_ms >= ?",
                (name, hour_ago),
            )[0]
            out.append(
                AdapterStats(
                    name=name,
                    kind=config.kind,
                    url=config.url,
                    backlog=int(counts.get(WAIT, 0)) + int(counts.get(BLOCKED, 0)),
                    blocked=int(counts.get(BLOCKED, 0)),
                    dead=int(counts.get(DEAD, 0)),
                    oldest_waiting_ms=None if oldest is None else int(oldest),
                    last_success_ms=None if last is None else int(last),
                    requests_1h=int(req),
                    errors_1h=int(err),
                    synced=int(synced),
                )
            )
        return out

    def synced_dossiers(self) -> set[str]:
        """Dossiers whose record a portal accepted, counted from the receipts."""
        with self._lock:
            return receipts.accepted_dossiers(self.conn)
