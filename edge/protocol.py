"""The edge's side of the sync protocol, whatever carries it: one core for the network round
(:mod:`edge.syncclient`) and the USB bundle (:mod:`ops.bundle`) alike.

- what a batch carries: its ops, the dossiers it touches, the scans it attaches
  (:func:`carried`, :func:`attachments`; the city's pull names the scans with the same
  function, so both ends agree on which ops attach a scan);
- the city's certificates: checked against the city key, keys trusted, revocations applied
  (:func:`check_certs`, :func:`apply_certs`);
- which key verifies an origin's ops while a bundle is checked before its certificates are
  applied (:func:`verify_with_certs`; the revocation rule itself is :func:`sync.batch.verify_batch`,
  the one the replica's merge applies);
- the city's acknowledgements: signed by the city, for this box (and the batch it sent), and
  what the city holds of this box's ops afterwards (:func:`check_ack`, :func:`remember_acks`);
- the attempt log's records of exchanges with the city (:func:`attempt`, :func:`record`).

Nothing here talks to the city or reads a file: the carriers do, and call these.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.node import Node
from edge.syncstate import CENTRAL, SyncState
from sync import attempts, wire
from sync import ops as opcodec
from sync.batch import Batch, Verified, verify_batch
from sync.errors import BadSignature, UnknownNode
from sync.identity import verify
from sync.replica import Replica

log = logging.getLogger("motcua.sync")

RECORDED_KINDS = frozenset({"dossier"})
"""Entities whose ids an attempt lists (a dossier's transmission record is looked up by them)."""
ATTACHING_KIND = "dossier"
ATTACH = "attach"
"""The op that attaches a scan: ``dossier``/``attach`` with the scan's ``sha256`` in its payload."""


# --- what batches carry --------------------------------------------------------------------------


@dataclass(frozen=True)
class Carried:
    """What some batches carry, read in one pass over their ops."""

    ops: int
    entities: frozenset[str]
    """Ids of the recorded kinds' entities (dossiers) the ops touch."""
    blobs: tuple[str, ...]
    """The scans the ops attach, each once, in the order they first appear."""


def carried(batches: Iterable[Batch]) -> Carried:
    count = 0
    entities: set[str] = set()
    blobs: dict[str, None] = {}
    for batch in batches:
        for run in batch.runs:
            for body in run.ops:
                op = opcodec.decode(body)
                count += 1
                if op.kind in RECORDED_KINDS:
                    entities.add(op.entity)
                if op.kind == ATTACHING_KIND and op.action == ATTACH:
                    sha = op.payload.get("sha256")
                    if isinstance(sha, str):
                        blobs[sha] = None
    return Carried(count, frozenset(entities), tuple(blobs))


def attachments(batches: Iterable[Batch]) -> list[str]:
    """The sha256 of every scan the batches' ops attach, each once."""
    return list(carried(batches).blobs)


def op_count(batches: Iterable[Batch]) -> int:
    return sum(len(run.ops) for batch in batches for run in batch.runs)


# --- the city's certificates -----------------------------------------------------------------------


def check_certs(certs: Iterable[wire.Cert], city_key: bytes) -> list[wire.Cert]:
    """Every certificate, each checked against the city key (BadSignature on the first that is
    not the city's): nothing is applied unless all of them are."""
    return [wire.check_cert(cert, city_key) for cert in certs]


def apply_certs(replica: Replica, me: str, certs: Iterable[wire.Cert]) -> None:
    """Trust the keys checked certificates vouch for and apply their revocations (a revocation
    already applied is not applied again: it would drop this box's pending ops once more)."""
    for cert in certs:
        if cert.node == me:
            continue  # our own revocation: the city refuses our requests, nothing to apply
        try:
            known: bytes | None = replica.public_key(cert.node)
        except UnknownNode:
            known = None
        if known != cert.public_key:
            replica.trust(cert.node, cert.public_key)
        revoked = cert.revoked_after
        if revoked is not None and SyncState.revoked_after(replica, cert.node) != revoked:
            replica.revoke(cert.node, revoked)
            SyncState.set_revoked_after(replica, cert.node, revoked)
            log.warning("node %s revoked after op #%d", cert.node, revoked)


def verify_with_certs(replica: Replica, certs: Mapping[str, wire.Cert], batch: Batch) -> list[Verified]:
    """Verify a batch as the replica will once ``certs`` are applied (:func:`apply_certs`): an
    origin's key from its certificate, else the key the replica trusts; its revocation from its
    certificate, else the replica's. For a bundle, whose certificates are applied only if
    everything in it verifies; the merges then take what this returned."""

    def key_verify(origin: str, signature: bytes, message: bytes) -> None:
        cert = certs.get(origin)
        verify(cert.public_key if cert else replica.public_key(origin), signature, message)

    def revoked_after(origin: str) -> int | None:
        cert = certs.get(origin)
        if cert is not None and cert.revoked_after is not None:
            return cert.revoked_after
        return replica.revoked_after(origin)

    return verify_batch(batch, key_verify, revoked_after)


# --- acknowledgements -------------------------------------------------------------------------------


def check_ack(ack: wire.Ack, city_key: bytes, me: str, batch: bytes | None = None) -> wire.Ack:
    """The city's signed acknowledgement of this box's ops (and of ``batch``, the encoded batch
    it answers, when there is one: a bundle's receipt answers a file)."""
    wire.check_ack(ack, city_key)
    if ack.node != me:
        raise BadSignature(f"the city's acknowledgement is for node {ack.node}, not for this box")
    if batch is not None and ack.batch_sha256 != hashlib.sha256(batch).digest():
        raise BadSignature("the city's acknowledgement is not for the batch this box sent")
    return ack


def remember_acks(replica: Replica, me: str, acks: Sequence[wire.Ack]) -> None:
    """What checked acknowledgements say the city holds of this box's own ops."""
    if acks:
        replica.remember_peer(CENTRAL, {me: max(ack.have for ack in acks)})


# --- the attempt log -------------------------------------------------------------------------------


def attempt(
    channel: str,
    at_ms: int,
    outcome: attempts.Outcome,
    *,
    ops_sent: int = 0,
    ops_received: int = 0,
    bytes_sent: int = 0,
    bytes_received: int = 0,
    duration_ms: int = 0,
    error: str | None = None,
    entities: Iterable[str] = (),
    acks: Iterable[wire.Ack] = (),
) -> attempts.Attempt:
    """One exchange with the city as the attempt log keeps it."""
    return attempts.Attempt(
        at_ms=at_ms,
        peer=CENTRAL,
        channel=channel,
        ops_sent=ops_sent,
        ops_received=ops_received,
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        duration_ms=duration_ms,
        outcome=outcome,
        error=error,
        entities=sorted(entities),
        acks=[wire.encode(ack) for ack in acks],
    )


def record(node: Node, entry: attempts.Attempt) -> int:
    """Append to the node's signed attempt log; its record id. One transaction under the
    replica's writer lock: the chain's "read the last hash, append after it" must not
    interleave with another appender."""
    with node.replica.write() as w:
        return attempts.append(w.conn, entry, node.identity.sign).id
