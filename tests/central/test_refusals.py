"""Every refusal of the sync endpoints: nothing of the request is applied, and fleet.db says why."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, sync_round
from edgekit import actor, receive_sample

from central.registry import revoke_node
from edge.accounts import add_account
from edge.dossiers import perform
from edge.errors import ConfigError
from sync import ops as opcodec
from sync import wire
from sync.batch import PROTOCOL, Batch, Run, decode_batch, encode_batch, seal_run
from sync.clock import Clock
from sync.errors import BadSignature, CorruptBatch, RevokedNode, SyncError, UnknownNode
from sync.identity import Identity
from sync.ops import Op


def pending_batch(world, unit: str) -> bytes:
    """The edge's own ops the city lacks, as one encoded batch."""
    edge = world.edges[unit]
    me = edge.identity.node
    have = world.city.node.replica.vector()[me]
    batches = list(edge.replica.batches({me: have}, nodes=[me]))
    assert len(batches) == 1
    return encode_batch(batches[0])


def forge(identity: Identity, first_seq: int, ops: list[tuple[str, str, str, dict]]) -> bytes:
    """A batch of ops signed by ``identity``, written without any local rule checking them."""
    clock = Clock()
    bodies = [
        opcodec.encode(Op(identity.node, first_seq + i, clock.now().pack(), kind, entity, action, payload))
        for i, (kind, entity, action, payload) in enumerate(ops)
    ]
    seal = seal_run(identity.node, first_seq, bodies, identity.sign)
    return encode_batch(Batch(PROTOCOL, identity.node, [Run(seal, bodies)]))


def assert_refused(world, node: str, code: str, before) -> None:
    assert world.central_log() == before, "a refused request changed the city's log"
    last = world.city.fleet.attempts(node, limit=1)[0]
    assert (last.outcome, last.error_code) == ("refused", code)
    assert last.error
    status = world.city.fleet.status(node)
    if status is not None:
        assert status.last_error_code == code


@pytest.fixture
def synced(world):
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    return world


def test_forged_signature(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    receive_sample(edge)
    batch = pending_batch(world, NINH_KIEU)
    impostor = Identity(edge.identity.node, Identity.generate(NINH_KIEU).private)
    before = world.central_log()
    with pytest.raises(BadSignature):
        world.peer(NINH_KIEU, identity=impostor).push(batch)
    assert_refused(world, edge.identity.node, "bad_signature", before)
    assert world.city.fleet.status(edge.identity.node).last_contact_ms is not None


def test_replayed_request(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    receive_sample(edge)
    body = pending_batch(world, NINH_KIEU)
    headers = wire.sign_request(edge.identity, "POST", "/sync/v1/push", body, edge.clock.wall_ms())
    first = msgspec.msgpack.decode(
        _post(world, "/sync/v1/push", body, headers).raise_for_status().content, type=wire.Ack
    )
    before = world.central_log()
    again = _post(world, "/sync/v1/push", body, headers)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "replayed_request"
    assert_refused(world, edge.identity.node, "replayed_request", before)
    assert first.have == before[1][edge.identity.node]


def test_stale_timestamp(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    receive_sample(edge)
    batch = pending_batch(world, NINH_KIEU)
    before = world.central_log()
    slow = Clock(offset_ms=-11 * 60 * 1000)
    with pytest.raises(SyncError) as caught:
        world.peer(NINH_KIEU, clock=slow).push(batch)
    assert caught.value.code == "stale_request"
    assert caught.value.status == 401
    assert "clock" in caught.value.message
    assert_refused(world, edge.identity.node, "stale_request", before)


def test_ops_under_another_nodes_id(synced):
    world = synced
    receive_sample(world.edges[CAI_KHE], "canbo_caikhe", address_unit=CAI_KHE)
    theirs = pending_batch(world, CAI_KHE)
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="another node's id"):
        world.peer(NINH_KIEU).push(theirs)
    assert_refused(world, world.edges[NINH_KIEU].identity.node, "outside_write_scope", before)


def test_a_dossier_received_for_another_unit(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    me = edge.identity.node
    have = world.city.node.replica.vector()[me]
    batch = forge(
        edge.identity,
        have + 1,
        [("dossier", "d" * 32, "create", {"receiving_unit": CAI_KHE, "handling_unit": CAI_KHE})],
    )
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="receiving unit"):
        world.peer(NINH_KIEU).push(batch)
    assert_refused(world, me, "outside_write_scope", before)


def test_an_op_on_a_dossier_of_another_unit(synced):
    world = synced
    theirs = receive_sample(world.edges[CAI_KHE], "canbo_caikhe", address_unit=CAI_KHE)
    sync_round(world.edges[CAI_KHE], world.peer(CAI_KHE))
    edge = world.edges[NINH_KIEU]
    have = world.city.node.replica.vector()[edge.identity.node]
    batch = forge(
        edge.identity,
        have + 1,
        [("dossier", theirs.id, "transition", {"to": 2, "by": "canbo01", "role": "clerk"})],
    )
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="neither received nor handled"):
        world.peer(NINH_KIEU).push(batch)
    assert_refused(world, edge.identity.node, "outside_write_scope", before)
    assert world.city.node.replica.state("dossier", theirs.id)["status"] == 1


def test_reference_data_from_an_edge(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    with edge.replica.write() as w:
        w.append("unit", NINH_KIEU, "upsert", {"name": "Phường Ninh Kiều (sửa)"})
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="reference data"):
        world.peer(NINH_KIEU).push(pending_batch(world, NINH_KIEU))
    assert_refused(world, edge.identity.node, "outside_write_scope", before)


def test_a_procedure_from_an_edge(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    batch = forge(edge.identity, 1, [("procedure", "9.999999", "upsert", {"name": "x"})])
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="reference data"):
        world.peer(NINH_KIEU).push(batch)
    assert_refused(world, edge.identity.node, "outside_write_scope", before)


def test_an_account_created_at_an_edge(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    # The edge's own tools refuse (accounts are managed at the city) ...
    with pytest.raises(ConfigError, match="city server"):
        add_account(edge, "canbo_moi", "Người Mới", "clerk", PASSWORD)
    # ... and an old or rogue edge that writes the op anyway is refused by central.
    payload = {"username": "canbo_moi", "full_name": "Người Mới", "unit": NINH_KIEU, "role": "clerk",
               "password_hash": "x", "active": True}  # fmt: skip
    with edge.replica.write() as w:
        w.append("account", "canbo_moi", "create", payload)
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="password"):
        world.peer(NINH_KIEU).push(pending_batch(world, NINH_KIEU))
    assert_refused(world, edge.identity.node, "outside_write_scope", before)
    assert world.city.node.replica.state("account", "canbo_moi") is None


def test_a_password_change_of_another_units_account(synced):
    world = synced
    add_account(world.city.node, "canbo_ck", "Phạm Thu Hà", "clerk", PASSWORD, CAI_KHE)
    edge = world.edges[NINH_KIEU]
    batch = forge(edge.identity, 1, [("account", "canbo_ck", "set", {"password_hash": "x"})])
    before = world.central_log()
    with pytest.raises(wire.ScopeViolation, match="not an account of unit"):
        world.peer(NINH_KIEU).push(batch)
    assert_refused(world, edge.identity.node, "outside_write_scope", before)


def test_a_revoked_node_is_refused_from_its_next_request_on(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    me = edge.identity.node
    receive_sample(edge)
    batch = pending_batch(world, NINH_KIEU)
    peer = world.peer(NINH_KIEU)
    registration = revoke_node(world.city, me)
    assert registration.revoked
    assert registration.cert.revoked_after == world.central_log()[1].get(me, 0) == 0
    before = world.central_log()
    for call in (lambda: peer.push(batch), lambda: peer.pull(wire.PullRequest(0)), peer.digest):
        with pytest.raises(RevokedNode):
            call()
    with pytest.raises(RevokedNode):
        sync_round(edge, peer)
    assert_refused(world, me, "revoked_node", before)
    assert peer.time().time_ms > 0  # the unsigned clock still answers
    # The other commune learns of the revocation with its next hello.
    other = world.peer(CAI_KHE)
    certs = {c.node: c for c in other.hello(wire.Hello("t", 0, 0, edge.clock.wall_ms())).certs}
    assert certs[me].revoked_after == registration.revoked_after


def test_a_tampered_batch(synced):
    world = synced
    edge = world.edges[NINH_KIEU]
    received = receive_sample(edge)
    batch = decode_batch(pending_batch(world, NINH_KIEU))
    run = batch.runs[0]
    op = opcodec.decode(run.ops[0])
    changed = msgspec.structs.replace(op, payload={**op.payload, "fee": 1_000_000})
    tampered = Batch(batch.protocol, batch.sender, [Run(run.seal, [opcodec.encode(changed), *run.ops[1:]])])
    before = world.central_log()
    with pytest.raises(BadSignature, match="do not match their seal"):
        world.peer(NINH_KIEU).push(encode_batch(tampered))
    assert_refused(world, edge.identity.node, "bad_signature", before)
    assert world.city.node.replica.state("dossier", received.id) is None


def test_a_corrupt_batch(synced):
    world = synced
    me = world.edges[NINH_KIEU].identity.node
    before = world.central_log()
    with pytest.raises(CorruptBatch):
        world.peer(NINH_KIEU).push(b"\x28\xb5\x2f\xfd not really zstd")
    assert_refused(world, me, "corrupt_batch", before)


@pytest.mark.parametrize("version", ["0", "3", "", "one"])
def test_wrong_protocol_version(synced, version):
    world = synced
    edge = world.edges[NINH_KIEU]
    body = wire.encode(wire.PullRequest(0))
    headers = wire.sign_request(edge.identity, "POST", "/sync/v1/pull", body, edge.clock.wall_ms())
    headers[wire.H_PROTOCOL] = version
    before = world.central_log()
    response = _post(world, "/sync/v1/pull", body, headers)
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "protocol_version"
    assert_refused(world, edge.identity.node, "protocol_version", before)


def test_an_unknown_node(synced):
    world = synced
    stranger = Identity.generate(NINH_KIEU)
    before = world.central_log()
    with pytest.raises(UnknownNode):
        world.peer(NINH_KIEU, identity=stranger).hello(wire.Hello("t", 0, 0, Clock().wall_ms()))
    assert_refused(world, stranger.node, "unknown_node", before)
    assert world.city.fleet.status(stranger.node) is None


def test_an_unsigned_request(synced):
    world = synced
    response = _post(world, "/sync/v1/digest", b"", {wire.H_PROTOCOL: "1"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_signature"
    assert world.city.fleet.attempts("?", limit=1)[0].error_code == "bad_signature"


def test_a_refused_batch_is_kept_at_the_edge_and_its_transition_still_waits(synced):
    """A refusal is fatal for that batch only: the edge's log keeps everything."""
    world = synced
    edge = world.edges[NINH_KIEU]
    received = receive_sample(edge)
    perform(edge, actor("canbo01"), received.id, "accept")
    with edge.replica.write() as w:
        w.append("unit", NINH_KIEU, "upsert", {"name": "x"})
    with pytest.raises(wire.ScopeViolation):
        sync_round(edge, world.peer(NINH_KIEU))
    assert edge.replica.state("dossier", received.id)["status"] == 2
    assert world.city.node.replica.state("dossier", received.id) is None


def _post(world, path: str, body: bytes, headers: dict[str, str]):
    import httpx

    return httpx.post(world.url + path, content=body, headers=headers, timeout=30)


def test_the_city_signs_its_time_for_the_nonce_a_box_sent_and_answers_old_boxes_unsigned(world):
    city_key = world.city.node.identity.public_raw
    nonce = bytes(range(wire.TIME_NONCE_BYTES))
    signed = world.peer(NINH_KIEU).time(nonce)
    assert wire.check_time(signed, city_key, nonce) is signed
    with pytest.raises(BadSignature):
        wire.check_time(signed, city_key, bytes(wire.TIME_NONCE_BYTES))  # not this box's nonce
    old_box = wire.decode(httpx.get(f"{world.url}/sync/v1/time", timeout=5).content, wire.TimeReply)
    assert (old_box.nonce, old_box.signature) == (b"", b"")  # protocol 1 asks without a nonce
    for bad in ("zz" * 16, "00" * 15, "00" * 17, "ÄÄ"):
        refused = httpx.get(f"{world.url}/sync/v1/time", params={"nonce": bad}, timeout=5)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "verification_failed"
