"""Receipts: every request the city made upstream, hash-chained and signed by the city's key.

The same construction as the box's attempt log (:mod:`sync.attempts`): each record commits to
the one before (``prev_hash``, from :data:`GENESIS`) and its hash is signed by the
city's node key, so removing, reordering or editing one breaks the chain
(:func:`verify_receipts`), and anyone holding the city's public key can check a printout.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from sync import attempts

CONTEXT = b"motcua-upstream-receipt/1"
GENESIS = b"\x00" * 32
"""What the first receipt follows (as the attempt log's first record does)."""


class Receipt(msgspec.Struct, array_like=True, frozen=True):
    at_ms: int
    adapter: str
    dossier: str
    """The dossier's entity id ("" for a login)."""
    portal_code: str
    """The dossier's code on the portal (MaHoSo), as sent."""
    service: str
    body_sha256: str
    http_status: int | None
    error_code: str | None
    """The portal's own code ("00" accepted …)."""
    message: str | None
    verdict: str
    """:class:`central.upstream.adapter.Verdict` value."""
    duration_ms: int
    stamp: int
    """The dossier state (packed HLC stamp) the request carried; 0 for a login or lookup."""
    status: int
    """The dossier status code the request carried; 0 for a login or lookup."""


class Record(msgspec.Struct, array_like=True, frozen=True):
    id: int
    receipt: Receipt
    prev_hash: bytes
    hash: bytes
    signature: bytes


SCHEMA = """
CREATE TABLE IF NOT EXISTS receipt (
    id INTEGER PRIMARY KEY,
    adapter TEXT NOT NULL,
    dossier TEXT NOT NULL,
    service TEXT NOT NULL,
    verdict TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS receipt_dossier ON receipt (dossier, id);
"""


def record_hash(prev_hash: bytes, receipt: Receipt) -> bytes:
    return hashlib.sha256(CONTEXT + prev_hash + msgspec.msgpack.encode(receipt)).digest()


def append(conn: sqlite3.Connection, receipt: Receipt, sign: Callable[[bytes], bytes]) -> Record:
    """Append in the caller's transaction (which must hold the write lock: BEGIN IMMEDIATE)."""
    row = conn.execute("SELECT hash FROM receipt ORDER BY id DESC LIMIT 1").fetchone()
    prev = row[0] if row else GENESIS
    digest = record_hash(prev, receipt)
    signature = sign(digest)
    cur = conn.execute(
        "INSERT INTO receipt (adapter, dossier, service, verdict, at_ms, body, prev_hash, hash, signature) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (
            receipt.adapter,
            receipt.dossier,
            receipt.service,
            receipt.verdict,
            receipt.at_ms,
            msgspec.msgpack.encode(receipt),
            prev,
            digest,
            signature,
        ),
    )
    return Record(int(cur.lastrowid or 0), receipt, prev, digest, signature)


def _from_row(row: tuple[Any, ...]) -> Record:
    rid, body, prev, digest, signature = row
    return Record(rid, msgspec.msgpack.decode(body, type=Receipt), prev, digest, signature)


def records(conn: sqlite3.Connection, dossier: str | None = None) -> list[Record]:
    """Every receipt in order, or one dossier's."""
    if dossier is None:
        rows = conn.execute("SELECT id, body, prev_hash, hash, signature FROM receipt ORDER BY id").fetchall()
    else:
        rows = conn.execute(
            "SELECT id, body, prev_hash, hash, signature FROM receipt WHERE dossier = ? ORDER BY id",
            (dossier,),
        ).fetchall()
    return [_from_row(r) for r in rows]


SYNC_SERVICES = ("DongBoHoSoMC", "APICapNhatDongBoHoSoDVC")
"""The services that put a dossier's record on the portal (DVCQG, LGSP)."""


def accepted_dossiers(conn: sqlite3.Connection) -> set[str]:
    """Dossiers whose record some portal accepted, by the receipts (Decision 766's "synced")."""
    marks = ",".join("?" * len(SYNC_SERVICES))
    rows = conn.execute(
        f"SELECT DISTINCT dossier FROM receipt WHERE verdict = 'ok' AND service IN ({marks})", SYNC_SERVICES
    )
    return {row[0] for row in rows}


def verify_receipts(records: Iterable[Record], public_raw: bytes) -> int:
    """Check the whole chain from its first record; the count, or :class:`BadSignature`."""
    return attempts.verify_links(
        records, public_raw, lambda prev, r: record_hash(prev, r.receipt), "upstream receipt", GENESIS
    )
