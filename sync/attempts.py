"""The sync attempt log: every attempt to exchange ops, hash-chained and signed.

Each record commits to the previous one (``prev_hash``) and is signed by this node, so the log
is the clerk's proof of why a dossier was not transmitted: printable, and verifiable later by
anyone holding the node's public key (central). Removing, reordering or editing a record breaks
the chain or a signature (:func:`verify_chain`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import msgspec

from sync.errors import BadSignature
from sync.identity import verify

GENESIS = b"\x00" * 32
CONTEXT = b"motcua-attempt/1"


class Outcome(StrEnum):
    """How an attempt ended. The values are stored and covered by the hash chain: never change one."""

    OK = "ok"
    PARTIAL = "partial"
    """Something went through, not everything."""
    FAILED = "failed"
    CORRECTED = "corrected"
    """A re-stamp of this node's own ops (channel "restamp"): no exchange, not a sync."""


class Attempt(msgspec.Struct, array_like=True, frozen=True):
    at_ms: int
    peer: str
    channel: str
    """How: "http", "bundle" (USB), …"""
    ops_sent: int
    ops_received: int
    bytes_sent: int
    bytes_received: int
    duration_ms: int
    outcome: str
    """An :class:`Outcome` value (a plain string here, so a record of any version decodes)."""
    error: str | None
    """Why it failed, in words a clerk understands."""
    entities: list[str]
    """Entity ids whose ops this attempt tried to send (for a dossier's transmission record)."""
    acks: list[bytes] = []
    """The hub's signed acknowledgements (:class:`sync.wire.Ack`, encoded) of what it accepted."""
    restamped: list[tuple[int, int, int]] = []
    """(seq, stamp before, stamp after) of each own op this attempt re-stamped because the peer's
    time showed the clock that stamped it was ahead (:mod:`sync.restamp`; channel "restamp")."""


class Record(msgspec.Struct, array_like=True, frozen=True):
    id: int
    attempt: Attempt
    prev_hash: bytes
    hash: bytes
    signature: bytes


def _encode(attempt: Attempt) -> bytes:
    # An attempt that re-stamped nothing hashes as before ``restamped`` existed, so records
    # written by older versions still verify.
    if attempt.restamped:
        return msgspec.msgpack.encode(attempt)
    return msgspec.msgpack.encode(msgspec.structs.astuple(attempt)[:-1])


def record_hash(prev_hash: bytes, attempt: Attempt) -> bytes:
    return hashlib.sha256(CONTEXT + prev_hash + _encode(attempt)).digest()


def append(conn: sqlite3.Connection, attempt: Attempt, sign: Callable[[bytes], bytes]) -> Record:
    """Append a record in the caller's transaction (or its own autocommit statement)."""
    row = conn.execute("SELECT hash FROM sync_attempt ORDER BY id DESC LIMIT 1").fetchone()
    prev = row[0] if row else GENESIS
    digest = record_hash(prev, attempt)
    signature = sign(digest)
    a = attempt
    cur = conn.execute(
        "INSERT INTO sync_attempt (at_ms, peer, channel, ops_sent, ops_received, bytes_sent, "
        "bytes_received, duration_ms, outcome, error, entities, acks, restamped, prev_hash, hash, "
        "signature) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            a.at_ms,
            a.peer,
            a.channel,
            a.ops_sent,
            a.ops_received,
            a.bytes_sent,
            a.bytes_received,
            a.duration_ms,
            a.outcome,
            a.error,
            msgspec.json.encode(a.entities).decode(),
            msgspec.msgpack.encode(a.acks),
            msgspec.msgpack.encode(a.restamped),
            prev,
            digest,
            signature,
        ),
    )
    return Record(int(cur.lastrowid or 0), attempt, prev, digest, signature)


def _from_row(row: tuple[Any, ...]) -> Record:
    rid, *fields, entities, acks, restamped, prev, digest, signature = row
    attempt = msgspec.convert(
        [
            *fields,
            msgspec.json.decode(entities),
            msgspec.msgpack.decode(acks),
            msgspec.msgpack.decode(restamped),
        ],
        Attempt,
    )
    return Record(rid, attempt, prev, digest, signature)


_COLUMNS = (
    "id, at_ms, peer, channel, ops_sent, ops_received, bytes_sent, bytes_received, duration_ms, "
    "outcome, error, entities, acks, restamped, prev_hash, hash, signature"
)


def records(conn: sqlite3.Connection, entity: str | None = None) -> list[Record]:
    """All records in order, or those whose attempt carried ops of ``entity``."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM sync_attempt ORDER BY id").fetchall()
    out = [_from_row(r) for r in rows]
    if entity is not None:
        out = [r for r in out if entity in r.attempt.entities]
    return out


def latest(conn: sqlite3.Connection) -> tuple[Attempt | None, int | None]:
    """The last attempt, and when the last successful one was (for a status badge)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM sync_attempt ORDER BY id DESC LIMIT 1").fetchone()
    # The latest successful attempt, not the one with the highest time: after the city's clock
    # went back (a dead battery there), rounds that succeed must still move "last sync".
    ok = conn.execute(
        "SELECT at_ms FROM sync_attempt WHERE outcome = ? ORDER BY id DESC LIMIT 1", (Outcome.OK,)
    ).fetchone()
    return (_from_row(row).attempt if row else None), (ok[0] if ok else None)


class Linked(Protocol):
    """A record of a hash-chained, signed log: its place, the hash before it, its own, signed."""

    @property
    def id(self) -> int: ...
    @property
    def prev_hash(self) -> bytes: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...


R = TypeVar("R", bound=Linked)


def verify_links(
    records: Iterable[R],
    public_raw: bytes,
    hash_of: Callable[[bytes, R], bytes],
    what: str,
    genesis: bytes = GENESIS,
) -> int:
    """Walk a hash-chained, signed log from :data:`GENESIS`: every link, every content hash
    (``hash_of(prev_hash, record)``), every signature. Returns the number of records verified;
    raises :class:`BadSignature` naming ``what`` at the first broken one."""
    prev = genesis
    count = 0
    for record in records:
        if record.prev_hash != prev:
            raise BadSignature(f"{what} {record.id} does not follow the one before it")
        if hash_of(prev, record) != record.hash:
            raise BadSignature(f"{what} {record.id} was altered")
        verify(public_raw, record.signature, record.hash)
        prev = record.hash
        count += 1
    return count


def verify_chain(records: Iterable[Record], public_raw: bytes) -> int:
    """Check a whole attempt log from its first record (:func:`verify_links`)."""
    return verify_links(records, public_raw, lambda prev, r: record_hash(prev, r.attempt), "attempt record")
