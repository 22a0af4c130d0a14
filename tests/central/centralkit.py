"""Helpers for the central tests (importable: tests/central is on pytest's pythonpath).

A city of province 92 with two registered edges made from their node files: Phường Ninh Kiều
(31135) and Phường Cái Khế (31120), a real uvicorn server on loopback, and ``sync_round``: one
round of the protocol as an edge does it (time, hello, certificates, push, pull, digest).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from ports import free_port
from starlette.applications import Starlette

from central.app import create_central_app
from central.city import City, init_central
from central.database import DatabaseConfig
from central.hub import Caller, Counts, Hub
from central.registry import add_node, write_node_file
from edge import protocol
from edge.node import Node, init_from_node_file
from edge.settings import load
from sync import wire
from sync.batch import encode_batch
from sync.clock import Clock
from sync.identity import Identity
from sync.transport import HttpPeer

PASSWORD = "Matkhau123"
NINH_KIEU, CAI_KHE = "31135", "31120"
CURSOR = "central_cursor"


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(url + "/sync/v1/time", timeout=1.0)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start") from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class HubPeer:
    """The :class:`sync.transport.Peer` contract over :class:`central.hub.Hub` in this process,
    for one node: every request but ``time`` is signed and admitted (:meth:`Hub.admit`) as
    :mod:`central.syncapi` admits it, then the hub's method is called; refusals are the typed
    errors the HTTP layer would render. No HTTP, no fleet.db attempt rows."""

    def __init__(self, hub: Hub, identity: Identity, clock: Clock) -> None:
        self.hub = hub
        self.identity = identity
        self.clock = clock

    def _caller(self, path: str, body: bytes = b"") -> Caller:
        headers = wire.sign_request(self.identity, "POST", path, body, self.clock.wall_ms())
        return self.hub.admit(headers, "POST", path, body)

    def time(self, nonce: bytes = b"") -> wire.TimeReply:
        return self.hub.time(nonce)

    def hello(self, hello: wire.Hello) -> wire.HelloReply:
        body = wire.encode(hello)
        return self.hub.hello(self._caller("/sync/v1/hello", body), hello)

    def push(self, batch: bytes) -> wire.Ack:
        return self.hub.push(self._caller("/sync/v1/push", batch), batch, Counts())

    def pull(self, request: wire.PullRequest) -> wire.PullReply:
        body = wire.encode(request)
        return self.hub.pull(self._caller("/sync/v1/pull", body), request, Counts())

    def digest(self) -> wire.DigestReply:
        return self.hub.digest(self._caller("/sync/v1/digest"))

    def blob_size(self, sha256: str) -> int:
        return self.hub.blob_size(self._caller(f"/sync/v1/blobs/{sha256}/size"), sha256)

    def put_blob(self, sha256: str, offset: int, chunk: bytes) -> int:
        caller = self._caller(f"/sync/v1/blobs/{sha256}/chunks/{offset}", chunk)
        return self.hub.put_blob(caller, sha256, offset, chunk)

    def get_blob(self, sha256: str, offset: int, size: int) -> bytes:
        caller = self._caller(f"/sync/v1/blobs/{sha256}/read/{offset}/{size}")
        return self.hub.get_blob(caller, sha256, offset, size)


@dataclass
class Round:
    pushed: int = 0
    pulled: int = 0
    acks: list[wire.Ack] = field(default_factory=list)
    edge_digest: bytes = b""
    central_digest: bytes = b""


def trust_certs(node: Node, certs: list[wire.Cert]) -> None:
    """The certificates a reply brings, checked and applied as the sync client does."""
    central_key = bytes.fromhex(node.config.central_key or "")
    protocol.apply_certs(node.replica, node.identity.node, protocol.check_certs(certs, central_key))


def sync_round(node: Node, peer: HttpPeer, max_ops: int = 2000, backup_age_s: int | None = 60) -> Round:
    """One sync round as an edge does it (the real client is edge/syncclient.py); the box says
    its backup is ``backup_age_s`` old (None: it has none, an alert on the fleet page)."""
    done = Round()
    me = node.identity.node
    replica = node.replica
    peer.time()
    cursor = int(replica.meta(CURSOR, 0) or 0)
    hello = wire.Hello(
        software="motcua-test",
        head=replica.vector()[me],
        cursor=cursor,
        wall_ms=node.clock.wall_ms(),
        backup_age_s=backup_age_s,
    )
    reply = peer.hello(hello)
    trust_certs(node, reply.certs)
    for batch in replica.batches({me: reply.have}, nodes=[me]):
        ack = wire.check_ack(peer.push(encode_batch(batch)), bytes.fromhex(node.config.central_key or ""))
        done.acks.append(ack)
        done.pushed += sum(len(run.ops) for run in batch.runs)
    while True:
        pulled = peer.pull(wire.PullRequest(cursor, max_ops))
        trust_certs(node, pulled.certs)
        for data in pulled.batches:
            report = replica.merge(data)
            done.pulled += report.applied
        cursor = pulled.cursor
        replica.set_meta(CURSOR, cursor)
        if pulled.done:
            break
    done.edge_digest = replica.scope_digest({node.config.unit, "*"})
    done.central_digest = peer.digest().scope_digest
    return done


@dataclass
class World:
    """Cần Thơ's city (province 92) serving on loopback in this process, with Ninh Kiều and Cái
    Khế registered and their boxes made from the node files city IT hands out."""

    city: City
    hub: Hub
    url: str
    edges: dict[str, Node]
    node_files: dict[str, Path]
    _peers: list[HttpPeer] = field(default_factory=list)

    def peer(self, unit: str, identity: Identity | None = None, clock: Clock | None = None) -> HttpPeer:
        edge = self.edges[unit]
        peer = HttpPeer(self.url, identity or edge.identity, clock or edge.clock, timeout=30)
        self._peers.append(peer)
        return peer

    def central_log(self) -> tuple[int, dict[str, int]]:
        """What central holds: op count and vector (unchanged by any refused request)."""
        replica = self.city.node.replica
        return replica.op_count(), dict(replica.vector())

    def close(self) -> None:
        for peer in self._peers:
            peer.close()


@contextmanager
def city_world(tmp_path: Path, database: DatabaseConfig | None = None) -> Iterator[World]:
    """``database``: the city keeps its fleet there (PostgreSQL), not in DIR/fleet.db."""
    city, _ = init_central(tmp_path / "city", "92", PASSWORD, database=database)
    files = {}
    for unit in (NINH_KIEU, CAI_KHE):
        new = add_node(city, unit, "http://127.0.0.1:1", insecure_lan_test=True)
        files[unit] = tmp_path / f"{unit}.node.json"
        write_node_file(files[unit], new.node_file)
    edges = {unit: init_from_node_file(tmp_path / unit, path) for unit, path in files.items()}
    hub = Hub(city)
    app = create_central_app(load(city.node.data_dir), hub)
    try:
        with serving(app) as url:
            w = World(city, hub, url, edges, files)
            try:
                yield w
            finally:
                w.close()
    finally:
        for edge in edges.values():
            edge.close()
        city.close()
