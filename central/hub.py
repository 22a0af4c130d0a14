"""The city's side of the sync protocol, without HTTP: what each request does.

:class:`Hub` implements the :class:`sync.transport.Peer` contract for many nodes at once. The
HTTP layer (:mod:`central.syncapi`) authenticates a request with :meth:`Hub.admit`, then calls
one method with the caller and the decoded message; each method is safe to call from several
threads (the replica and the fleet store each have one writer and a lock).

Admission reads the registry in fleet.db on every request, so ``motcua node add/revoke`` take
effect at once even while the server runs in another process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from central import scope, tls
from central.city import INCOMING_DIR, City
from central.fleet import FleetNonces, Registration
from central.incoming import Incoming
from edge.protocol import attachments, op_count
from sync import wire
from sync.batch import Batch, Verified, decode_batch, encode_batch
from sync.blobs import BlobNotFound
from sync.errors import RevokedNode, UnknownNode
from sync.feed import EVERYWHERE

MAX_PULL_OPS = 5000
BACKLOG_COUNT_LIMIT = 100_000
"""central_waiting is counted up to this many ops (a count, not an estimate, below it)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated node: who signed the request, of which unit, speaking which version."""

    node: str
    unit: str
    protocol: int

    @property
    def scope(self) -> frozenset[str]:
        return frozenset({self.unit, EVERYWHERE})


@dataclass
class Counts:
    """What one request moved, for the attempt log (filled in even if the request fails)."""

    ops_in: int = 0
    ops_out: int = 0
    extra: dict[str, int] = field(default_factory=dict)


CERT_SLACK_MS = 24 * 3_600_000


class Hub:
    def __init__(self, city: City) -> None:
        self.city = city
        self.node = city.node
        self.replica = city.node.replica
        self.identity = city.node.identity
        self.fleet = city.fleet
        self.nonces = FleetNonces(city.fleet)
        self.incoming = Incoming(city.node.data_dir / INCOMING_DIR, city.node.blobs)
        self.own_cert = wire.issue_cert(
            self.identity,
            self.identity.node,
            city.node.config.unit,
            self.identity.public_raw,
            self.now_ms(),
            None,
        )
        for registration in self.fleet.registrations():
            self._ensure_trusted(registration)

    def now_ms(self) -> int:
        return self.node.clock.wall_ms()

    # --- admission ----------------------------------------------------------------------------

    def admit(self, headers: Mapping[str, str], method: str, path: str, body: bytes) -> Caller:
        """The authenticated caller, or a typed refusal (protocol, unknown, revoked, bad
        signature, stale, replayed)."""
        found: dict[str, Registration] = {}

        def key_of(node: str) -> bytes:
            registration = self.fleet.registration(node)
            if registration is None:
                raise UnknownNode(f"node {node} is not registered with the city")
            if registration.revoked:
                raise RevokedNode(f"node {node} was revoked by the city; its requests are refused")
            found[node] = registration
            return registration.public_key

        node = wire.verify_request(headers, method, path, body, self.now_ms(), key_of, self.nonces)
        return Caller(node, found[node].unit, int(headers[wire.H_PROTOCOL]))

    def _ensure_trusted(self, registration: Registration) -> None:
        """The city replica trusts every registered key (registered maybe by another process)."""
        try:
            if self.replica.public_key(registration.node) == registration.public_key:
                return
        except UnknownNode:
            pass
        # A node another process registered meanwhile is seen here too: the replica reloads
        # what it caches when another connection committed (decision 0007).
        self.replica.trust(registration.node, registration.public_key)

    # --- the protocol -----------------------------------------------------------------------

    def time(self, nonce: bytes = b"") -> wire.TimeReply:
        """The city's clock, signed for the box's ``nonce`` (a protocol-1 box sends none)."""
        if not nonce:
            return wire.TimeReply(self.now_ms(), sorted(wire.SUPPORTED))
        return wire.sign_time(self.node.identity, self.now_ms(), sorted(wire.SUPPORTED), nonce)

    def hello(self, caller: Caller, hello: wire.Hello) -> wire.HelloReply:
        now = self.now_ms()
        # Bodies the box gives up before re-stamping them are recorded with the head read in
        # the same transaction: a push held up on the link lands before (in `have`) or is refused.
        if hello.give_up:
            have = self.replica.give_up(caller.node, hello.give_up, now)
        else:
            have = self.replica.vector()[caller.node]
        feed_head = self.replica.feed_head()
        drift = now - hello.wall_ms
        self.fleet.report(
            caller.node,
            software=hello.software[:100],
            protocol=caller.protocol,
            drift_ms=drift,
            backup_age_s=hello.backup_age_s,
            edge_waiting=max(0, hello.head - have),
            central_waiting=self.backlog(caller, hello.cursor),
            have=have,
            cursor=hello.cursor,
            pending_blobs=hello.pending_blobs,
            reported_error=(hello.last_error or "")[:500] or None,
            oldest_waiting_ms=hello.oldest_waiting_ms,
        )
        return wire.HelloReply(
            time_ms=now,
            have=have,
            feed_head=feed_head,
            drift_ms=drift,
            certs=[
                cert
                for cert in (*self.fleet.certs(), self.own_cert)
                # A day of slack: a certificate issued while the city's clock was behind still goes.
                if cert.issued_ms > hello.certs_since_ms - CERT_SLACK_MS
            ],
            protocol=caller.protocol,
            tls_cert=tls.renewal(self.node.data_dir, caller.node, now),
            given_up=bool(hello.give_up),
        )

    def backlog(self, caller: Caller, cursor: int) -> int:
        """Ops in the caller's scope after ``cursor`` that are not its own: what its next pulls
        will bring (not counting the history of dossiers newly routed to it)."""
        return self.replica.backlog(caller.scope, cursor, exclude=caller.node, cap=BACKLOG_COUNT_LIMIT)

    def push(self, caller: Caller, body: bytes, counts: Counts) -> wire.Ack:
        """Merge one batch of the caller's own ops, all or nothing; the signed receipt."""
        batch = decode_batch(body)
        counts.ops_in = op_count([batch])
        check_sender(caller, batch)
        return self.merge_own(caller, body, batch)

    def merge_own(
        self, caller: Caller, body: bytes, batch: Batch, verified: list[Verified] | None = None
    ) -> wire.Ack:
        """Merge ``batch`` (decoded from ``body``, its sender checked by :func:`check_sender`)
        under the caller's write scope; the signed receipt. ``verified``: what
        ``replica.verify(batch)`` returned, when the caller checked it already (a bundle)."""
        registration = self.fleet.registration(caller.node)
        if registration is not None:
            self._ensure_trusted(registration)
        self.replica.merge(
            batch, admit=lambda ops, states: scope.check_batch(ops, caller.unit, states), verified=verified
        )
        have = self.replica.vector()[caller.node]
        ack = wire.sign_ack(self.identity, caller.node, have, body, self.now_ms())
        self.fleet.store_ack(ack)
        self.fleet.report(caller.node, have=have)
        return ack

    def pull(self, caller: Caller, request: wire.PullRequest, counts: Counts) -> wire.PullReply:
        max_ops = min(max(1, request.max_ops), MAX_PULL_OPS)
        batches, part = self.replica.pull(
            caller.scope, max(0, request.cursor), exclude=caller.node, max_ops=max_ops
        )
        counts.ops_out = part.count
        self.fleet.report(caller.node, served_cursor=part.cursor)
        return wire.PullReply(
            cursor=part.cursor,
            done=part.done,
            batches=[encode_batch(batch) for batch in batches],
            certs=self._certs_for(_origins(batches)),
            blobs=[sha for sha in attachments(batches) if self.node.blobs.has(sha)],
        )

    def _certs_for(self, origins: Iterable[str]) -> list[wire.Cert]:
        wanted = set(origins)
        certs = [cert for cert in self.fleet.certs() if cert.node in wanted]
        if self.identity.node in wanted:
            certs.append(self.own_cert)
        return certs

    def digest(self, caller: Caller) -> wire.DigestReply:
        return wire.DigestReply(self.replica.scope_digest(caller.scope), self.replica.feed_head())

    # --- attachments --------------------------------------------------------------------------

    def blob_size(self, caller: Caller, sha256: str) -> int:
        return self.incoming.size(sha256)

    def put_blob(self, caller: Caller, sha256: str, offset: int, chunk: bytes) -> int:
        return self.incoming.put(sha256, offset, chunk)

    def get_blob(self, caller: Caller, sha256: str, offset: int, size: int) -> bytes:
        if not self.may_read(caller, sha256):
            # The same answer as for a blob the city lacks: digests are not probed.
            raise BlobNotFound(f"no attachment {sha256} in the scope of node {caller.node}")
        return self.incoming.read(sha256, offset, size)

    def may_read(self, caller: Caller, sha256: str) -> bool:
        with self.node.reader() as conn:
            return may_read(conn, caller.unit, sha256)


def may_read(conn: sqlite3.Connection, unit: str, sha256: str) -> bool:
    """Only scans attached to a dossier ``unit`` has received or handled (read in the hub's
    projection)."""
    row = conn.execute(
        """SELECT 1 FROM attachments AS a JOIN dossiers AS d ON d.id = a.dossier_id
           WHERE a.sha256 = ? AND (d.receiving_unit = ? OR d.handling_unit = ? OR EXISTS (
               SELECT 1 FROM dossier_steps AS s
               WHERE s.dossier_id = d.id AND s.handling_unit = ?))
           LIMIT 1""",
        (sha256, unit, unit, unit),
    ).fetchone()
    return row is not None


def check_sender(caller: Caller, batch: Batch, carrier: str = "batch") -> None:
    """A node sends its own ops only: the batch's sender and every run's origin are the caller
    (``carrier`` names what carried the batch in the refusal: "batch", "bundle")."""
    strangers = sorted({run.seal.node for run in batch.runs if run.seal.node != caller.node})
    if batch.sender != caller.node or strangers:
        raise wire.ScopeViolation(
            f"the {carrier} carries ops under another node's id ({', '.join(strangers) or batch.sender}); "
            f"node {caller.node} may only send its own"
        )


def _origins(batches: Iterable[Batch]) -> set[str]:
    return {run.seal.node for batch in batches for run in batch.runs}
