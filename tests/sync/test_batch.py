"""Seals and batches: the wire format, and proving who wrote a run of ops."""

from __future__ import annotations

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import PAYLOADS

from sync import merkle
from sync.batch import (
    PROTOCOL,
    Batch,
    Run,
    Seal,
    decode_batch,
    encode_batch,
    seal_run,
    verify_run,
)
from sync.errors import BadSignature, CorruptBatch
from sync.identity import Identity
from sync.identity import verify as verify_sig
from sync.ops import Op, decode, encode

ALICE = Identity.generate("alice")
MALLORY = Identity.generate("mallory")
KEYS = {ALICE.node: ALICE.public_raw, MALLORY.node: MALLORY.public_raw}


def verifier(node: str, signature: bytes, message: bytes) -> None:
    verify_sig(KEYS[node], signature, message)


def bodies(node: str, first: int, payloads: list[dict]) -> list[bytes]:
    return [
        encode(Op(node, first + i, 1000 + i, "doc", f"e{i % 3}", "set", p)) for i, p in enumerate(payloads)
    ]


SEALS = st.builds(
    Seal,
    node=st.text(max_size=20),
    first=st.integers(1, 1 << 40),
    last=st.integers(1, 1 << 40),
    root=st.binary(min_size=32, max_size=32),
    signature=st.binary(max_size=64),
)
RUNS = st.builds(
    Run,
    seal=SEALS,
    ops=st.lists(st.binary(max_size=40), max_size=5),
    chosen=st.none() | st.lists(st.integers(0, 1000), max_size=5),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=4),
)
BATCHES = st.builds(
    Batch, protocol=st.just(PROTOCOL), sender=st.text(max_size=20), runs=st.lists(RUNS, max_size=4)
)


@given(BATCHES, st.integers(min_value=1, max_value=9))
def test_batch_encode_decode_round_trip(batch: Batch, level: int) -> None:
    data = encode_batch(batch, level=level)
    assert decode_batch(data) == batch


@settings(max_examples=30)
@given(st.integers(1, 1000), st.lists(PAYLOADS, min_size=1, max_size=8))
def test_seal_sign_then_verify_run(first: int, payloads: list[dict]) -> None:
    ops = bodies(ALICE.node, first, payloads)
    seal = seal_run(ALICE.node, first, ops, ALICE.sign)
    assert (seal.first, seal.last, seal.size) == (first, first + len(ops) - 1, len(ops))
    assert seal.root == merkle.root([merkle.leaf_hash(b) for b in ops])
    verified = verify_run(Run(seal, ops), verifier)
    assert [v.body for v in verified] == ops
    assert [v.op.seq for v in verified] == list(range(first, first + len(ops)))
    assert [v.op for v in verified] == [decode(b) for b in ops]


@settings(max_examples=30)
@given(st.lists(PAYLOADS, min_size=2, max_size=9), st.data())
def test_partial_run_verifies_with_its_proof(payloads: list[dict], data) -> None:
    ops = bodies(ALICE.node, 1, payloads)
    seal = seal_run(ALICE.node, 1, ops, ALICE.sign)
    chosen = sorted(data.draw(st.sets(st.integers(0, len(ops) - 1), min_size=1, max_size=len(ops) - 1)))
    proof = merkle.prove(len(ops), chosen, [merkle.leaf_hash(b) for b in ops])
    run = Run(seal, [ops[i] for i in chosen], chosen, proof)
    assert [v.op.seq for v in verify_run(run, verifier)] == [i + 1 for i in chosen]
    # shifting the claimed indices is caught by the op's own seq
    if chosen[-1] + 1 < len(ops):
        shifted = Run(seal, run.ops, [i + 1 for i in chosen], proof)
        with pytest.raises(CorruptBatch, match="not at its place"):
            verify_run(shifted, verifier)


@pytest.fixture
def sealed():
    ops = bodies(ALICE.node, 1, [{"title": f"hello {i}"} for i in range(4)])
    return seal_run(ALICE.node, 1, ops, ALICE.sign), ops


@pytest.mark.parametrize("field", ["node", "first", "last", "root"])
def test_seal_signature_covers_every_field(sealed, field) -> None:
    seal, _ = sealed
    changed = {
        "node": MALLORY.node,
        "first": seal.first + 1,
        "last": seal.last + 1,
        "root": bytes(32),
    }[field]
    forged = msgspec.structs.replace(seal, **{field: changed})
    with pytest.raises(BadSignature):
        verify_sig(ALICE.public_raw, forged.signature, forged.message())
    verify_sig(ALICE.public_raw, seal.signature, seal.message())


def test_seal_signed_by_another_key_is_refused(sealed) -> None:
    seal, ops = sealed
    forged = msgspec.structs.replace(seal, signature=MALLORY.sign(seal.message()))
    with pytest.raises(BadSignature):
        verify_run(Run(forged, ops), verifier)


def test_flipped_byte_in_an_op_is_refused(sealed) -> None:
    seal, ops = sealed
    body = ops[2].replace(b"hello", b"hellp")  # one bit, inside the payload string
    assert body != ops[2]
    with pytest.raises(BadSignature, match="do not match their seal"):
        verify_run(Run(seal, [*ops[:2], body, *ops[3:]]), verifier)


@pytest.mark.parametrize(
    ("make_run", "error"),
    [
        (lambda s, ops: Run(s, ops[:-1]), CorruptBatch),  # truncated
        (lambda s, ops: Run(s, [*ops, ops[-1]]), CorruptBatch),  # extra op
        (lambda s, ops: Run(s, [ops[1], ops[0], *ops[2:]]), CorruptBatch),  # reordered
        (lambda s, ops: Run(s, ops[:2], [0, 1, 2], []), CorruptBatch),  # indices do not match
        (lambda s, ops: Run(s, ops[:2], [0, 1], []), BadSignature),  # proof missing
        (lambda s, ops: Run(msgspec.structs.replace(s, first=0), ops), CorruptBatch),
        (lambda s, ops: Run(msgspec.structs.replace(s, last=0), ops), CorruptBatch),
    ],
)
def test_malformed_runs_are_refused(sealed, make_run, error) -> None:
    seal, ops = sealed
    with pytest.raises(error):
        verify_run(make_run(seal, ops), verifier)


def test_op_of_another_node_inside_a_seal_is_refused(sealed) -> None:
    _seal, ops = sealed
    foreign = bodies(MALLORY.node, 1, [{"title": "0"}])
    mixed = [foreign[0], *ops[1:]]
    forged = seal_run(ALICE.node, 1, mixed, ALICE.sign)
    with pytest.raises(CorruptBatch, match="not at its place"):
        verify_run(Run(forged, mixed), verifier)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not zstd at all",
        zstandard.ZstdCompressor().compress(b"\xc1\xc1"),  # garbage msgpack
        zstandard.ZstdCompressor().compress(msgspec.msgpack.encode([PROTOCOL, "x"])),  # wrong shape
        zstandard.ZstdCompressor().compress(msgspec.msgpack.encode([PROTOCOL + 1, "x", []])),
        encode_batch(Batch(PROTOCOL, "x", []))[:-3],  # truncated frame
    ],
)
def test_undecodable_batches_are_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptBatch):
        decode_batch(data)


def test_a_batch_cut_anywhere_or_with_anything_after_its_frame_is_refused_whole() -> None:
    # The frame's end (its last block, its checksum) is what says the batch is whole; the ops
    # inside are signed, but a damaged transfer is refused, not half read or read past.
    run = Run(Seal("n", 1, 1, bytes(32)), [bytes(range(256)) * 40])
    for checksum in (False, True):
        whole = zstandard.ZstdCompressor(write_checksum=checksum).compress(
            msgspec.msgpack.encode(Batch(PROTOCOL, "x", [run]))
        )
        assert decode_batch(whole).runs == [run]
        for cut in range(1, len(whole)):
            with pytest.raises(CorruptBatch):
                decode_batch(whole[:cut])
        for tail in (b"\0", b"garbage", whole):
            with pytest.raises(CorruptBatch, match="after"):
                decode_batch(whole + tail)


def test_decompression_bomb_is_refused() -> None:
    # A frame that declares its content size must still be bounded by max_size: a few bytes of
    # zstd must not make a receiver allocate MAX_DECOMPRESSED or more.
    data = encode_batch(Batch(PROTOCOL, "x", [Run(Seal("n", 1, 1, bytes(32)), [bytes(100_000)])]))
    assert len(data) < 1000
    with pytest.raises(CorruptBatch):
        decode_batch(data, max_size=10_000)
    assert decode_batch(data).runs[0].ops == [bytes(100_000)]
