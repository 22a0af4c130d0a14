"""The fleet on PostgreSQL: :class:`central.fleet.FleetStore` for a city whose database is a server.

The same tables as ``fleet.db`` (:data:`MIGRATIONS`, numbered in the ``fleet`` namespace of the
database's ``migrations`` ledger, applied by :mod:`sync.pgmigrations`), through a connection pool
(psycopg_pool): every method takes a connection, runs one transaction and gives it back, so any
number of threads and processes share the store; every read is fresh.

The durability choices are the SQLite store's: who may sync (a registration, a revocation) is
committed durably (the server's ``synchronous_commit``, on unless its administrator chose
otherwise); what a sync request writes (its log line, the node's status, the copy of its ack, its
nonce) is committed with ``synchronous_commit = off``: a crash of the server may lose its last
fraction of a second, which costs no one a dossier (the box keeps its acks; a replayed push is
idempotent), and no request waits for a WAL flush.

Nonces are single-use across processes: ``INSERT ... ON CONFLICT DO NOTHING`` on the primary key
(node, nonce); of two transactions inserting one nonce, the second waits for the first and finds
the conflict, so exactly one wins.

PostgreSQL's text cannot hold a NUL character, and a refused request's claims (its node id, its
error) may carry any: text is stored with NULs replaced by U+FFFD, never refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Unpack

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from central.fleet import (
    ATTEMPT_COLUMNS,
    ATTEMPTS_KEEP_DAYS,
    DAY_MS,
    STATUS_FIELDS,
    SYNC_ENDPOINTS,
    AttemptRow,
    Registration,
    Report,
    RequestOutcome,
    Status,
    attempt_values,
    check_report,
    per_day,
    registration_of,
)
from sync import pgmigrations, wire

NAMESPACE = "fleet"

SCHEMA = """
-- Every node ever registered. The city's certificate (wire.Cert, msgpack) is re-issued when
-- the node is revoked, so edges learn the revocation with the next hello.
CREATE TABLE nodes (
    node TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    registered_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    revoked_after BIGINT,           -- the node's ops after this seq are refused
    cert BYTEA NOT NULL
);
CREATE INDEX nodes_unit ON nodes (unit);

-- What each node last told central (hello) and what central saw of it (central/fleet.py: Status).
CREATE TABLE node_status (
    node TEXT PRIMARY KEY REFERENCES nodes (node),
    last_contact_ms BIGINT,
    last_ok_ms BIGINT,
    software TEXT,
    protocol BIGINT,
    drift_ms BIGINT,
    backup_age_s BIGINT,
    edge_waiting BIGINT,
    central_waiting BIGINT,
    have BIGINT,
    cursor BIGINT,
    served_cursor BIGINT,
    pending_blobs BIGINT,
    reported_error TEXT,
    last_error TEXT,
    last_error_code TEXT,
    last_error_ms BIGINT,
    oldest_waiting_ms BIGINT,
    errors_total BIGINT NOT NULL DEFAULT 0,
    hello_ms BIGINT
);

-- Every request a node made (or claimed to make), ok or not.
CREATE TABLE attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    ops_in BIGINT NOT NULL DEFAULT 0,
    ops_out BIGINT NOT NULL DEFAULT 0,
    bytes_in BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    error_code TEXT,
    error TEXT
);
CREATE INDEX attempts_node ON attempts (node, at_ms);
CREATE INDEX attempts_outcome ON attempts (outcome, at_ms);

-- The signed acknowledgement of every batch central accepted (wire.Ack, msgpack).
CREATE TABLE acks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node TEXT NOT NULL,
    have BIGINT NOT NULL,
    batch_sha256 BYTEA NOT NULL,
    at_ms BIGINT NOT NULL,
    ack BYTEA NOT NULL
);
CREATE INDEX acks_node ON acks (node, at_ms);
CREATE INDEX acks_batch ON acks (batch_sha256);

CREATE TABLE nonces (
    node TEXT NOT NULL,
    nonce TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (node, nonce)
);
CREATE INDEX nonces_age ON nonces (at_ms);
"""

MIGRATIONS = [pgmigrations.Migration(1, "fleet", SCHEMA)]
"""The fleet's tables on PostgreSQL (SQLite's fleet.db reached the same shape in four steps)."""

_PRUNE_EVERY = 1024
_PRUNE_AT_MOST = 20_000
POOL_SIZE = 8
"""Connections per process: the sync endpoints' worker threads, the dashboard, the scrapes."""

Connection = psycopg.Connection[tuple[Any, ...]]


def clean(value: object) -> object:
    """A parameter as PostgreSQL's text can hold it (no NUL, no lone surrogate)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value


def _params(values: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(clean(v) for v in values)


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Bring the fleet's tables up to date (``conn`` in autocommit mode)."""
    return pgmigrations.apply(conn, NAMESPACE, MIGRATIONS)


class PostgresFleet:
    """The fleet on a PostgreSQL database, through ``pool`` (which this store closes).

    The schema must be current (:func:`migrate`, run by ``motcua central init`` and at every
    start of the city: :func:`central.database.open_fleet`)."""

    def __init__(
        self, pool: ConnectionPool[Connection], keep_attempts_days: int = ATTEMPTS_KEEP_DAYS
    ) -> None:
        self.pool = pool
        self.keep_attempts_ms = keep_attempts_days * 86_400_000

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def _tx(self, *, durable: bool = False) -> Iterator[Connection]:
        """One transaction; not ``durable``: committed without waiting for the WAL flush."""
        with self.pool.connection() as conn, conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.pool.connection() as conn:
            yield conn

    # --- registry ---------------------------------------------------------------------------

    def register(self, cert: wire.Cert) -> None:
        with self._tx(durable=True) as conn:
            conn.execute(
                "INSERT INTO nodes (node, unit, public_key, registered_ms, cert) VALUES (%s, %s, %s, %s, %s)",
                _params((cert.node, cert.unit, cert.public_key, cert.issued_ms, wire.encode(cert))),
            )
            conn.execute("INSERT INTO node_status (node) VALUES (%s)", (clean(cert.node),))

    def mark_revoked(self, node: str, revoked_ms: int, revoked_after: int, cert: wire.Cert) -> None:
        with self._tx(durable=True) as conn:
            conn.execute(
                "UPDATE nodes SET revoked_ms = %s, revoked_after = %s, cert = %s WHERE node = %s",
                _params((revoked_ms, revoked_after, wire.encode(cert), node)),
            )

    def registration(self, node: str) -> Registration | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT node, unit, public_key, registered_ms, revoked_ms, revoked_after, cert "
                "FROM nodes WHERE node = %s",
                (clean(node),),
            ).fetchone()
        return None if row is None else registration_of(row)

    def registrations(self) -> list[Registration]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT node, unit, public_key, registered_ms, revoked_ms, revoked_after, cert "
                'FROM nodes ORDER BY unit COLLATE "C", node COLLATE "C"'
            ).fetchall()
        return [registration_of(row) for row in rows]

    def certs(self) -> list[wire.Cert]:
        with self._read() as conn:
            rows = conn.execute('SELECT cert FROM nodes ORDER BY node COLLATE "C"').fetchall()
        return [wire.decode(bytes(row[0]), wire.Cert) for row in rows]

    # --- status -----------------------------------------------------------------------------

    def report(self, node: str, **values: Unpack[Report]) -> None:
        check_report(values)
        if not values:
            return
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in values)
        with self._tx() as conn:
            conn.execute(
                sql.SQL("UPDATE node_status SET {} WHERE node = %s").format(assignments),
                _params((*values.values(), node)),
            )

    def _status_query(self, where: str) -> sql.Composed:
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in STATUS_FIELDS)
        return sql.SQL("SELECT {} FROM node_status ").format(columns) + sql.SQL(where)

    def status(self, node: str) -> Status | None:
        with self._read() as conn:
            row = conn.execute(self._status_query("WHERE node = %s"), (clean(node),)).fetchone()
        return None if row is None else Status(*row)

    def statuses(self) -> list[Status]:
        with self._read() as conn:
            rows = conn.execute(self._status_query('ORDER BY node COLLATE "C"')).fetchall()
        return [Status(*row) for row in rows]

    # --- attempts and acknowledgements ----------------------------------------------------------

    def record_attempt(self, attempt: AttemptRow, *, contact: bool) -> None:
        node = clean(attempt.node)
        with self._tx() as conn:
            inserted = conn.execute(
                f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                _params(attempt_values(attempt)),
            ).fetchone()
            if contact:
                conn.execute(
                    "UPDATE node_status SET last_contact_ms = %s WHERE node = %s", (attempt.at_ms, node)
                )
            if attempt.outcome != RequestOutcome.OK:
                conn.execute(
                    "UPDATE node_status SET last_error = %s, last_error_code = %s, last_error_ms = %s, "
                    "errors_total = errors_total + 1 WHERE node = %s",
                    _params((attempt.error, attempt.error_code, attempt.at_ms, node)),
                )
            elif attempt.endpoint in SYNC_ENDPOINTS:
                conn.execute("UPDATE node_status SET last_ok_ms = %s WHERE node = %s", (attempt.at_ms, node))
            elif attempt.endpoint == "hello":
                conn.execute("UPDATE node_status SET hello_ms = %s WHERE node = %s", (attempt.at_ms, node))
            if inserted and inserted[0] % _PRUNE_EVERY == 0:
                # ids grow with time: the oldest rows are the lowest ids, no scan of the table
                conn.execute(
                    "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts "
                    "WHERE id < (SELECT min(id) FROM attempts) + %s AND at_ms < %s)",
                    (_PRUNE_AT_MOST, attempt.at_ms - self.keep_attempts_ms),
                )

    def attempts(self, node: str | None = None, limit: int = 200) -> list[AttemptRow]:
        with self._read() as conn:
            if node is None:
                rows = conn.execute(
                    f"SELECT {ATTEMPT_COLUMNS} FROM attempts ORDER BY id DESC LIMIT %s",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE node = %s ORDER BY id DESC LIMIT %s",
                    (clean(node), limit),
                ).fetchall()
        return [AttemptRow(*row) for row in rows]

    def attempt_page(self, node: str, page: int, size: int) -> tuple[list[AttemptRow], int]:
        with self._read() as conn, conn.transaction():  # the count and the page: one snapshot
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            counted = conn.execute("SELECT count(*) FROM attempts WHERE node = %s", (clean(node),)).fetchone()
            total = int(counted[0]) if counted else 0
            pages = max(1, -(-total // size))
            page = max(1, min(page, pages))
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE node = %s ORDER BY id DESC LIMIT %s OFFSET %s",
                (clean(node), size, (page - 1) * size),
            ).fetchall()
        return [AttemptRow(*row) for row in rows], total

    def traffic(self, node: str, start_ms: int, days: int) -> list[tuple[int, int]]:
        if days <= 0:
            return []
        with self._read() as conn:
            rows = conn.execute(
                "SELECT (at_ms - %s) / %s, sum(ops_in), sum(ops_out) FROM attempts "
                "WHERE node = %s AND at_ms >= %s AND at_ms < %s AND outcome = 'ok' GROUP BY 1",
                (start_ms, DAY_MS, clean(node), start_ms, start_ms + days * DAY_MS),
            ).fetchall()
        return per_day(rows, days)

    def successful_syncs(self, node: str, since_ms: int) -> tuple[int | None, list[int]]:
        with self._read() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            before = conn.execute(
                "SELECT max(at_ms) FROM attempts WHERE node = %s AND at_ms < %s AND outcome = 'ok' "
                "AND endpoint = ANY(%s)",
                (clean(node), since_ms, list(SYNC_ENDPOINTS)),
            ).fetchone()
            after = conn.execute(
                "SELECT at_ms FROM attempts WHERE node = %s AND at_ms >= %s AND outcome = 'ok' "
                "AND endpoint = ANY(%s) ORDER BY at_ms",
                (clean(node), since_ms, list(SYNC_ENDPOINTS)),
            ).fetchall()
        last = before[0] if before else None
        return (None if last is None else int(last)), [int(at) for (at,) in after]

    def errors_by_node(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute("SELECT node, errors_total FROM node_status").fetchall()
        return {str(node): int(count) for node, count in rows}

    def store_ack(self, ack: wire.Ack) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO acks (node, have, batch_sha256, at_ms, ack) VALUES (%s, %s, %s, %s, %s)",
                _params((ack.node, ack.have, ack.batch_sha256, ack.at_ms, wire.encode(ack))),
            )

    def acks(self, node: str) -> list[wire.Ack]:
        with self._read() as conn:
            rows = conn.execute("SELECT ack FROM acks WHERE node = %s ORDER BY id", (clean(node),)).fetchall()
        return [wire.decode(bytes(row[0]), wire.Ack) for row in rows]

    # --- nonces -----------------------------------------------------------------------------

    def use_nonce(self, node: str, nonce: str, now_ms: int) -> bool:
        with self._tx() as conn:
            if now_ms % 64 == 0:
                conn.execute("DELETE FROM nonces WHERE at_ms < %s", (now_ms - 2 * wire.WINDOW_MS,))
            inserted = conn.execute(
                "INSERT INTO nonces (node, nonce, at_ms) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                _params((node, nonce, now_ms)),
            )
            return inserted.rowcount == 1
