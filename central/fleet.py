"""``DIR/fleet.db``: what central knows about its nodes that is not replicated.

The node registry (who may sync, with which key, since when, revoked when, the city's signed
certificate of it), each node's last reported status, every request a node made and how it
ended, the signed acknowledgement of every batch central accepted, and the nonces of recent
requests (so a replay is refused across a restart too).

This is operational state, not dossier state: it never travels as ops. A node can be
registered or revoked (``motcua node add/revoke``) while the city server runs: every read here is
fresh, nothing is cached in memory, and a revocation holds from the node's next request on.

:class:`FleetStore` is the one storage interface for it, with two implementations: :class:`SqliteFleet`
(``DIR/fleet.db``, the embedded default) and :class:`central.pgfleet.PostgresFleet` (a city whose
``motcua central init`` was given ``--database``). ``tests/central/test_fleet_store.py`` is the
contract suite both pass.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

from sync import wire
from sync.db import connect
from sync.migrations import Migration
from sync.migrations import apply as apply_migrations

FLEET_FILE = "fleet.db"

SCHEMA = """
-- Every node ever registered. The city's certificate (wire.Cert, msgpack) is re-issued when
-- the node is revoked, so edges learn the revocation with the next hello.
CREATE TABLE nodes (
    node TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    public_key BLOB NOT NULL,
    registered_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    revoked_after INTEGER,          -- the node's ops after this seq are refused
    cert BLOB NOT NULL
) STRICT;
CREATE INDEX nodes_unit ON nodes (unit);

-- What each node last told central (hello) and what central saw of it.
CREATE TABLE node_status (
    node TEXT PRIMARY KEY REFERENCES nodes (node),
    last_contact_ms INTEGER,        -- last authenticated request
    last_ok_ms INTEGER,             -- last push or pull that succeeded
    software TEXT,
    protocol INTEGER,
    drift_ms INTEGER,               -- central's clock - the node's wall clock (positive: node behind)
    backup_age_s INTEGER,
    edge_waiting INTEGER,           -- the node's own ops central lacked at its last hello
    central_waiting INTEGER,        -- ops in the node's scope after its cursor at its last hello
    have INTEGER,                   -- central's highest contiguous seq of the node's ops
    cursor INTEGER,                 -- the node's position in central's feed (last reported)
    served_cursor INTEGER,          -- the cursor central's last pull reply handed out
    pending_blobs INTEGER,
    reported_error TEXT,            -- the node's own last error, as it reported it
    last_error TEXT,                -- central's last refusal of this node's requests
    last_error_code TEXT,
    last_error_ms INTEGER
) STRICT;

-- Every request a node made (or claimed to make), ok or not.
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,             -- as claimed in the request: refused requests may lie
    at_ms INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    ops_in INTEGER NOT NULL DEFAULT 0,
    ops_out INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    error_code TEXT,
    error TEXT
) STRICT;
CREATE INDEX attempts_node ON attempts (node, at_ms);
CREATE INDEX attempts_outcome ON attempts (outcome, at_ms);

-- The signed acknowledgement of every batch central accepted (wire.Ack, msgpack).
CREATE TABLE acks (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    have INTEGER NOT NULL,
    batch_sha256 BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    ack BLOB NOT NULL
) STRICT;
CREATE INDEX acks_node ON acks (node, at_ms);
CREATE INDEX acks_batch ON acks (batch_sha256);

CREATE TABLE nonces (
    node TEXT NOT NULL,
    nonce TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (node, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX nonces_age ON nonces (at_ms);
"""

MIGRATIONS = [
    Migration(1, "fleet", SCHEMA),
    Migration(2, "oldest_waiting", "ALTER TABLE node_status ADD COLUMN oldest_waiting_ms INTEGER;"),
    # Requests refused or failed, per node, since it was registered: a counter that stays true
    # when old attempts are let go (ATTEMPTS_KEEP_DAYS).
    Migration(
        3,
        "errors_total",
        """ALTER TABLE node_status ADD COLUMN errors_total INTEGER NOT NULL DEFAULT 0;
        UPDATE node_status SET errors_total = (
            SELECT count(*) FROM attempts AS a
            WHERE a.node = node_status.node AND a.outcome IN ('refused', 'failed'));""",
    ),
    # When the node's last hello was answered: the waiting counts are as of then.
    Migration(4, "hello_ms", "ALTER TABLE node_status ADD COLUMN hello_ms INTEGER;"),
]

ATTEMPTS_KEEP_DAYS = 30
"""Days of per-request history kept (the node page's charts show 14). A fleet of 103 boxes
syncing every minute writes about 300,000 attempts a day: kept for ever, fleet.db would grow
by gigabytes a year."""
_PRUNE_EVERY = 1024
_PRUNE_AT_MOST = 20_000


@dataclass(frozen=True)
class Registration:
    node: str
    unit: str
    public_key: bytes
    registered_ms: int
    revoked_ms: int | None
    revoked_after: int | None
    cert: wire.Cert

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None


class RequestOutcome(StrEnum):
    """How a node's request to the city ended (``attempts.outcome``; the values are stored)."""

    OK = "ok"
    REFUSED = "refused"
    """The city refused it (4xx): the node's problem, fatal for that request."""
    FAILED = "failed"


@dataclass(frozen=True)
class AttemptRow:
    node: str
    at_ms: int
    endpoint: str
    ops_in: int
    ops_out: int
    bytes_in: int
    bytes_out: int
    duration_ms: int
    outcome: RequestOutcome
    error_code: str | None
    error: str | None


@dataclass(frozen=True)
class Status:
    node: str
    last_contact_ms: int | None = None
    last_ok_ms: int | None = None
    software: str | None = None
    protocol: int | None = None
    drift_ms: int | None = None
    backup_age_s: int | None = None
    edge_waiting: int | None = None
    central_waiting: int | None = None
    have: int | None = None
    cursor: int | None = None
    served_cursor: int | None = None
    pending_blobs: int | None = None
    reported_error: str | None = None
    last_error: str | None = None
    last_error_code: str | None = None
    last_error_ms: int | None = None
    oldest_waiting_ms: int | None = None
    """When the oldest change waiting at the edge was made (protocol 2 boxes report it)."""
    hello_ms: int | None = None
    """When the node's last hello was answered: ``edge_waiting`` and ``central_waiting`` are as of then."""


STATUS_FIELDS = tuple(Status.__dataclass_fields__)


class Report(TypedDict, total=False):
    """What a node's requests tell the city of it (:meth:`FleetStore.report`): the columns of
    ``node_status`` a report may set. The city's own refusals (``last_error*``) are written by
    :meth:`FleetStore.record_attempt` only."""

    last_contact_ms: int | None
    last_ok_ms: int | None
    software: str | None
    protocol: int | None
    drift_ms: int | None
    backup_age_s: int | None
    edge_waiting: int | None
    central_waiting: int | None
    have: int | None
    cursor: int | None
    served_cursor: int | None
    pending_blobs: int | None
    reported_error: str | None
    oldest_waiting_ms: int | None
    hello_ms: int | None


REPORTED = frozenset(Report.__annotations__)
assert frozenset(STATUS_FIELDS) - {"node", "last_error", "last_error_code", "last_error_ms"} == REPORTED


def check_report(values: Report) -> None:
    """The names become SQL column names: a name outside :class:`Report` is a bug (KeyError),
    whatever a caller that escaped the type checker passed."""
    unknown = set(values) - REPORTED
    if unknown:
        raise KeyError(f"not status fields: {sorted(unknown)}")


DAY_MS = 86_400_000


class FleetStore(Protocol):
    """What central reads and writes of its fleet. Every implementation is thread-safe (the
    sync endpoints call it from worker threads) and reads fresh (no cache: a node revoked by
    another process is refused at its next request)."""

    keep_attempts_ms: int
    """How long per-request history is kept (``ATTEMPTS_KEEP_DAYS``)."""

    def close(self) -> None: ...

    # registry: durable when the call returns (who may sync, who was revoked)
    def register(self, cert: wire.Cert) -> None:
        """Add a node (and its empty status row); a node id registered twice is an error."""

    def mark_revoked(self, node: str, revoked_ms: int, revoked_after: int, cert: wire.Cert) -> None: ...
    def registration(self, node: str) -> Registration | None: ...
    def registrations(self) -> list[Registration]:
        """Every node, by unit then node id."""

    def certs(self) -> list[wire.Cert]:
        """Every node's current certificate, by node id."""

    # status
    def report(self, node: str, **values: Unpack[Report]) -> None:
        """Update what is known of a registered node (the named fields only)."""

    def status(self, node: str) -> Status | None: ...
    def statuses(self) -> list[Status]:
        """Every registered node's status, by node id."""

    # requests and acknowledgements: operational (a power cut may lose the last of them)
    def record_attempt(self, attempt: AttemptRow, *, contact: bool) -> None:
        """Log one request; ``contact``: it was authenticated (it proves the node is alive).
        Refused and failed requests count in the node's ``errors_total``."""

    def attempts(self, node: str | None = None, limit: int = 200) -> list[AttemptRow]:
        """The latest requests (of ``node``), newest first."""

    def attempt_page(self, node: str, page: int, size: int) -> tuple[list[AttemptRow], int]:
        """The node's requests, newest first: page ``page`` (1-based, clamped) and the total."""

    def traffic(self, node: str, start_ms: int, days: int) -> list[tuple[int, int]]:
        """(ops received from the node, ops sent to it) by successful requests in each of
        ``days`` consecutive 24-hour spans from ``start_ms``."""

    def successful_syncs(self, node: str, since_ms: int) -> tuple[int | None, list[int]]:
        """The last successful push or pull before ``since_ms`` (or None) and the times of
        those since, in order."""

    def errors_by_node(self) -> dict[str, int]:
        """Requests refused or failed, per registered node, since it was registered."""

    def store_ack(self, ack: wire.Ack) -> None: ...
    def acks(self, node: str) -> list[wire.Ack]:
        """The node's acknowledgements, oldest first."""

    # nonces
    def use_nonce(self, node: str, nonce: str, now_ms: int) -> bool:
        """Remember a nonce; False if it was already used (a replay), by this process or any
        other on the same store: of two requests racing with one nonce, exactly one wins.
        Forgets nonces older than twice the request window."""


ATTEMPT_COLUMNS = (
    "node, at_ms, endpoint, ops_in, ops_out, bytes_in, bytes_out, duration_ms, outcome, error_code, error"
)
SYNC_ENDPOINTS = ("push", "pull")
"""Requests whose success counts as a successful sync (as ``node_status.last_ok_ms`` does)."""


def attempt_values(attempt: AttemptRow) -> tuple[object, ...]:
    """The row's values for ``INSERT INTO attempts (ATTEMPT_COLUMNS)``, cut to their sizes
    (``node`` is as claimed: a refused request may send anything)."""
    return (
        attempt.node[:100],
        attempt.at_ms,
        attempt.endpoint,
        attempt.ops_in,
        attempt.ops_out,
        attempt.bytes_in,
        attempt.bytes_out,
        attempt.duration_ms,
        RequestOutcome(attempt.outcome).value,
        attempt.error_code,
        (attempt.error or "")[:500] or None,
    )


def per_day(rows: list[tuple[Any, Any, Any]], days: int) -> list[tuple[int, int]]:
    """``traffic``'s list from (day index, ops in, ops out) rows."""
    found = {int(day): (int(ops_in or 0), int(ops_out or 0)) for day, ops_in, ops_out in rows}
    return [found.get(day, (0, 0)) for day in range(days)]


class SqliteFleet:
    """The fleet in ``DIR/fleet.db``. Thread-safe: one connection, one lock (one writer per
    file); the dashboard's reads open their own read-only connection (WAL: they never wait
    behind the sync endpoints' writes)."""

    def __init__(self, path: str | Path, keep_attempts_days: int = ATTEMPTS_KEEP_DAYS) -> None:
        self.path = Path(path)
        self.keep_attempts_ms = keep_attempts_days * 86_400_000
        self._lock = threading.Lock()
        self.conn = connect(self.path)
        apply_migrations(self.conn, "fleet", MIGRATIONS)
        # What a sync request writes here (its log line, the node's status, the copy of its
        # ack, its nonce) is operational: a power cut may lose the last of it, which costs no
        # one a dossier (the box keeps its acks; a replayed push is idempotent), and an fsync
        # each cost a box's push four of them. Registry changes stay durable (_tx(durable=True)).
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``durable``: on the disk when it returns (synchronous FULL),
        for what must survive a power cut: who may sync, and who was revoked."""
        with self._lock:
            if durable:
                self.conn.execute("PRAGMA synchronous = FULL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    self.conn.execute("PRAGMA synchronous = NORMAL")

    # --- registry ---------------------------------------------------------------------------

    def register(self, cert: wire.Cert) -> None:
        with self._tx(durable=True) as conn:
            conn.execute(
                "INSERT INTO nodes (node, unit, public_key, registered_ms, cert) VALUES (?,?,?,?,?)",
                (cert.node, cert.unit, cert.public_key, cert.issued_ms, wire.encode(cert)),
            )
            conn.execute("INSERT INTO node_status (node) VALUES (?)", (cert.node,))

    def mark_revoked(self, node: str, revoked_ms: int, revoked_after: int, cert: wire.Cert) -> None:
        with self._tx(durable=True) as conn:
            conn.execute(
                "UPDATE nodes SET revoked_ms = ?, revoked_after = ?, cert = ? WHERE node = ?",
                (revoked_ms, revoked_after, wire.encode(cert), node),
            )

    def registration(self, node: str) -> Registration | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT node, unit, public_key, registered_ms, revoked_ms, revoked_after, cert "
                "FROM nodes WHERE node = ?",
                (node,),
            ).fetchone()
        return None if row is None else registration_of(row)

    def registrations(self) -> list[Registration]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT node, unit, public_key, registered_ms, revoked_ms, revoked_after, cert "
                "FROM nodes ORDER BY unit, node"
            ).fetchall()
        return [registration_of(row) for row in rows]

    def certs(self) -> list[wire.Cert]:
        with self._lock:
            rows = self.conn.execute("SELECT cert FROM nodes ORDER BY node").fetchall()
        return [wire.decode(row[0], wire.Cert) for row in rows]

    # --- status -----------------------------------------------------------------------------

    def report(self, node: str, **values: Unpack[Report]) -> None:
        """Update what is known of a registered node (unknown fields are a bug: KeyError)."""
        check_report(values)
        if not values:
            return
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self._tx() as conn:
            conn.execute(f"UPDATE node_status SET {assignments} WHERE node = ?", (*values.values(), node))

    def status(self, node: str) -> Status | None:
        with self._lock:
            row = self.conn.execute(
                f"SELECT {', '.join(STATUS_FIELDS)} FROM node_status WHERE node = ?", (node,)
            ).fetchone()
        return None if row is None else Status(*row)

    def statuses(self) -> list[Status]:
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {', '.join(STATUS_FIELDS)} FROM node_status ORDER BY node"
            ).fetchall()
        return [Status(*row) for row in rows]

    # --- attempts and acknowledgements ----------------------------------------------------------

    def record_attempt(self, attempt: AttemptRow, *, contact: bool) -> None:
        """Log one request; ``contact``: it was authenticated (it proves the node is alive)."""
        with self._tx() as conn:
            cursor = conn.execute(
                f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                attempt_values(attempt),
            )
            if contact:
                conn.execute(
                    "UPDATE node_status SET last_contact_ms = ? WHERE node = ?", (attempt.at_ms, attempt.node)
                )
            if attempt.outcome != RequestOutcome.OK:
                conn.execute(
                    "UPDATE node_status SET last_error = ?, last_error_code = ?, last_error_ms = ?, "
                    "errors_total = errors_total + 1 WHERE node = ?",
                    (attempt.error, attempt.error_code, attempt.at_ms, attempt.node),
                )
            elif attempt.endpoint in ("push", "pull"):
                conn.execute(
                    "UPDATE node_status SET last_ok_ms = ? WHERE node = ?", (attempt.at_ms, attempt.node)
                )
            elif attempt.endpoint == "hello":
                conn.execute(
                    "UPDATE node_status SET hello_ms = ? WHERE node = ?", (attempt.at_ms, attempt.node)
                )
            if cursor.lastrowid and cursor.lastrowid % _PRUNE_EVERY == 0:
                self._prune_attempts(conn, attempt.at_ms - self.keep_attempts_ms)

    @staticmethod
    def _prune_attempts(conn: sqlite3.Connection, before_ms: int) -> None:
        """Let go of the oldest attempts older than ``before_ms``, a bounded number at a time
        (ids grow with time: the oldest rows are the lowest ids, no scan of the table)."""
        conn.execute(
            "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts "
            "WHERE id < (SELECT min(id) FROM attempts) + ? AND at_ms < ?)",
            (_PRUNE_AT_MOST, before_ms),
        )

    def attempts(self, node: str | None = None, limit: int = 200) -> list[AttemptRow]:
        query = f"SELECT {ATTEMPT_COLUMNS} FROM attempts"
        params: tuple[object, ...] = ()
        if node is not None:
            query += " WHERE node = ?"
            params = (node,)
        with self._lock:
            rows = self.conn.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [AttemptRow(*row) for row in rows]

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own (WAL: it never blocks, nor waits for, the writer)."""
        conn = connect(self.path, readonly=True)
        try:
            yield conn
        finally:
            conn.close()

    def attempt_page(self, node: str, page: int, size: int) -> tuple[list[AttemptRow], int]:
        with self._reader() as conn:
            total = int(conn.execute("SELECT count(*) FROM attempts WHERE node = ?", (node,)).fetchone()[0])
            pages = max(1, -(-total // size))
            page = max(1, min(page, pages))
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE node = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (node, size, (page - 1) * size),
            ).fetchall()
        return [AttemptRow(*row) for row in rows], total

    def traffic(self, node: str, start_ms: int, days: int) -> list[tuple[int, int]]:
        if days <= 0:
            return []
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT (at_ms - ?) / ?, sum(ops_in), sum(ops_out) FROM attempts "
                "WHERE node = ? AND at_ms >= ? AND at_ms < ? AND outcome = 'ok' GROUP BY 1",
                (start_ms, DAY_MS, node, start_ms, start_ms + days * DAY_MS),
            ).fetchall()
        return per_day(rows, days)

    def successful_syncs(self, node: str, since_ms: int) -> tuple[int | None, list[int]]:
        marks = ",".join("?" * len(SYNC_ENDPOINTS))
        with self._reader() as conn:
            before = conn.execute(
                f"SELECT max(at_ms) FROM attempts WHERE node = ? AND at_ms < ? AND outcome = 'ok' "
                f"AND endpoint IN ({marks})",
                (node, since_ms, *SYNC_ENDPOINTS),
            ).fetchone()[0]
            after = conn.execute(
                f"SELECT at_ms FROM attempts WHERE node = ? AND at_ms >= ? AND outcome = 'ok' "
                f"AND endpoint IN ({marks}) ORDER BY at_ms",
                (node, since_ms, *SYNC_ENDPOINTS),
            ).fetchall()
        return (None if before is None else int(before)), [int(at) for (at,) in after]

    def errors_by_node(self) -> dict[str, int]:
        with self._reader() as conn:
            rows = conn.execute("SELECT node, errors_total FROM node_status").fetchall()
        return {str(node): int(count) for node, count in rows}

    def store_ack(self, ack: wire.Ack) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO acks (node, have, batch_sha256, at_ms, ack) VALUES (?,?,?,?,?)",
                (ack.node, ack.have, ack.batch_sha256, ack.at_ms, wire.encode(ack)),
            )

    def acks(self, node: str) -> list[wire.Ack]:
        with self._lock:
            rows = self.conn.execute("SELECT ack FROM acks WHERE node = ? ORDER BY id", (node,)).fetchall()
        return [wire.decode(row[0], wire.Ack) for row in rows]

    # --- nonces -----------------------------------------------------------------------------

    def use_nonce(self, node: str, nonce: str, now_ms: int) -> bool:
        """Remember a nonce; False if it was already used (a replay). Forgets old ones."""
        with self._tx() as conn:
            if now_ms % 64 == 0:
                conn.execute("DELETE FROM nonces WHERE at_ms < ?", (now_ms - 2 * wire.WINDOW_MS,))
            cur = conn.execute(
                "INSERT OR IGNORE INTO nonces (node, nonce, at_ms) VALUES (?,?,?)", (node, nonce, now_ms)
            )
            return cur.rowcount == 1


def registration_of(row: tuple[Any, ...]) -> Registration:
    node, unit, key, registered, revoked, after, cert = row
    return Registration(node, unit, bytes(key), registered, revoked, after, wire.decode(cert, wire.Cert))


class FleetNonces(wire.NonceBook):
    """The nonce book of :func:`wire.verify_request`, kept in fleet.db: survives a restart."""

    def __init__(self, fleet: FleetStore) -> None:
        super().__init__()
        self._fleet = fleet

    def use(self, node: str, nonce: str, now_ms: int) -> None:
        if not self._fleet.use_nonce(node, nonce, now_ms):
            raise wire.ReplayedRequest("this request was already received once (replay refused)")
