"""A box one protocol version behind keeps syncing with an upgraded city (two wire formats)."""

from __future__ import annotations

import msgspec
from centralkit import CAI_KHE, NINH_KIEU
from edgekit import actor, receive_sample

from central.compat import HelloV1
from edge.dossiers import perform
from edge.settings import load
from edge.syncclient import sync_once
from sync import wire
from sync.transport import HttpPeer


class Protocol1Peer(HttpPeer):
    """What a box that was not upgraded sends: protocol 1 in its headers and its hello without
    protocol 2's ``oldest_waiting_ms`` field."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.protocol = 1
        self.replies: list[int] = []

    def hello(self, hello: wire.Hello) -> wire.HelloReply:
        fields = {k: v for k, v in msgspec.structs.asdict(hello).items() if k in HelloV1.__struct_fields__}
        body = msgspec.msgpack.encode(HelloV1(**fields))
        assert b"oldest_waiting_ms" not in body
        reply = wire.decode(self._request("POST", "/sync/v1/hello", body).content, wire.HelloReply)
        self.replies.append(reply.protocol)
        return reply


def test_a_protocol_1_box_and_a_protocol_2_box_converge_through_the_same_city(world):
    old_box, new_box = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    old = Protocol1Peer(world.url, old_box.identity, old_box.clock, timeout=30)
    new = world.peer(CAI_KHE)
    try:
        assert sync_once(old_box, old, load(old_box.data_dir, digest_interval_s=0)).ok
        assert sync_once(new_box, new, load(new_box.data_dir, digest_interval_s=0)).ok
        routed = receive_sample(old_box, "canbo01", handling_unit=CAI_KHE).id
        assert sync_once(old_box, old, load(old_box.data_dir, digest_interval_s=0)).ok
        assert sync_once(new_box, new, load(new_box.data_dir, digest_interval_s=0)).ok
        perform(new_box, actor("canbo_caikhe"), routed, "accept")
        assert sync_once(new_box, new, load(new_box.data_dir, digest_interval_s=0)).ok
        result = sync_once(old_box, old, load(old_box.data_dir, digest_interval_s=0))
        assert result.ok
        assert result.digest_match is True
        assert old_box.replica.state("dossier", routed)["status"] == 2
        assert set(old.replies) == {1}  # the city answered every hello in the box's dialect
        status = {s.node: s for s in world.city.fleet.statuses()}
        assert status[old_box.identity.node].protocol == 1
        assert status[new_box.identity.node].protocol == 2
    finally:
        old.close()


def test_a_protocol_2_box_reports_how_long_its_oldest_change_has_waited(world):
    box = world.edges[NINH_KIEU]
    peer = world.peer(NINH_KIEU)
    assert sync_once(box, peer, load(box.data_dir)).ok
    receive_sample(box)
    first = box.replica.op(box.identity.node, box.replica.peer_vector("central")[box.identity.node] + 1)
    head = box.replica.vector()[box.identity.node]
    hello = wire.Hello("t", head, 0, box.clock.wall_ms(), oldest_waiting_ms=first.hlc.wall)
    peer.hello(hello)  # a hello alone: the city learns how long the change has waited
    status = {s.node: s for s in world.city.fleet.statuses()}
    assert status[box.identity.node].oldest_waiting_ms == first.hlc.wall


def test_a_protocol_2_hello_carries_only_certificates_the_box_does_not_have(world):
    box = world.edges[NINH_KIEU]
    peer = world.peer(NINH_KIEU)
    head = box.replica.vector()[box.identity.node]
    everything = peer.hello(wire.Hello("t", head, 0, box.clock.wall_ms()))
    assert len(everything.certs) == 3  # two communes and the city
    newest = max(c.issued_ms for c in everything.certs)
    later = world.city.node.clock.wall_ms() + 2 * 24 * 3_600_000
    nothing_new = peer.hello(wire.Hello("t", head, 0, box.clock.wall_ms(), certs_since_ms=later))
    assert nothing_new.certs == []
    assert sync_once(box, peer, load(box.data_dir)).ok
    assert int(box.replica.meta("sync.certs_since_ms")) == newest
