"""Fuzzing the sync batch: the bytes a city or a box merges from the link, a stick or a kit.

Every batch starts as a real one: a commune node's reference data and two dossiers received
through the service layer, sealed and encoded by the real code. A receiver (a hub replica, as
the city holds) has merged all but the last batch; each example then offers it a damaged last
batch. Either the damage was harmless and exactly the genuine ops are applied, or the merge
raises a typed :class:`~sync.errors.SyncError` with a message, and the receiver's ops, vector,
waiting ops and states are what they were.

A node with a registered key can also sign whatever it likes (a bug in an old version, a
stolen key): :func:`test_validly_signed_hostile_ops_are_kept_or_refused_typed` signs ops whose
fields and payloads are odd, and checks the fold neither crashes nor half-applies them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import zstandard
from edgekit import UNIT, receive_sample
from fuzzing import GARBAGE, ODD_MSGPACK, assert_clear, examples, mutated_bytes, mutated_tree, refusal
from hypothesis import given
from hypothesis import strategies as st

from edge.node import Node, init_node
from schema import KINDS, migrate
from sync import ops as opcodec
from sync.batch import Batch, Run, encode_batch, seal_run
from sync.errors import SyncError
from sync.identity import Identity
from sync.ops import Op
from sync.replica import Replica


@dataclass
class Source:
    """A real node's log: the batches that bring a receiver up to just before its last ops,
    and the last batch (the one the examples damage)."""

    node: Node
    prefix: list[bytes]
    tail: bytes
    real_ops: list[Op]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Iterator[Source]:
    node = init_node(tmp_path_factory.mktemp("source") / "node", UNIT)
    me = node.identity.node
    node.replica.seal_pending()  # the reference data in seals of its own: the tail starts after them
    base = node.replica.vector()[me]
    prefix = [encode_batch(b) for b in node.replica.batches({}, nodes=[me])]
    receive_sample(node, applicant_name="Nguyễn Văn An")
    receive_sample(node, applicant_name="Trần Thị Bình", citizen_id="092085004321")
    tail = [encode_batch(b) for b in node.replica.batches({me: base}, nodes=[me])]
    assert len(tail) == 1
    head = node.replica.vector()[me]
    real = [node.replica.op(me, seq) for seq in range(1, head + 1)]
    yield Source(node, prefix, tail[0], [op for op in real if op is not None])
    node.close()


def _hub(path: Path, source: Source) -> Replica:
    replica = Replica(path, Identity.generate("92"), KINDS, migrate=migrate, feed=True)
    replica.trust(source.node.identity.node, source.node.identity.public_raw)
    return replica


@pytest.fixture
def receiver(tmp_path, source) -> Iterator[Replica]:
    replica = _hub(tmp_path / "hub.db", source)
    for data in source.prefix:
        replica.merge(data)
    yield replica
    replica.close()


@pytest.fixture(scope="module")
def complete_digest(tmp_path_factory, source) -> bytes:
    """The digest of a receiver that merged the genuine tail too."""
    replica = _hub(tmp_path_factory.mktemp("complete") / "hub.db", source)
    try:
        for data in [*source.prefix, source.tail]:
            replica.merge(data)
        return replica.digest()
    finally:
        replica.close()


def picture(replica: Replica) -> tuple[object, ...]:
    """Everything a merge may change: ops, vector, ops waiting behind a gap, states, feed."""
    return (
        replica.digest(),
        dict(replica.vector()),
        replica.pending_count(),
        replica.state_digest(),
        replica.feed_head(),
        len(replica.conflicts()),
    )


def offer(replica: Replica, data: bytes, complete: bytes) -> SyncError | None:
    """Merge ``data``; on refusal check the error is typed, says something, and changed
    nothing; on acceptance check only genuine ops are held."""
    before = picture(replica)
    error = refusal(lambda: replica.merge(data), SyncError)
    if error is not None:
        assert_clear(error)
        assert picture(replica) == before, f"a refused batch changed the replica: {error}"
        return error
    assert replica.digest() in (before[0], complete), "a damaged batch applied ops that are not genuine"
    return None


@examples(150)
@given(data=st.data())
def test_damaged_batch_bytes_are_refused_typed_and_apply_nothing(receiver, source, complete_digest, data):
    damaged = data.draw(mutated_bytes(source.tail))
    offer(receiver, damaged, complete_digest)


@examples(60)
@given(garbage=GARBAGE)
def test_garbage_is_refused_as_a_corrupt_batch(receiver, complete_digest, garbage):
    offer(receiver, garbage, complete_digest)
    offer(receiver, zstandard.ZstdCompressor().compress(garbage), complete_digest)


def _tree(data: bytes) -> object:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return msgspec.msgpack.decode(reader.read())


ODD_VALUES = st.sampled_from(ODD_MSGPACK) | st.binary(max_size=40) | st.integers()


@examples(150)
@given(data=st.data())
def test_batch_with_an_odd_value_inside_is_refused_typed(receiver, source, complete_digest, data):
    """The msgpack decodes, but a seal, run, index, proof or op body holds something odd."""
    tree = data.draw(mutated_tree(_tree(source.tail), ODD_VALUES))
    try:
        raw = msgspec.msgpack.encode(tree)
    except OverflowError:
        return  # an integer msgpack cannot carry cannot reach a receiver either
    offer(receiver, zstandard.ZstdCompressor().compress(raw), complete_digest)


# --- a registered node signs odd ops ----------------------------------------------------------

ODD_PAYLOAD_VALUES = (
    st.sampled_from(ODD_MSGPACK)
    | st.integers()
    | st.text(max_size=30)
    | st.builds(msgspec.msgpack.Ext, st.integers(0, 127), st.binary(max_size=8))
)
ODD_NAMES = st.sampled_from(("", "\x00", "dossier", "unit", "procedure", "account", "x" * 300)) | st.text(
    max_size=20
)


@st.composite
def hostile_op(draw: st.DrawFn, real: list[Op], node: str, seq: int) -> Op:
    """A real op of the source, re-signed with one thing changed: its payload (a value of an odd
    type, a key dropped or added), its kind, entity or action, its seq or stamp."""
    base = draw(st.sampled_from(real))
    what = draw(st.sampled_from(("payload",) * 3 + ("kind", "entity", "action", "seq", "stamp")))
    fields = {
        "node": node,
        "seq": seq,
        "stamp": base.stamp,
        "kind": base.kind,
        "entity": base.entity,
        "action": base.action,
        "payload": base.payload,
    }
    if what == "payload":
        payload = draw(mutated_tree(base.payload, ODD_PAYLOAD_VALUES))
        fields["payload"] = payload if isinstance(payload, dict) else {"": payload}
    elif what in ("kind", "entity", "action"):
        fields[what] = draw(ODD_NAMES)
    elif what == "seq":
        fields["seq"] = draw(st.sampled_from((seq + 1, seq + 1000, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)))
    else:
        fields["stamp"] = draw(st.sampled_from((0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)))
    return Op(**fields)  # type: ignore[arg-type]


@examples(120)
@given(data=st.data())
def test_validly_signed_hostile_ops_are_kept_or_refused_typed(receiver, source, data):
    identity = source.node.identity
    me = identity.node
    seq = receiver.vector()[me] + 1
    op = data.draw(hostile_op(source.real_ops, me, seq))
    try:
        body = opcodec.encode(op)
    except (OverflowError, TypeError):
        return  # msgpack cannot carry it: no node can send it
    seal = seal_run(me, op.seq, [body], identity.sign)
    batch = encode_batch(Batch(1, me, [Run(seal, [body])]))
    before = picture(receiver)
    error = refusal(lambda: receiver.merge(batch), SyncError)
    if error is not None:
        assert_clear(error)
        assert picture(receiver) == before, f"a refused op changed the replica: {error}"
        return
    # Kept: the op is in the log (or waits behind a gap), never lost and never half-applied.
    held = receiver.op(me, op.seq)
    if held is not None:
        assert opcodec.encode(held) == body
    else:
        assert receiver.pending_count() == before[2] + 1
