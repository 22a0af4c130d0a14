"""SQLite connections and sync's own tables.

One writer connection per database file (in autocommit mode; transactions are opened with
``BEGIN IMMEDIATE`` by the code that writes), WAL, foreign keys on, a busy timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sync.migrations import Migration
from sync.migrations import apply as apply_migrations

BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 32 * 1024  # page cache per connection: merges touch many index pages at once


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: every commit is on the disk before it is acknowledged (a receipt handed to a
        # citizen). NORMAL in WAL mode loses the last commits to a power cut or a disk error
        # (docs/decisions/0005-durable-commits.md).
        conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_side(path: str | Path, namespace: str, migrations: Sequence[Migration]) -> sqlite3.Connection:
    """A node's small database beside its log (the audit log, the ended sessions), migrated:
    WAL, and ``synchronous = NORMAL`` (a power cut may lose its last lines, which costs no one a
    receipt; decision 0005). Closed again if it cannot be opened or migrated."""
    conn = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None, timeout=5)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        apply_migrations(conn, namespace, migrations)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


SYNC_SCHEMA = """
CREATE TABLE sync_meta (
    key TEXT PRIMARY KEY,
    value ANY
) STRICT;

-- Every node this replica knows: its key, its revocation, and the highest contiguous seq held.
CREATE TABLE sync_node (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL UNIQUE,
    public_key BLOB,
    head INTEGER NOT NULL DEFAULT 0,
    revoked_after INTEGER
) STRICT;

-- The op log: exactly the bytes each origin signed. Kept narrow on purpose (it is the hot
-- path of merge): the entity an op belongs to is found through sync_entity.refs, and leaf
-- hashes are recomputed from the bytes when a proof needs them.
CREATE TABLE sync_op (
    node INTEGER NOT NULL REFERENCES sync_node (id),
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (node, seq)
) STRICT, WITHOUT ROWID;

-- Verified ops that arrived ahead of a gap; applied when the gap fills.
CREATE TABLE sync_pending (
    node INTEGER NOT NULL REFERENCES sync_node (id),
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (node, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE sync_seal (
    node INTEGER NOT NULL REFERENCES sync_node (id),
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    root BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (node, first)
) STRICT, WITHOUT ROWID;

-- Subtree roots learned from Merkle proofs of partially received seals (see sync.merkle).
CREATE TABLE sync_seal_hash (
    node INTEGER NOT NULL,
    first INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (node, first, lo, hi)
) STRICT, WITHOUT ROWID;

-- Folded state of every entity, the fold position (stamp, node) of its newest op, and refs:
-- the (node id, seq) of each of its ops, packed as unsigned 32-bit pairs (sync.replica.entities).
CREATE TABLE sync_entity (
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    state BLOB NOT NULL,
    last_stamp INTEGER NOT NULL,
    last_node TEXT NOT NULL,
    refs BLOB NOT NULL,
    PRIMARY KEY (kind, entity)
) STRICT, WITHOUT ROWID;

-- Ops a reducer refused at their place in the order: kept, shown to a clerk.
CREATE TABLE sync_conflict (
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (kind, entity, node, seq)
) STRICT;

-- What this replica last learned a peer holds.
CREATE TABLE sync_peer (
    peer TEXT NOT NULL,
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (peer, node)
) STRICT, WITHOUT ROWID;

-- Every sync attempt, hash-chained and signed by this node (the clerk's transmission record).
CREATE TABLE sync_attempt (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    peer TEXT NOT NULL,
    channel TEXT NOT NULL,
    ops_sent INTEGER NOT NULL,
    ops_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL,
    bytes_received INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    entities TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL
) STRICT;
"""

FEED_SCHEMA = """
-- Central's arrival log: every op held gets a dense position when it arrives, so a partial
-- replica can follow "everything in my scope up to position P" without gaps (decision 0003).
CREATE TABLE sync_feed (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    node INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL
) STRICT;
CREATE INDEX sync_feed_entity ON sync_feed (kind, entity);

-- Scope keys an entity has ever had (a unit code, or '*' for reference data), and the feed
-- position at which it got each: once in a unit's scope, always in it, so a unit that handled
-- a dossier keeps its timeline and scope digests agree on both sides.
CREATE TABLE sync_scope (
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    since_pos INTEGER NOT NULL,
    PRIMARY KEY (kind, entity, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX sync_scope_key ON sync_scope (key, since_pos);
"""

ACKS_SCHEMA = """
-- The hub's signed acknowledgements travel with the attempt that received them.
ALTER TABLE sync_attempt ADD COLUMN acks BLOB NOT NULL DEFAULT x'90';
"""

FEED_INDEX_SCHEMA = """
-- Probe one entity's ops after a cursor without reading its older ones (sync.feed's plan for a
-- replica far behind the head).
DROP INDEX sync_feed_entity;
CREATE INDEX sync_feed_entity_pos ON sync_feed (kind, entity, pos);
"""

RESTAMP_SCHEMA = """
-- What an attempt re-stamped of this node's own ops (sync.restamp): (seq, before, after) triples.
ALTER TABLE sync_attempt ADD COLUMN restamped BLOB NOT NULL DEFAULT x'90';
"""

GIVEN_UP_SCHEMA = """
-- Bodies of a node's ops that the node gave up before re-stamping them (sync.restamp, decision
-- 0008): a request held up on the link that lands later with one of them is refused.
CREATE TABLE sync_given_up (
    node INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (node, seq, leaf)
) STRICT, WITHOUT ROWID;
"""

MIGRATIONS = [
    Migration(1, "change_log", SYNC_SCHEMA),
    Migration(2, "feed_and_scopes", FEED_SCHEMA),
    Migration(3, "attempt_acks", ACKS_SCHEMA),
    Migration(4, "feed_entity_pos", FEED_INDEX_SCHEMA),
    Migration(5, "attempt_restamped", RESTAMP_SCHEMA),
    Migration(6, "given_up", GIVEN_UP_SCHEMA),
]


def install(conn: sqlite3.Connection) -> None:
    """Create or upgrade sync's own tables (namespace ``sync``)."""
    apply_migrations(conn, "sync", MIGRATIONS)
