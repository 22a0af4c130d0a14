"""The hub side of the sync protocol as a contract: the same assertions against every hub a box
may talk to.

- ``fake``: the tests' :class:`synckit.FakeHub` (through its :class:`synckit.FakePeer`), which
  the sync client's fault tests use;
- ``city``: the city's own request handlers (:class:`central.hub.Hub`) over a real city data
  directory, in this process (:class:`centralkit.HubPeer`: signed and admitted, no HTTP);
- ``http``: the real city server on 127.0.0.1 (uvicorn) and the box's :class:`HttpPeer`.

Each side has two boxes made from node files, Ninh Kiều (``A``) and Cái Khế (``B``); the box's
part is played by the edge's protocol core (:mod:`edge.protocol`), so the hub is what is under
test. Where the fake disagreed with the real hub, the real hub was right and the fake was fixed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, HubPeer, city_world
from edgekit import CLOCK_OK, actor, sample_input
from synckit import FakeHub

from central.city import init_central
from central.hub import Hub
from central.registry import add_node, revoke_node, write_node_file
from edge import protocol
from edge.dossiers import receive
from edge.node import Node, init_from_node_file
from edge.uploads import check_scan
from sync import ops as opcodec
from sync import wire
from sync.batch import PROTOCOL, Batch, Run, decode_batch, encode_batch, seal_run
from sync.blobs import BlobNotFound
from sync.errors import CorruptBatch, RevokedNode, UnknownNode
from sync.feed import EVERYWHERE
from sync.identity import Identity
from sync.ops import Op
from sync.transport import Peer

A, B = NINH_KIEU, CAI_KHE


class Side(Protocol):
    """A hub and two boxes registered with it."""

    city_key: bytes
    city_node: str
    boxes: dict[str, Node]

    def peer(self, unit: str) -> Peer: ...

    def stranger(self, unit: str) -> Peer:
        """A peer signing with a key the city never registered."""

    def revoke(self, unit: str) -> None: ...


class FakeSide:
    def __init__(self, tmp: Path) -> None:
        self.hub = FakeHub(tmp / "hub")
        self.city_key = self.hub.identity.public_raw
        self.city_node = self.hub.identity.node
        self.boxes = {unit: self.hub.make_edge(tmp / unit, unit) for unit in (A, B)}

    def peer(self, unit: str) -> Peer:
        return self.hub.peer(self.boxes[unit])

    def stranger(self, unit: str) -> Peer:
        return self.hub.peer_for(Identity.generate(unit))

    def revoke(self, unit: str) -> None:
        self.hub.revoke(self.boxes[unit].identity.node)

    def close(self) -> None:
        for box in self.boxes.values():
            box.close()
        self.hub.close()


class CitySide:
    def __init__(self, tmp: Path) -> None:
        self.city, _ = init_central(tmp / "city", "92", PASSWORD)
        self.boxes = {}
        for unit in (A, B):
            new = add_node(self.city, unit, "http://127.0.0.1:1")
            write_node_file(tmp / f"{unit}.node.json", new.node_file)
            self.boxes[unit] = init_from_node_file(tmp / unit, tmp / f"{unit}.node.json")
        self.hub = Hub(self.city)
        self.city_key = self.city.node.identity.public_raw
        self.city_node = self.city.node.identity.node

    def peer(self, unit: str) -> Peer:
        box = self.boxes[unit]
        return HubPeer(self.hub, box.identity, box.clock)

    def stranger(self, unit: str) -> Peer:
        return HubPeer(self.hub, Identity.generate(unit), self.boxes[unit].clock)

    def revoke(self, unit: str) -> None:
        revoke_node(self.city, self.boxes[unit].identity.node)

    def close(self) -> None:
        for box in self.boxes.values():
            box.close()
        self.city.close()


class HttpSide:
    def __init__(self, tmp: Path, stack: ExitStack) -> None:
        self.world = stack.enter_context(city_world(tmp))
        self.city = self.world.city
        self.boxes = self.world.edges
        self.city_key = self.city.node.identity.public_raw
        self.city_node = self.city.node.identity.node

    def peer(self, unit: str) -> Peer:
        return self.world.peer(unit)

    def stranger(self, unit: str) -> Peer:
        return self.world.peer(unit, identity=Identity.generate(unit))

    def revoke(self, unit: str) -> None:
        revoke_node(self.city, self.boxes[unit].identity.node)


@pytest.fixture(params=["fake", "city", "http"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Side]:
    if request.param == "fake":
        fake = FakeSide(tmp_path)
        yield fake
        fake.close()
    elif request.param == "city":
        city = CitySide(tmp_path)
        yield city
        city.close()
    else:
        with ExitStack() as stack:
            yield HttpSide(tmp_path, stack)


# --- the box's part, played by the edge's protocol core ---------------------------------------------


def me(side: Side, unit: str) -> str:
    return side.boxes[unit].identity.node


def hello(side: Side, unit: str, **fields: object) -> wire.HelloReply:
    box = side.boxes[unit]
    values: dict[str, object] = dict(
        software="motcua-contract",
        head=box.replica.vector()[me(side, unit)],
        cursor=0,
        wall_ms=box.clock.wall_ms(),
    )
    values.update(fields)
    return side.peer(unit).hello(wire.Hello(**values))  # type: ignore[arg-type]


def pull_all(side: Side, unit: str, cursor: int = 0, max_ops: int = 5000) -> tuple[int, list[wire.PullReply]]:
    """Pull until done, certificates applied and batches merged: the cursor and the replies."""
    box = side.boxes[unit]
    peer = side.peer(unit)
    replies = []
    while True:
        reply = peer.pull(wire.PullRequest(cursor=cursor, max_ops=max_ops))
        protocol.apply_certs(box.replica, me(side, unit), protocol.check_certs(reply.certs, side.city_key))
        for data in reply.batches:
            box.replica.merge(data)
        assert reply.done or reply.cursor > cursor, "the feed did not move"
        cursor = reply.cursor
        replies.append(reply)
        if reply.done:
            return cursor, replies


def pending(side: Side, unit: str, have: int = 0) -> list[bytes]:
    box = side.boxes[unit]
    return [encode_batch(b) for b in box.replica.batches({me(side, unit): have}, nodes=[me(side, unit)])]


def push_all(side: Side, unit: str) -> list[wire.Ack]:
    peer = side.peer(unit)
    return [
        protocol.check_ack(peer.push(data), side.city_key, me(side, unit), data)
        for data in pending(side, unit)
    ]


def receive_at(side: Side, unit: str, handler: str, scan: bytes | None = None) -> str:
    """A dossier received at ``unit``'s box (the real service layer), handled by ``handler``."""
    scans = [] if scan is None else [check_scan("don.pdf", scan, 15 << 20)]
    user = "canbo01" if unit == A else "canbo_caikhe"
    draft = sample_input(handling_unit=handler, address_unit=unit)
    return receive(side.boxes[unit], actor(user), draft, scans, CLOCK_OK).id


def forge(box: Node, first_seq: int, ops: list[tuple[str, str, str, dict[str, object]]]) -> bytes:
    """Ops signed by the box's key with no local rule checking them: what a rogue box can send."""
    identity = box.identity
    bodies = [
        opcodec.encode(
            Op(identity.node, first_seq + i, box.clock.now().pack(), kind, entity, action, payload)
        )
        for i, (kind, entity, action, payload) in enumerate(ops)
    ]
    seal = seal_run(identity.node, first_seq, bodies, identity.sign)
    return encode_batch(Batch(PROTOCOL, identity.node, [Run(seal, bodies)]))


def scope_digest(side: Side, unit: str) -> bytes:
    return side.boxes[unit].replica.scope_digest({unit, EVERYWHERE})


def origins(reply: wire.PullReply) -> set[str]:
    return {run.seal.node for data in reply.batches for run in decode_batch(data).runs}


# --- time and hello -------------------------------------------------------------------------------


def test_time_is_signed_by_the_city_for_the_nonce(side: Side) -> None:
    nonce = os.urandom(wire.TIME_NONCE_BYTES)
    reply = wire.check_time(side.peer(A).time(nonce), side.city_key, nonce)
    assert wire.PROTOCOL in reply.protocols
    with pytest.raises(wire.BadSignature):
        wire.check_time(side.peer(A).time(nonce), side.city_key, os.urandom(wire.TIME_NONCE_BYTES))


def test_hello_answers_what_the_city_holds_and_how_far_the_box_clock_is(side: Side) -> None:
    reply = hello(side, A, wall_ms=side.boxes[A].clock.wall_ms() - 3_600_000)
    assert reply.have == 0
    assert reply.feed_head >= 1  # the province's reference data, authored by the city
    assert reply.drift_ms >= 3_600_000 - 60_000  # the box is an hour behind (one clock, one machine)
    assert reply.protocol == wire.PROTOCOL


def test_hello_carries_the_certificates_asked_for(side: Side) -> None:
    certs = protocol.check_certs(hello(side, A).certs, side.city_key)
    by_node = {cert.node: cert for cert in certs}
    assert {me(side, A), me(side, B), side.city_node} <= set(by_node)
    assert by_node[me(side, B)].public_key == side.boxes[B].identity.public_raw
    assert by_node[me(side, B)].unit == B
    assert all(cert.revoked_after is None for cert in certs)
    # certs_since_ms: only what was issued since (a day of slack), so a week ahead asks none.
    later = hello(side, A, certs_since_ms=side.boxes[A].clock.wall_ms() + 7 * 86_400_000)
    assert later.certs == []


# --- push and acknowledgements ----------------------------------------------------------------------


def test_push_is_acknowledged_signed_for_the_batch_and_idempotent(side: Side) -> None:
    pull_all(side, A)
    receive_at(side, A, B)
    receive_at(side, A, A)
    head = side.boxes[A].replica.vector()[me(side, A)]
    [data] = pending(side, A)
    ack = protocol.check_ack(side.peer(A).push(data), side.city_key, me(side, A), data)
    assert ack.have == head
    assert ack.batch_sha256 == hashlib.sha256(data).digest()
    assert hello(side, A).have == head
    again = protocol.check_ack(side.peer(A).push(data), side.city_key, me(side, A), data)
    assert again.have == head
    assert hello(side, A).have == head


def test_a_garbled_batch_is_refused(side: Side) -> None:
    with pytest.raises(CorruptBatch):
        side.peer(A).push(b"\x28\xb5\x2f\xfd not a batch")
    assert hello(side, A).have == 0


def test_ops_under_another_nodes_id_are_refused(side: Side) -> None:
    pull_all(side, B)
    receive_at(side, B, B)
    [theirs] = pending(side, B)
    with pytest.raises(wire.ScopeViolation):
        side.peer(A).push(theirs)
    assert hello(side, B).have == 0


@pytest.mark.parametrize(
    "op",
    [
        ("dossier", "d" * 32, "create", {"receiving_unit": B, "handling_unit": B}),
        ("unit", A, "upsert", {"name": "Phường Ninh Kiều (sửa)"}),
        ("procedure", "9.999999", "upsert", {"name": "x"}),
    ],
    ids=["another unit's dossier", "reference data", "the catalogue"],
)
def test_ops_outside_the_write_scope_are_refused_whole(
    side: Side, op: tuple[str, str, str, dict[str, object]]
) -> None:
    pull_all(side, A)
    receive_at(side, A, A)
    mine = side.boxes[A].replica.vector()[me(side, A)]
    push_all(side, A)
    with pytest.raises(wire.ScopeViolation):
        side.peer(A).push(forge(side.boxes[A], mine + 1, [op]))
    assert hello(side, A).have == mine


# --- pull, cursor, digest -----------------------------------------------------------------------------


def test_pull_brings_the_scope_after_the_cursor_but_not_the_own_ops(side: Side) -> None:
    pull_all(side, A)
    cursor_b, first = pull_all(side, B)
    assert side.city_node in set().union(*map(origins, first))
    dossier = receive_at(side, A, B)
    push_all(side, A)
    cursor_b2, replies = pull_all(side, B, cursor_b)
    assert cursor_b2 > cursor_b
    assert origins(replies[0]) == {me(side, A)}
    assert side.boxes[B].replica.state("dossier", dossier) == side.boxes[A].replica.state("dossier", dossier)
    # The sender's own ops do not come back to it.
    _, own = pull_all(side, A, 0)
    assert me(side, A) not in set().union(*map(origins, own))
    # Nothing after the end: an empty, done reply at the same cursor.
    end = side.peer(B).pull(wire.PullRequest(cursor=cursor_b2))
    assert (end.batches, end.done, end.cursor) == ([], True, cursor_b2)


def test_small_pulls_page_through_the_same_scope(side: Side) -> None:
    cursor, replies = pull_all(side, B, max_ops=7)
    assert len(replies) > 1
    assert all(r.batches for r in replies[:-1])  # every slice before the last moved the feed on
    reply = side.peer(B).digest()
    assert reply.scope_digest == scope_digest(side, B)
    assert reply.feed_head >= cursor


def test_the_digests_agree_after_a_full_exchange(side: Side) -> None:
    pull_all(side, A)
    pull_all(side, B)
    receive_at(side, A, B)
    receive_at(side, B, A)
    receive_at(side, B, B)  # in B's scope only
    push_all(side, A)
    push_all(side, B)
    for unit in (A, B):
        pull_all(side, unit)
        assert side.peer(unit).digest().scope_digest == scope_digest(side, unit)
    assert scope_digest(side, A) != scope_digest(side, B)  # two scopes, each compared whole


def test_a_pull_carries_the_certificates_of_its_origins(side: Side) -> None:
    pull_all(side, A)
    receive_at(side, A, B)
    push_all(side, A)
    _, replies = pull_all(side, B, 0)
    certs = {cert.node for r in replies for cert in protocol.check_certs(r.certs, side.city_key)}
    assert {me(side, A), side.city_node} <= certs
    assert certs <= set().union(*map(origins, replies))


# --- revocation and strangers ---------------------------------------------------------------------------


def test_a_revoked_box_is_refused_and_its_certificate_says_after_which_op(side: Side) -> None:
    pull_all(side, A)
    receive_at(side, A, B)
    push_all(side, A)
    held = side.boxes[A].replica.vector()[me(side, A)]
    side.revoke(A)
    with pytest.raises(RevokedNode):
        hello(side, A)
    with pytest.raises(RevokedNode):
        side.peer(A).pull(wire.PullRequest(cursor=0))
    certs = {c.node: c for c in protocol.check_certs(hello(side, B).certs, side.city_key)}
    assert certs[me(side, A)].revoked_after == held
    # Applied at the other box, the revocation refuses what the revoked box writes after it.
    protocol.apply_certs(side.boxes[B].replica, me(side, B), certs.values())
    receive_at(side, A, B)
    [after] = pending(side, A, held)
    with pytest.raises(RevokedNode):
        side.boxes[B].replica.merge(after)


def test_a_box_the_city_never_registered_is_refused(side: Side) -> None:
    stranger = side.stranger(A)
    with pytest.raises(UnknownNode):
        stranger.hello(wire.Hello(software="x", head=0, cursor=0, wall_ms=side.boxes[A].clock.wall_ms()))
    with pytest.raises(UnknownNode):
        stranger.pull(wire.PullRequest(cursor=0))


# --- attachments -----------------------------------------------------------------------------------------


def test_scans_go_up_in_resumable_chunks_and_down_to_the_boxes_of_their_dossier(side: Side) -> None:
    pull_all(side, A)
    cursor_b, _ = pull_all(side, B)
    data = b"%PDF-1.4\n" + os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    private = b"%PDF-1.4\n" + os.urandom(1_000)
    receive_at(side, A, B, scan=data)
    receive_at(side, A, A, scan=private)  # handled at A: none of B's business
    push_all(side, A)
    up = side.peer(A)
    assert up.blob_size(sha) == 0
    assert up.put_blob(sha, 0, data[:60_000]) == 60_000
    assert up.put_blob(sha, 0, data[:60_000]) == 60_000  # a retry after a lost reply: ignored
    assert up.put_blob(sha, 90_000, data[90_000:]) == 60_000  # ahead of what arrived: resume at 60,000
    assert up.put_blob(sha, 60_000, data[60_000:]) == len(data)
    assert up.blob_size(sha) == len(data)
    private_sha = hashlib.sha256(private).hexdigest()
    assert up.put_blob(private_sha, 0, private) == len(private)

    _, replies = pull_all(side, B, cursor_b)
    named = [s for r in replies for s in r.blobs]
    assert named == [sha]  # the scans of the ops pulled that the city holds, each once
    down = side.peer(B)
    assert down.get_blob(sha, 0, 70_000) + down.get_blob(sha, 70_000, 70_000) == data
    for hidden in (private_sha, hashlib.sha256(b"never attached").hexdigest()):
        with pytest.raises(BlobNotFound):
            down.get_blob(hidden, 0, 100)
    assert side.peer(A).get_blob(private_sha, 0, 2_000) == private
