"""A city hub in memory for the edge's sync client: a real feed replica behind a fake Peer.

:class:`FakeHub` is a ``Replica(feed=True)`` with the domain's kinds, a city identity that
signs certificates and acknowledgements, and the province's reference data and accounts
authored as ops, the way central does. :class:`FakePeer` implements the
:class:`sync.transport.Peer` contract over it for one node, counts bytes like ``HttpPeer``, and
injects faults: the link down, a cut on the n-th call of a method (before the hub acts, or
after it acted with the reply lost), a refusal.

``tests/central/test_hub_contract.py`` holds it to the real city's answers (the same assertions
run against ``central.hub.Hub``); what the city decides it decides with the city's own functions
(the sender and write-scope checks, which scans a pull names, who may read a scan).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgekit import ACCOUNTS, PASSWORD

from central import scope
from central.hub import CERT_SLACK_MS, MAX_PULL_OPS, Caller, check_sender, may_read
from edge.auth import hash_password
from edge.node import Node, init_from_node_file
from edge.protocol import attachments
from schema import KINDS, PILOT_PROCEDURES, migrate, province_units
from sync import wire
from sync.batch import decode_batch, encode_batch
from sync.blobs import BlobNotFound, MemoryBlobStore
from sync.clock import Clock
from sync.errors import PeerUnreachable, RevokedNode, SyncError, UnknownNode
from sync.feed import EVERYWHERE
from sync.identity import Identity
from sync.replica import Replica

PROVINCE = "92"
CENTRAL_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


@dataclass
class Break:
    """Fail the ``nth`` call (1-based, counted per peer) of ``method`` with ``error``; with
    ``after`` the hub did the work and only the reply was lost."""

    method: str
    nth: int
    error: Exception = field(default_factory=lambda: PeerUnreachable("connection reset (ReadError)"))
    after: bool = False


class FakeHub:
    def __init__(self, directory: Path, wall: Callable[[], int] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.identity = Identity.generate(PROVINCE)
        self.clock = Clock(wall=wall) if wall is not None else Clock()
        self.replica = Replica(
            directory / "hub.db", self.identity, KINDS, clock=self.clock, migrate=migrate, feed=True
        )
        self.certs: dict[str, wire.Cert] = {}
        self.units: dict[str, str] = {}
        self.store = MemoryBlobStore()
        self.parts: dict[str, bytearray] = {}
        self.own_cert = wire.issue_cert(
            self.identity, self.identity.node, self.identity.unit, self.identity.public_raw, self.now(), None
        )
        with self.replica.write() as w:
            for unit in province_units(PROVINCE):
                w.append("unit", unit.code, "upsert", unit.as_payload())
            for procedure in PILOT_PROCEDURES:
                w.append("procedure", procedure.code, "upsert", procedure.as_payload())
            for username, (name, role, unit) in ACCOUNTS.items():
                w.append("account", username, "create", _account(username, name, role, unit))

    def close(self) -> None:
        self.replica.close()

    def now(self) -> int:
        return self.clock.wall_ms()

    def register(self, identity: Identity) -> wire.Cert:
        self.replica.trust(identity.node, identity.public_raw)
        cert = wire.issue_cert(
            self.identity, identity.node, identity.unit, identity.public_raw, self.now(), None
        )
        self.certs[identity.node] = cert
        self.units[identity.node] = identity.unit
        return cert

    def revoke(self, node: str, after: int | None = None) -> None:
        after = self.replica.revoke(node, after)
        old = self.certs[node]
        self.certs[node] = wire.issue_cert(
            self.identity, old.node, old.unit, old.public_key, self.now(), after
        )

    def make_edge(self, directory: Path, unit: str, clock: Clock | None = None) -> Node:
        """An edge made from a node file, as ``motcua node add`` + ``motcua edge init`` do."""
        identity = Identity.generate(unit)
        self.register(identity)
        node_file = directory.with_suffix(".node.json")
        node_file.write_text(
            json.dumps(
                {
                    "node": identity.node,
                    "unit": unit,
                    "province": PROVINCE,
                    "private_key": identity.private_bytes().hex(),
                    "central_url": CENTRAL_URL,
                    "central_key": self.identity.public_raw.hex(),
                    "central_node": self.identity.node,
                    "insecure_lan_test": True,  # plain http:// to the discard port
                }
            ),
            encoding="utf-8",
        )
        return init_from_node_file(directory, node_file, clock)

    def peer(self, node: Node, **kw: object) -> FakePeer:
        return FakePeer(self, node.identity.node, **kw)  # type: ignore[arg-type]

    def peer_for(self, identity: Identity) -> FakePeer:
        """A peer signing as ``identity``, registered or not (the city refuses a stranger)."""
        return FakePeer(self, identity.node)

    def scope_digest(self, unit: str) -> bytes:
        return self.replica.scope_digest({unit, EVERYWHERE})


def _account(username: str, name: str, role: str, unit: str) -> dict[str, object]:
    return {
        "username": username,
        "full_name": name,
        "unit": unit,
        "role": role,
        "password_hash": hash_password(PASSWORD),
        "active": True,
    }


class FakePeer:
    """The Peer contract for one node over a :class:`FakeHub`, with faults on demand."""

    def __init__(self, hub: FakeHub, node: str, max_ops: int | None = None) -> None:
        self.hub = hub
        self.node = node
        self.unit = hub.units.get(node, "")
        self.max_ops = max_ops
        self.sent = 0
        self.received = 0
        self.down = False
        self.refuse: SyncError | None = None
        self.breaks: list[Break] = []
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, object]] = []
        """(method, detail) of every call that reached the hub: offsets of blob chunks, cursors."""

    # --- faults ------------------------------------------------------------------------------

    def _enter(self, method: str, detail: object = None, signed: bool = True) -> None:
        self.calls[method] += 1
        if self.down:
            raise PeerUnreachable("no connection to the city server (ConnectError)")
        for b in self.breaks:
            if b.method == method and b.nth == self.calls[method] and not b.after:
                raise b.error
        if signed and self.refuse is not None:
            raise self.refuse
        if signed and self.node not in self.hub.certs:
            raise UnknownNode(f"node {self.node} is not registered with the city")
        if signed and self.hub.certs[self.node].revoked_after is not None:
            raise RevokedNode(f"node {self.node} was revoked by the city; its requests are refused")
        self.log.append((method, detail))

    def _leave(self, method: str, size: int) -> None:
        self.received += size
        for b in self.breaks:
            if b.method == method and b.nth == self.calls[method] and b.after:
                raise b.error

    # --- the contract --------------------------------------------------------------------------

    def time(self, nonce: bytes = b"") -> wire.TimeReply:
        self._enter("time", signed=False)
        reply = wire.sign_time(self.hub.identity, self.hub.now(), sorted(wire.SUPPORTED), nonce)
        self._leave("time", len(wire.encode(reply)))
        return reply

    def hello(self, hello: wire.Hello) -> wire.HelloReply:
        self.sent += len(wire.encode(hello))
        self._enter("hello", hello)
        now = self.hub.now()
        have = (
            self.hub.replica.give_up(self.node, hello.give_up, now)
            if hello.give_up
            else self.hub.replica.vector()[self.node]
        )
        reply = wire.HelloReply(
            time_ms=now,
            have=have,
            feed_head=self.hub.replica.feed_head(),
            drift_ms=now - hello.wall_ms,
            certs=[
                cert
                for cert in (*self.hub.certs.values(), self.hub.own_cert)
                if cert.issued_ms > hello.certs_since_ms - CERT_SLACK_MS
            ],
            given_up=bool(hello.give_up),
        )
        self._leave("hello", len(wire.encode(reply)))
        return reply

    def push(self, batch: bytes) -> wire.Ack:
        self.sent += len(batch)
        self._enter("push", len(batch))
        decoded = decode_batch(batch)
        check_sender(Caller(self.node, self.unit, wire.PROTOCOL), decoded)
        self.hub.replica.merge(decoded, admit=lambda ops, states: scope.check_batch(ops, self.unit, states))
        have = self.hub.replica.vector()[self.node]
        ack = wire.sign_ack(self.hub.identity, self.node, have, batch, self.hub.now())
        self._leave("push", len(wire.encode(ack)))
        return ack

    def pull(self, request: wire.PullRequest) -> wire.PullReply:
        self.sent += len(wire.encode(request))
        self._enter("pull", request.cursor)
        max_ops = min(max(1, request.max_ops), MAX_PULL_OPS, self.max_ops or MAX_PULL_OPS)
        batches, part = self.hub.replica.pull(
            {self.unit, EVERYWHERE}, max(0, request.cursor), exclude=self.node, max_ops=max_ops
        )
        origins = {run.seal.node for b in batches for run in b.runs}
        certs = [c for n, c in self.hub.certs.items() if n in origins]
        if self.hub.identity.node in origins:
            certs.append(self.hub.own_cert)
        reply = wire.PullReply(
            cursor=part.cursor,
            done=part.done,
            batches=[encode_batch(b) for b in batches],
            certs=certs,
            blobs=[s for s in attachments(batches) if self.hub.store.has(s)],
        )
        self._leave("pull", len(wire.encode(reply)))
        return reply

    def digest(self) -> wire.DigestReply:
        self._enter("digest")
        reply = wire.DigestReply(self.hub.scope_digest(self.unit), self.hub.replica.feed_head())
        self._leave("digest", len(wire.encode(reply)))
        return reply

    def blob_size(self, sha256: str) -> int:
        self._enter("blob_size", sha256)
        size = (
            len(self.hub.store.get(sha256))
            if self.hub.store.has(sha256)
            else len(self.hub.parts.get(sha256, b""))
        )
        self._leave("blob_size", 8)
        return size

    def put_blob(self, sha256: str, offset: int, chunk: bytes) -> int:
        self.sent += len(chunk)
        self._enter("put_blob", offset)
        if self.hub.store.has(sha256):
            size = len(self.hub.store.get(sha256))
        else:
            part = self.hub.parts.setdefault(sha256, bytearray())
            if offset == len(part):
                part.extend(chunk)
            size = len(part)
            if hashlib.sha256(part).hexdigest() == sha256:
                self.hub.store.put(bytes(part))
                del self.hub.parts[sha256]
        self._leave("put_blob", 8)
        return size

    def get_blob(self, sha256: str, offset: int, size: int) -> bytes:
        self._enter("get_blob", offset)
        with self.hub.replica.reading() as conn:
            readable = may_read(conn, self.unit, sha256)
        if not readable or not self.hub.store.has(sha256):
            raise BlobNotFound(f"the city does not hold attachment {sha256}")
        data = self.hub.store.get(sha256)[offset : offset + size]
        self._leave("get_blob", len(data))
        return data
