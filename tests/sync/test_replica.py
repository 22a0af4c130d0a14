"""The replica: local writes, and merges that apply all of a batch or nothing."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from toydoc import DOC, batches_of, model_fold, open_replica, snapshot, sync, without_conflicts, write

from sync import merkle
from sync.batch import PROTOCOL, Batch, Run, decode_batch, encode_batch, seal_run
from sync.errors import (
    BadSignature,
    ClockDriftError,
    CorruptBatch,
    EquivocationError,
    RevokedNode,
    UnknownNode,
)
from sync.fold import Rejected, fold
from sync.identity import Identity
from sync.ops import decode, encode
from sync.replica import writer as replica_writer


def held_seqs(r, node: str) -> list[int]:
    return sorted(op.seq for (_, e) in r.states() for op in r.ops_of("doc", e) if op.node == node)


def assert_dense(r) -> None:
    """Each node's ops in the log are exactly 1..vector[node]: the vector never skips."""
    vec = r.vector()
    assert r.op_count() == vec.total()
    for node in vec:
        assert held_seqs(r, node) == list(range(1, vec[node] + 1))


# --- local writes ---------------------------------------------------------------------------


def test_local_write_appends_op_and_state_together(make_replicas) -> None:
    (a,) = make_replicas("a")
    with a.write() as w:
        op1 = w.append("doc", "d1", "create", {"title": "t"})
        op2 = w.append("doc", "d1", "move", {"to": "open"})
        assert w.state("doc", "d1")["status"] == "open"
    assert (op1.seq, op2.seq) == (1, 2)
    assert op2.stamp > op1.stamp
    assert a.vector().to_dict() == {a.identity.node: 2}
    assert a.state("doc", "d1") == {"_created": True, "title": "t", "status": "open"}
    assert a.ops_of("doc", "d1") == [op1, op2]


def test_rejected_local_write_rolls_back_the_whole_write(make_replicas) -> None:
    (a,) = make_replicas("a")
    write(a, "d1", "create", {"title": "t"})
    before = snapshot(a)

    def two_ops() -> None:
        with a.write() as w:
            w.append("doc", "d1", "set", {"title": "changed"})
            w.append("doc", "d1", "move", {"to": "closed"})  # not allowed from no status

    with pytest.raises(Rejected, match="cannot move"):
        two_ops()
    assert snapshot(a) == before
    assert a.state("doc", "d1")["title"] == "t"
    # the seq of the refused write is reused, not skipped
    assert write(a, "d1", "set", {"title": "u"}).seq == 2


def test_remembered_values_commit_with_the_ops_and_the_newest_are_kept(make_replicas, monkeypatch) -> None:
    monkeypatch.setattr(replica_writer, "REMEMBERED", 300)
    (a,) = make_replicas("a")
    with contextlib.suppress(Rejected), a.write() as w:
        w.remember("receive:k0", "lost")
        w.append("doc", "d0", "move", {"to": "closed"})  # refused: the value goes with the ops
    with a.write() as w:
        assert w.recall("receive:k0") is None
    for start in range(0, 2000, 100):
        with a.write() as w:
            for n in range(start, start + 100):
                w.append("doc", f"d{n}", "create", {"title": str(n)})
                w.remember(f"receive:k{n}", f"d{n}")
    with a.write() as w:
        assert w.recall("receive:k1999") == "d1999"
        assert w.recall("receive:k1700") == "d1700"  # the newest 300 at least
        assert w.recall("receive:k0") is None  # the oldest were let go
        kept = w.conn.execute("SELECT count(*) FROM sync_meta WHERE key LIKE 'local:%'").fetchone()[0]
    assert 300 <= kept < 300 + 256
    assert a.op_count() == 2000  # letting a key go never touches the log


def test_state_survives_reopening(make_replicas, tmp_path) -> None:
    (a,) = make_replicas("a")
    write(a, "d1", "create", {"title": "t"})
    before = snapshot(a)
    a.close()
    again = open_replica(tmp_path / "a.db", a.identity)
    try:
        assert snapshot(again) == before
    finally:
        again.close()


# --- tamper: nothing is applied --------------------------------------------------------------


@pytest.fixture
def pair(make_replicas):
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "hello"})
    write(a, "d1", "set", {"owner": "ann"})
    write(a, "d2", "create", {"title": "other"})
    write(b, "d9", "create", {"title": "b's own"})
    return a, b


def with_run(batch: Batch, index: int, run: Run) -> Batch:
    runs = list(batch.runs)
    runs[index] = run
    return Batch(batch.protocol, batch.sender, runs)


def test_flipped_byte_in_an_op_body_applies_nothing(pair) -> None:
    a, b = pair
    (batch,) = batches_of(a)
    run = batch.runs[0]
    tampered = run.ops[0].replace(b"hello", b"hellp")
    bad = with_run(batch, 0, Run(run.seal, [tampered, *run.ops[1:]], run.chosen, run.proof))
    before = snapshot(b)
    with pytest.raises(BadSignature):
        b.merge(bad)
    assert snapshot(b) == before


def test_batch_sealed_by_the_wrong_key_applies_nothing(pair) -> None:
    a, b = pair
    (batch,) = batches_of(a)
    seal = batch.runs[0].seal
    mallory = Identity.generate("a")
    forged = msgspec.structs.replace(seal, signature=mallory.sign(seal.message()))
    before = snapshot(b)
    with pytest.raises(BadSignature):
        b.merge(with_run(batch, 0, Run(forged, batch.runs[0].ops)))
    assert snapshot(b) == before


def test_replayed_op_with_altered_payload_is_refused(pair) -> None:
    a, b = pair
    sync(a, b)
    (batch,) = batches_of(a)
    run = batch.runs[0]
    original = decode(run.ops[1])
    altered = encode(msgspec.structs.replace(original, payload={"owner": "mallory"}))
    before = snapshot(b)
    # re-encoded under the original seal: the Merkle root no longer matches
    with pytest.raises(BadSignature):
        b.merge(with_run(batch, 0, Run(run.seal, [run.ops[0], altered, *run.ops[2:]])))
    assert snapshot(b) == before
    assert b.state("doc", "d1")["owner"] == "ann"


def test_validly_signed_second_version_of_a_held_op_is_equivocation(pair) -> None:
    a, b = pair
    sync(a, b)
    original = decode(batches_of(a)[0].runs[0].ops[1])
    altered = encode(msgspec.structs.replace(original, payload={"owner": "mallory"}))
    # a's own key signs a different op #2: the node equivocates
    evil = Batch(
        PROTOCOL, a.identity.node, [Run(seal_run(a.identity.node, 2, [altered], a.identity.sign), [altered])]
    )
    before = snapshot(b)
    with pytest.raises(EquivocationError):
        b.merge(evil)
    assert snapshot(b) == before


def test_two_versions_of_one_op_in_one_batch_is_equivocation(pair) -> None:
    a, b = pair
    (batch,) = batches_of(a)
    original = decode(batch.runs[0].ops[0])
    altered = encode(msgspec.structs.replace(original, payload={"title": "other"}))
    sign = a.identity.sign
    evil = Batch(PROTOCOL, "x", [*batch.runs, Run(seal_run(a.identity.node, 1, [altered], sign), [altered])])
    before = snapshot(b)
    with pytest.raises(EquivocationError):
        b.merge(evil)
    assert snapshot(b) == before


def test_truncated_run_applies_nothing(pair) -> None:
    a, b = pair
    (batch,) = batches_of(a)
    run = batch.runs[0]
    before = snapshot(b)
    with pytest.raises(CorruptBatch):
        b.merge(with_run(batch, 0, Run(run.seal, run.ops[:-1])))
    assert snapshot(b) == before


def test_ops_of_an_unknown_node_are_refused(make_replicas, tmp_path) -> None:
    (b,) = make_replicas("b")
    stranger = open_replica(tmp_path / "s.db", Identity.generate("s"))
    try:
        write(stranger, "d1", "create", {"title": "t"})
        before = snapshot(b)
        with pytest.raises(UnknownNode):
            b.merge(batches_of(stranger)[0])
        assert snapshot(b) == before
    finally:
        stranger.close()


def test_revoked_node_ops_after_revocation_refused_earlier_ones_kept(pair) -> None:
    a, b = pair
    sync(a, b)  # b holds a#1..3
    write(a, "d1", "set", {"title": "after the theft"})
    assert b.revoke(a.identity.node) == 3
    before = snapshot(b)
    with pytest.raises(RevokedNode):
        sync(a, b)
    assert snapshot(b) == before
    assert b.vector()[a.identity.node] == 3
    assert b.state("doc", "d1")["title"] == "hello"
    # the earlier ops still travel from b to a third replica that revoked a the same way
    (c,) = _third(b)
    c.revoke(a.identity.node, after_seq=3)
    sync(b, c)
    assert c.vector()[a.identity.node] == 3
    assert c.state("doc", "d1") == b.state("doc", "d1")


def _third(b):
    import pathlib

    c = open_replica(pathlib.Path(b.path).with_name("c.db"), Identity.generate("c"))
    for node in b.vector():
        c.trust(node, b.public_key(node))
    c.trust(b.identity.node, b.identity.public_raw)
    return (c,)


def test_revocation_also_holds_for_ops_waiting_behind_a_gap(pair) -> None:
    """Ops after the revocation point must not sneak in through sync_pending."""
    a, b = pair
    a_node = a.identity.node
    first = batches_of(a)  # seals a#1..3
    write(a, "d1", "set", {"title": "4"})
    write(a, "d1", "set", {"title": "5"})
    later = batches_of(a, {a_node: 3})  # seals a#4..5
    b.merge(later[0])  # waits behind the gap
    assert b.pending_count() == 2
    b.revoke(a_node, after_seq=3)
    b.merge(first[0])
    assert b.vector()[a_node] == 3
    assert b.state("doc", "d1")["title"] == "hello"


def test_revocation_does_not_refuse_earlier_ops_sharing_a_seal(make_replicas) -> None:
    """revoke(node, after_seq=n) refuses ops after n; ops 1..n arriving in a subset run of a
    seal that also covers later ops are not 'after n'."""
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "t"})
    for i in range(4):
        write(a, "d1", "set", {"note": "x" * 50 + str(i)})
    b.revoke(a.identity.node, after_seq=2)
    batches = batches_of(a, max_bytes=120)  # one seal a#1..5, sent in pieces
    assert {r.seal.last for bt in batches for r in bt.runs} == {5}
    assert batches[0].runs[0].chosen == [0]
    for batch in batches:
        with contextlib.suppress(RevokedNode):
            b.merge(batch)
    assert b.vector()[a.identity.node] == 2


@pytest.mark.parametrize(
    "data",
    [
        b"\x28\xb5\x2f\xfd garbage",  # zstd magic, then nonsense
        b"plain garbage",
        None,  # valid zstd of garbage msgpack (filled in below)
    ],
)
def test_corrupt_bytes_are_refused(pair, data) -> None:
    import zstandard

    _a, b = pair
    if data is None:
        data = zstandard.ZstdCompressor().compress(b"\x93\x01\xa1x\xc1")
    before = snapshot(b)
    with pytest.raises(CorruptBatch):
        b.merge(data)
    assert snapshot(b) == before


def test_good_run_then_bad_run_applies_nothing(make_replicas) -> None:
    a, b, c = make_replicas("a", "b", "c")
    write(a, "d1", "create", {"title": "hello"})
    write(b, "d2", "create", {"title": "hello"})
    sync(b, a)
    (batch,) = batches_of(a)
    assert len(batch.runs) == 2
    last = batch.runs[-1]
    bad = with_run(batch, 1, Run(last.seal, [last.ops[0].replace(b"hello", b"jello")]))
    before = snapshot(c)
    with pytest.raises(BadSignature):
        c.merge(bad)
    assert snapshot(c) == before
    c.merge(encode_batch(batch))
    assert c.digest() == a.digest()


def test_clock_drift_applies_nothing(make_replicas) -> None:
    a, b = make_replicas("a", "b")
    a.test_wall.ms += 3_600_000  # an hour ahead: beyond the ten minutes allowed
    write(a, "d1", "create", {"title": "t"})
    before = snapshot(b)
    with pytest.raises(ClockDriftError) as info:
        sync(a, b)
    assert info.value.drift_ms >= 3_600_000 - 1
    assert snapshot(b) == before
    b.clock.calibrate(a.test_wall.ms)  # the city says a's time is right after all
    sync(a, b)
    assert b.digest() == a.digest()


# --- merge properties ----------------------------------------------------------------------


def test_merge_is_idempotent(pair) -> None:
    a, b = pair
    (batch,) = batches_of(a)
    data = encode_batch(batch)
    first = b.merge(data)
    assert (first.applied, first.duplicates) == (3, 0)
    after = snapshot(b)
    second = b.merge(data)
    assert (second.applied, second.duplicates, second.pending) == (0, 3, 0)
    assert snapshot(b) == after
    assert b.states() == {**a.states(), **{k: v for k, v in b.states().items() if k[1] == "d9"}}


def test_gaps_wait_in_pending_and_the_vector_never_skips(make_replicas) -> None:
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "t"})
    for i in range(8):
        write(a, "d1", "set", {"note": f"{i:03d}" * 10})
    batches = batches_of(a, max_bytes=150)
    assert len(batches) >= 3
    a_node = a.identity.node
    for batch in reversed(batches[1:]):
        report = b.merge(batch)
        assert report.applied == 0
        assert report.pending == len(batch.runs[0].ops)
        assert b.vector()[a_node] == 0
        assert b.state("doc", "d1") is None
    assert b.pending_count() == 9 - len(batches[0].runs[0].ops)
    report = b.merge(batches[0])
    assert report.applied == 9
    assert b.pending_count() == 0
    assert b.vector()[a_node] == 9
    assert b.state("doc", "d1") == a.state("doc", "d1")
    assert_dense(b)


def test_a_checked_merge_folds_ops_drained_from_pending_onto_their_entities(make_replicas) -> None:
    """A hub's merge reads the states of the batch's entities for its ``admit`` check; the ops
    a gap-filling batch releases from pending may belong to other entities, which it must read
    too (not fold them from nothing)."""
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "một"})
    write(a, "d2", "create", {"title": "hai", "owner": "lan"})
    write(a, "d1", "set", {"note": "ghi chú"})
    write(a, "d2", "set", {"note": "d2 later"})
    batches = batches_of(a, max_bytes=60)
    assert [len(batch.runs[0].ops) for batch in batches] == [1, 1, 1, 1]
    checked: list[set[tuple[str, str]]] = []

    def admit(ops, states) -> None:
        checked.append(set(states))

    b.merge(batches[0], admit=admit)
    b.merge(batches[1], admit=admit)
    assert b.merge(batches[3], admit=admit).pending == 1  # d2's edit waits behind #3
    report = b.merge(batches[2], admit=admit)  # d1's edit fills the gap and releases d2's
    assert report.applied == 2
    assert checked[-1] == {("doc", "d1")}
    assert b.state("doc", "d2") == a.state("doc", "d2")
    assert b.state_digest() == a.state_digest()
    assert_dense(b)


def test_runs_out_of_order_inside_one_batch_never_skip_a_gap(make_replicas) -> None:
    """A relay may put validly signed subset runs in any order; ops beyond a gap must wait."""
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "t"})
    for i in range(4):
        write(a, "d1", "set", {"note": str(i)})
    (batch,) = batches_of(a)
    (run,) = batch.runs
    leaves = [merkle.leaf_hash(body) for body in run.ops]

    def subset(i: int) -> Run:
        return Run(run.seal, [run.ops[i]], [i], merkle.prove(run.seal.size, [i], leaves))

    mixed = Batch(PROTOCOL, a.identity.node, [subset(0), subset(4), subset(2)])  # a#1, a#5, a#3
    b.merge(mixed)
    assert b.vector()[a.identity.node] == 1
    assert_dense(b)
    b.merge(batch)
    assert b.digest() == a.digest()
    assert_dense(b)


def test_equivocation_is_caught_against_ops_waiting_in_pending(pair) -> None:
    a, b = pair
    a_node = a.identity.node
    write(a, "d1", "set", {"title": "honest 4"})
    write(a, "d1", "set", {"title": "honest 5"})
    honest = batches_of(a, {a_node: 3})[0]  # a#4..5, waits at b behind the gap
    evil_op = msgspec.structs.replace(decode(honest.runs[0].ops[0]), payload={"title": "evil 4"})
    evil_body = encode(evil_op)
    evil = Batch(PROTOCOL, "x", [Run(seal_run(a_node, 4, [evil_body], a.identity.sign), [evil_body])])
    b.merge(honest)
    before = snapshot(b)
    with pytest.raises(EquivocationError):
        b.merge(evil)  # a signed two different ops #4
    assert snapshot(b) == before


def test_late_op_refolds_only_its_own_entity(make_replicas) -> None:
    a, b, c = make_replicas("a", "b", "c")
    write(a, "d1", "create", {"title": "a1"})
    write(a, "d2", "create", {"title": "a2"})
    sync(a, b)
    sync(a, c)
    c.test_wall.ms -= 60_000  # c is a minute behind: its edit is older than b's
    late = write(c, "d1", "set", {"title": "from c, late"})
    b.test_wall.ms += 1_000
    write(b, "d1", "set", {"title": "from b"})
    assert late.key < b.ops_of("doc", "d1")[-1].key
    write(b, "d3", "create", {"title": "b3"})
    before = {k: v for k, v in b.states().items() if k != ("doc", "d1")}
    report = b.merge(batches_of(c, b.vector())[0])
    assert report.applied == 1
    assert report.entities == {("doc", "d1")}
    assert {k: v for k, v in b.states().items() if k != ("doc", "d1")} == before
    ops = b.ops_of("doc", "d1")
    assert late in ops
    assert b.state("doc", "d1") == fold(DOC, ops)[0]
    assert b.state("doc", "d1")["title"] == "from b"  # the late write lost
    assert without_conflicts(b.state("doc", "d1")) == model_fold(ops)[0]


def test_forwarding_a_subset_keeps_the_origin_proof(make_replicas) -> None:
    a, b, c = make_replicas("a", "b", "c")
    for i in range(3):
        write(a, f"d{i}", "create", {"title": "t"})
    for i in range(8):
        write(a, f"d{i % 3}", "set", {"note": f"{i:02d}" * 8})
    a_node = a.identity.node
    total = a.vector()[a_node]
    # a -> b in small pieces: one seal, several subset runs with proofs
    pieces = batches_of(a, max_bytes=100)
    assert all(r.chosen is not None for p in pieces for r in p.runs)
    assert all(r.seal.size == total for p in pieces for r in p.runs)
    b.merge(pieces[0])
    b.merge(pieces[1])
    held = b.vector()[a_node]
    assert 0 < held < total
    # b -> c: b forwards what it holds, proving it with what it learned from a's proofs
    forwarded = batches_of(b, {}, max_bytes=100)
    runs = [r for p in forwarded for r in p.runs if r.seal.node == a_node]
    assert runs
    assert all(r.chosen is not None for r in runs)
    for p in forwarded:
        c.merge(encode_batch(p))
    assert c.vector()[a_node] == held
    assert c.digest() == b.digest()
    # and c can forward again, back to a fresh replica, before ever seeing the rest
    sync(a, c, max_bytes=100)
    assert c.digest() == a.digest()
    assert_dense(c)


def test_batches_respect_max_bytes_and_cover_what_is_missing(make_replicas) -> None:
    a, _b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "t"})
    for i in range(20):
        write(a, "d1", "set", {"note": f"{i:02d}" * 5})
    pieces = batches_of(a, max_bytes=200)
    for p in pieces:
        sizes = [len(body) for r in p.runs for body in r.ops]
        assert sum(sizes) <= 200 or len(sizes) == 1
    got = [decode(body).seq for p in pieces for r in p.runs for body in r.ops]
    assert got == list(range(1, 22))
    assert batches_of(a, dict(a.vector())) == []
    assert [
        decode(body).seq for p in batches_of(a, {a.identity.node: 15}) for r in p.runs for body in r.ops
    ] == list(range(16, 22))


def test_wire_round_trip_of_real_batches(pair) -> None:
    a, _ = pair
    for batch in batches_of(a, max_bytes=60):
        assert decode_batch(encode_batch(batch)) == batch


def test_conflicts_are_recorded_and_shown(make_replicas) -> None:
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "t"})
    write(a, "d1", "move", {"to": "open"})
    sync(a, b)
    write(a, "d1", "move", {"to": "closed"})
    write(b, "d1", "move", {"to": "review"})
    sync(a, b)
    sync(b, a)
    assert a.state_digest() == b.state_digest()
    assert a.state("doc", "d1")["status"] == "closed"
    (conflict,) = a.conflicts("doc", "d1")
    assert (conflict.node, conflict.action) == (b.identity.node, "move")
    assert a.conflicts() == b.conflicts()
    assert a.state("doc", "d1")["_conflicts"] == [[b.identity.node, 1, "move", conflict.reason]]


def test_refold_all_reproduces_the_incremental_state(make_replicas) -> None:
    a, b = make_replicas("a", "b")
    write(a, "d1", "create", {"title": "t"})
    write(b, "d1", "create", {"title": "u"})
    write(a, "d1", "move", {"to": "open"})
    sync(a, b)
    sync(b, a)
    before = a.state_digest()
    assert a.refold_all() == 1
    assert a.state_digest() == before
    assert a.conflicts() == b.conflicts()


def test_peer_vectors_only_grow(make_replicas) -> None:
    (a,) = make_replicas("a")
    a.remember_peer("city", {"n1": 5, "n2": 2})
    a.remember_peer("city", {"n1": 3, "n3": 1})
    assert a.peer_vector("city").to_dict() == {"n1": 5, "n2": 2, "n3": 1}
    assert a.peer_vector("other").to_dict() == {}
