"""Attacks on the sync protocol, from a hostile LAN or a rogue box, and from a compromised or
impersonated city: forged, replayed, tampered, truncated and reordered batches; ops authored
under another node's id or outside the node's write scope; a revoked box.

The city side runs a real server (``world``); each refusal is checked three ways: the typed
error with its code, a ``sync_refused`` line in the city's audit log naming the node and the
endpoint, and the city's log unchanged (op count and vector). The box side checks that what a
city sends is verified before anything is applied, and refused into the box's audit log.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
import pytest
from centralkit import CAI_KHE, NINH_KIEU, sync_round
from edgekit import UNIT, actor, receive_sample
from synckit import FakeHub, FakePeer

from central.registry import revoke_node
from edge.dossiers import perform
from edge.settings import load
from edge.syncclient import sync_once
from sync import ops as opcodec
from sync import wire
from sync.batch import PROTOCOL, Batch, Run, decode_batch, encode_batch, seal_run
from sync.clock import Clock
from sync.errors import BadSignature, CorruptBatch, RevokedNode, SyncError
from sync.identity import Identity
from sync.ops import Op


def held(world) -> tuple[int, dict[str, int]]:
    replica = world.city.node.replica
    return replica.op_count(), dict(replica.vector())


def pending(world, unit: str, max_bytes: int | None = None) -> list[bytes]:
    """The box's own ops the city lacks, as encoded batches."""
    edge = world.edges[unit]
    me = edge.identity.node
    have = world.city.node.replica.vector()[me]
    options = {} if max_bytes is None else {"max_bytes": max_bytes}
    return [encode_batch(b) for b in edge.replica.batches({me: have}, nodes=[me], **options)]


def forge(
    identity: Identity, first_seq: int, ops: list[tuple[str, str, str, dict]], clock: Clock | None = None
) -> bytes:
    """Ops signed by ``identity`` with no local rule checking them: what a rogue box can send."""
    clock = clock or Clock()
    bodies = [
        opcodec.encode(Op(identity.node, first_seq + i, clock.now().pack(), kind, entity, action, payload))
        for i, (kind, entity, action, payload) in enumerate(ops)
    ]
    seal = seal_run(identity.node, first_seq, bodies, identity.sign)
    return encode_batch(Batch(PROTOCOL, identity.node, [Run(seal, bodies)]))


def refused_and_audited(world, node: str, code: str, before, endpoint: str = "/sync/v1/push") -> None:
    assert held(world) == before, "a refused request changed the city's log"
    entries = [e for e in world.city.node.audit.entries(event="sync_refused") if e.detail.get("code") == code]
    assert entries, f"no sync_refused/{code} in the city's audit log: {world.city.node.audit.counts()}"
    newest = entries[0]
    assert (newest.actor, newest.path, newest.method) == (node, endpoint, "POST")
    assert newest.detail["status"] >= 400


@pytest.fixture
def synced(world):
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    return world


# --- at the city ----------------------------------------------------------------------------------


def test_a_batch_signed_with_a_stolen_id_but_another_key_is_refused_and_audited(synced):
    edge = synced.edges[NINH_KIEU]
    receive_sample(edge)
    [batch] = pending(synced, NINH_KIEU)
    impostor = Identity(edge.identity.node, Identity.generate(NINH_KIEU).private)
    before = held(synced)
    with pytest.raises(BadSignature):
        synced.peer(NINH_KIEU, identity=impostor).push(batch)
    refused_and_audited(synced, edge.identity.node, "bad_signature", before)


def test_a_replayed_push_is_refused_and_audited(synced):
    edge = synced.edges[NINH_KIEU]
    receive_sample(edge)
    [body] = pending(synced, NINH_KIEU)
    headers = wire.sign_request(edge.identity, "POST", "/sync/v1/push", body, edge.clock.wall_ms())
    assert (
        httpx.post(synced.url + "/sync/v1/push", content=body, headers=headers, timeout=30).status_code == 200
    )
    before = held(synced)
    again = httpx.post(synced.url + "/sync/v1/push", content=body, headers=headers, timeout=30)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "replayed_request"
    refused_and_audited(synced, edge.identity.node, "replayed_request", before)


def test_a_request_signed_for_another_endpoint_or_body_is_refused(synced):
    """A captured signature is bound to its method, path and body: moved to a pull, or put on
    another body, it does not verify."""
    edge = synced.edges[NINH_KIEU]
    receive_sample(edge)
    [body] = pending(synced, NINH_KIEU)
    headers = wire.sign_request(edge.identity, "POST", "/sync/v1/push", body, edge.clock.wall_ms())
    before = held(synced)
    moved = httpx.post(synced.url + "/sync/v1/digest", content=body, headers=headers, timeout=30)
    assert moved.status_code in (400, 401)
    refused_and_audited(synced, edge.identity.node, moved.json()["error"]["code"], before, "/sync/v1/digest")
    other = forge(edge.identity, before[1].get(edge.identity.node, 0) + 1, [("dossier", "e" * 32, "set", {})])
    swapped = httpx.post(synced.url + "/sync/v1/push", content=other, headers=headers, timeout=30)
    assert swapped.status_code in (400, 401)
    refused_and_audited(synced, edge.identity.node, swapped.json()["error"]["code"], before)


def test_ops_reordered_inside_a_signed_run_are_refused_and_audited(synced):
    edge = synced.edges[NINH_KIEU]
    received = receive_sample(edge)
    perform(edge, actor("canbo01"), received.id, "accept")
    [body] = pending(synced, NINH_KIEU)
    batch = decode_batch(body)
    run = batch.runs[0]
    assert len(run.ops) >= 2
    swapped = Batch(batch.protocol, batch.sender, [Run(run.seal, [run.ops[1], run.ops[0], *run.ops[2:]])])
    before = held(synced)
    with pytest.raises(CorruptBatch, match="not at its place in its seal"):
        synced.peer(NINH_KIEU).push(encode_batch(swapped))
    refused_and_audited(synced, edge.identity.node, "corrupt_batch", before)
    assert synced.city.node.replica.state("dossier", received.id) is None


def test_a_truncated_batch_is_refused_whole_and_audited(synced):
    """Cut in its bytes, a run missing its last op, a run with its seal and no op: each refused
    whole (one world for the three: a refusal changes nothing, so they do not interfere)."""
    edge = synced.edges[NINH_KIEU]
    received = receive_sample(edge)
    [body] = pending(synced, NINH_KIEU)
    batch = decode_batch(body)
    run = batch.runs[0]
    cuts = {
        "bytes": body[: len(body) // 2],
        "last op": encode_batch(Batch(batch.protocol, batch.sender, [Run(run.seal, run.ops[:-1])])),
        "seal only": encode_batch(Batch(batch.protocol, batch.sender, [Run(run.seal, [])])),
    }
    for cut, data in cuts.items():
        before = held(synced)
        with pytest.raises(SyncError) as caught:
            synced.peer(NINH_KIEU).push(data)
        assert caught.value.status == 400, cut
        refused_and_audited(synced, edge.identity.node, caught.value.code, before)
        assert synced.city.node.replica.state("dossier", received.id) is None, cut
    assert isinstance(caught.value, CorruptBatch | BadSignature)
    # The box keeps everything: the next honest round delivers the dossier.
    sync_round(edge, synced.peer(NINH_KIEU))
    assert synced.city.node.replica.state("dossier", received.id)["status"] == 1


def test_batches_that_arrive_out_of_order_wait_for_the_gap_and_then_apply_as_in_order(synced):
    """Reordering is not an attack the city must refuse: ops after a gap are held, never applied
    before the ops they follow, and the result is the one in-order delivery gives."""
    edge = synced.edges[NINH_KIEU]
    me = edge.identity.node
    first = receive_sample(edge)
    edge.replica.seal_pending()
    second = receive_sample(edge, applicant_name="Trần Thị Bình", citizen_id="092190004321", dob=None)
    edge.replica.seal_pending()
    batches = pending(synced, NINH_KIEU, max_bytes=1)
    assert len(batches) >= 2
    peer = synced.peer(NINH_KIEU)
    have_before = synced.city.node.replica.vector()[me]
    ack = wire.check_ack(peer.push(batches[-1]), bytes.fromhex(edge.config.central_key or ""))
    assert ack.have == have_before, "ops after a gap were counted as held"
    assert synced.city.node.replica.state("dossier", second.id) is None
    for batch in batches[:-1]:
        peer.push(batch)
    assert synced.city.node.replica.vector()[me] == edge.replica.vector()[me]
    for received in (first, second):
        assert synced.city.node.replica.state("dossier", received.id) == edge.replica.state(
            "dossier", received.id
        )


def test_ops_under_another_nodes_id_are_refused_and_audited(synced):
    receive_sample(synced.edges[CAI_KHE], "canbo_caikhe", address_unit=CAI_KHE)
    [theirs] = pending(synced, CAI_KHE)
    before = held(synced)
    with pytest.raises(wire.ScopeViolation):
        synced.peer(NINH_KIEU).push(theirs)
    refused_and_audited(synced, synced.edges[NINH_KIEU].identity.node, "outside_write_scope", before)


def test_ops_outside_the_write_scope_are_refused_and_audited(synced):
    edge = synced.edges[NINH_KIEU]
    me = edge.identity.node
    outside = {
        "another unit's dossier": (
            "dossier",
            "d" * 32,
            "create",
            {"receiving_unit": CAI_KHE, "handling_unit": CAI_KHE},
        ),
        "reference data": ("unit", NINH_KIEU, "upsert", {"name": "Phường Ninh Kiều (sửa)"}),
        "the catalogue": ("procedure", "9.999999", "upsert", {"name": "x"}),
        "the city admin's account": ("account", "quantri", "set", {"role": "admin", "unit": NINH_KIEU}),
    }
    for what, op in outside.items():
        batch = forge(edge.identity, synced.city.node.replica.vector()[me] + 1, [op])
        before = held(synced)
        with pytest.raises(wire.ScopeViolation):
            synced.peer(NINH_KIEU).push(batch)
        assert held(synced) == before, what
        refused_and_audited(synced, me, "outside_write_scope", before)
    assert synced.city.node.replica.state("account", "quantri")["role"] == "admin"
    assert synced.city.node.replica.state("procedure", "9.999999") is None


def test_ops_stamped_far_in_the_future_are_refused_and_audited(synced):
    """A stamp a day ahead would win every last-writer-wins register until that day: the city
    refuses it (a box whose clock runs fast is told so, and warned to fix it)."""
    edge = synced.edges[NINH_KIEU]
    me = edge.identity.node
    theirs = receive_sample(edge)
    sync_round(edge, synced.peer(NINH_KIEU))
    ahead = Clock(offset_ms=24 * 3600 * 1000)
    batch = forge(
        edge.identity,
        synced.city.node.replica.vector()[me] + 1,
        [("dossier", theirs.id, "set", {"applicant_name": "Ghi đè từ tương lai"})],
        clock=ahead,
    )
    before = held(synced)
    with pytest.raises(SyncError) as caught:
        synced.peer(NINH_KIEU).push(batch)
    assert caught.value.code == "clock_drift"
    refused_and_audited(synced, me, "clock_drift", before)
    assert synced.city.node.replica.state("dossier", theirs.id)["applicant_name"] == "Nguyễn Văn An"


def test_a_revoked_box_is_refused_on_every_endpoint_and_each_refusal_is_audited(synced):
    edge = synced.edges[NINH_KIEU]
    me = edge.identity.node
    receive_sample(edge)
    [batch] = pending(synced, NINH_KIEU)
    revoke_node(synced.city, me)
    peer = synced.peer(NINH_KIEU)
    before = held(synced)
    mark = max((e.id for e in synced.city.node.audit.entries(limit=1)), default=0)
    calls = {
        "/sync/v1/hello": lambda: peer.hello(wire.Hello("t", 0, 0, edge.clock.wall_ms())),
        "/sync/v1/push": lambda: peer.push(batch),
        "/sync/v1/pull": lambda: peer.pull(wire.PullRequest(0)),
        "/sync/v1/digest": peer.digest,
    }
    for call in calls.values():
        with pytest.raises(RevokedNode):
            call()
    assert held(synced) == before
    refusals = [e for e in synced.city.node.audit.entries(event="sync_refused") if e.id > mark]
    assert {(e.actor, e.path, e.detail["code"]) for e in refusals} == {
        (me, path, "revoked_node") for path in calls
    }


def test_an_unknown_key_is_refused_and_audited_under_the_id_it_claimed(synced):
    stranger = Identity.generate(NINH_KIEU)
    before = held(synced)
    with pytest.raises(SyncError) as caught:
        synced.peer(NINH_KIEU, identity=stranger).hello(wire.Hello("t", 0, 0, Clock().wall_ms()))
    assert caught.value.code == "unknown_node"
    refused_and_audited(synced, stranger.node, "unknown_node", before, "/sync/v1/hello")


# --- at the box: what a city (or something pretending to be one) sends ------------------------


class TamperingPeer(FakePeer):
    """A city (compromised, or a machine on the LAN answering in its place) whose pulls carry
    ``tamper(batch) -> batch`` applied to every batch."""

    def __init__(self, hub: FakeHub, node: str, tamper) -> None:
        super().__init__(hub, node)
        self.tamper = tamper

    def pull(self, request: wire.PullRequest) -> wire.PullReply:
        reply = super().pull(request)
        batches = [encode_batch(self.tamper(decode_batch(b))) for b in reply.batches]
        return msgspec.structs.replace(reply, batches=batches)


def changed_payload(batch: Batch) -> Batch:
    run = batch.runs[0]
    op = opcodec.decode(run.ops[0])
    forged = msgspec.structs.replace(op, payload={**op.payload, "name": "Phường Giả Mạo"})
    first = msgspec.structs.replace(run, ops=[opcodec.encode(forged), *run.ops[1:]])
    return Batch(batch.protocol, batch.sender, [first, *batch.runs[1:]])


def resigned_by_the_city(hub: FakeHub):
    """The city re-signs another box's ops with its own key: it cannot speak for that box."""

    def tamper(batch: Batch) -> Batch:
        runs = []
        for run in batch.runs:
            if run.seal.node == hub.identity.node:
                runs.append(run)
                continue
            op = opcodec.decode(run.ops[0])
            forged = msgspec.structs.replace(op, payload={**op.payload, "applicant_name": "Kẻ Mạo Danh"})
            bodies = [opcodec.encode(forged), *run.ops[1:]]
            runs.append(Run(seal_run(run.seal.node, run.seal.first, bodies, hub.identity.sign), bodies))
        return Batch(batch.protocol, batch.sender, runs)

    return tamper


@pytest.fixture
def hub(tmp_path: Path):
    h = FakeHub(tmp_path / "hub")
    yield h
    h.close()


def test_a_tampered_pull_is_refused_by_the_box_audited_and_applies_nothing(hub, tmp_path):
    edge = hub.make_edge(tmp_path / "edge", UNIT)
    try:
        before = (edge.replica.op_count(), dict(edge.replica.vector()))
        result = sync_once(edge, TamperingPeer(hub, edge.identity.node, changed_payload), load(edge.data_dir))
        assert result.outcome == "failed"
        assert (edge.replica.op_count(), dict(edge.replica.vector())) == before
        [entry] = edge.audit.entries(event="sync_refused")
        assert entry.actor == edge.config.central_url
        assert entry.detail["code"] == "bad_signature"
        # The honest city's next round delivers everything.
        assert sync_once(edge, hub.peer(edge), load(edge.data_dir)).outcome == "ok"
        assert edge.replica.scope_digest({UNIT, "*"}) == hub.scope_digest(UNIT)
    finally:
        edge.close()


def test_the_city_cannot_rewrite_another_boxs_ops_with_its_own_key(hub, tmp_path):
    ours = hub.make_edge(tmp_path / "ours", UNIT)
    theirs = hub.make_edge(tmp_path / "theirs", UNIT)  # a second box of the same unit
    try:
        assert sync_once(theirs, hub.peer(theirs), load(theirs.data_dir)).outcome == "ok"
        received = receive_sample(theirs)
        assert sync_once(theirs, hub.peer(theirs), load(theirs.data_dir)).outcome == "ok"
        result = sync_once(
            ours, TamperingPeer(hub, ours.identity.node, resigned_by_the_city(hub)), load(ours.data_dir)
        )
        assert result.outcome == "failed"
        assert ours.replica.state("dossier", received.id) is None
        assert ours.audit.entries(event="sync_refused")[0].detail["code"] == "bad_signature"
        assert sync_once(ours, hub.peer(ours), load(ours.data_dir)).outcome == "ok"
        assert ours.replica.state("dossier", received.id)["applicant_name"] == "Nguyễn Văn An"
    finally:
        ours.close()
        theirs.close()


def test_a_certificate_not_signed_by_the_city_key_is_refused(hub, tmp_path):
    """Someone on the LAN answering as the city cannot introduce a key: certificates must carry
    the city key's signature the box was provisioned with."""
    edge = hub.make_edge(tmp_path / "edge", UNIT)
    rogue = Identity.generate(UNIT)
    impostor_city = Identity.generate("92")
    try:
        peer = hub.peer(edge)
        real_hello = peer.hello

        def hello(message: wire.Hello) -> wire.HelloReply:
            reply = real_hello(message)
            fake = wire.issue_cert(impostor_city, rogue.node, UNIT, rogue.public_raw, hub.now(), None)
            return msgspec.structs.replace(reply, certs=[*reply.certs, fake])

        peer.hello = hello  # type: ignore[method-assign]
        result = sync_once(edge, peer, load(edge.data_dir))
        assert result.outcome == "failed"
        assert edge.audit.entries(event="sync_refused")[0].detail["code"] == "bad_signature"
        with pytest.raises(SyncError):
            edge.replica.public_key(rogue.node)
    finally:
        edge.close()


@pytest.mark.parametrize("attack", ["moved", "unsigned", "replayed", "impostor"])
def test_a_time_reply_not_signed_by_the_city_for_this_round_cannot_set_the_boxs_clock(hub, tmp_path, attack):
    """Someone on the LAN answering the box's first request (the city's time, asked before the
    box can sign anything) cannot move its clock: the reply must carry the city key's signature
    over the nonce the box just sent. Refused, audited, and the clock not moved."""
    edge = hub.make_edge(tmp_path / "edge", UNIT)
    impostor_city = Identity.generate("92")
    try:
        peer = hub.peer(edge)
        real_time = peer.time
        old = real_time(b"\x01" * wire.TIME_NONCE_BYTES)  # an answer the city gave to someone else
        year_ms = 365 * 86_400_000

        def time(nonce: bytes = b"") -> wire.TimeReply:
            reply = real_time(nonce)
            if attack == "moved":
                return msgspec.structs.replace(reply, time_ms=reply.time_ms + year_ms)
            if attack == "unsigned":
                return wire.TimeReply(reply.time_ms + year_ms, reply.protocols)
            if attack == "replayed":
                return old
            return wire.sign_time(impostor_city, reply.time_ms + year_ms, reply.protocols, nonce)

        peer.time = time  # type: ignore[method-assign]
        offset_before = edge.clock.offset_ms
        result = sync_once(edge, peer, load(edge.data_dir))
        assert result.outcome == "failed"
        assert edge.clock.offset_ms == offset_before
        assert abs(edge.clock.wall_ms() - hub.now()) < 60_000
        assert peer.calls["hello"] == 0  # nothing else was asked on a clock that may be wrong
        [entry] = edge.audit.entries(event="sync_refused")
        assert entry.detail["code"] == "bad_signature"
        assert sync_once(edge, hub.peer(edge), load(edge.data_dir)).outcome == "ok"  # the real city
    finally:
        edge.close()
