"""Ops have one canonical encoding: same op, same bytes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import OPS

from sync.clock import Stamp
from sync.errors import CorruptBatch
from sync.ops import Op, decode, encode


@given(OPS)
def test_op_round_trips(op: Op) -> None:
    body = encode(op)
    assert decode(body) == op
    assert encode(decode(body)) == body


def _reversed_deep(value):
    if isinstance(value, dict):
        return {k: _reversed_deep(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_deep(v) for v in value]
    return value


@given(OPS, st.randoms(use_true_random=False))
def test_encoding_ignores_payload_insertion_order(op: Op, rnd) -> None:
    items = list(op.payload.items())
    rnd.shuffle(items)
    shuffled = msgspec.structs.replace(op, payload=_reversed_deep(dict(items)))
    assert encode(shuffled) == encode(op)


def test_fold_key_and_identity() -> None:
    op = Op("n-1", 7, Stamp(100, 2).pack(), "doc", "e", "set", {})
    assert op.hlc == Stamp(100, 2)
    assert op.key == (Stamp(100, 2).pack(), "n-1")
    assert op.ident == ("n-1", 7)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        msgspec.msgpack.encode(["n", 1, 1, "doc", "e"]),  # too short
        msgspec.msgpack.encode(["n", "one", 1, "doc", "e", "set", {}]),
        msgspec.msgpack.encode(["n", 0, 1, "doc", "e", "set", {}]),  # seq starts at 1
        msgspec.msgpack.encode(["n", 1, -1, "doc", "e", "set", {}]),
        msgspec.msgpack.encode(["", 1, 1, "doc", "e", "set", {}]),
        msgspec.msgpack.encode(["n", 1, 1, "doc", "", "set", {}]),
        msgspec.msgpack.encode(["n", 1, 1, "doc", "e", "set", {"k": 1}])[:-1],  # truncated
    ],
)
def test_malformed_op_bytes_are_corrupt(body: bytes) -> None:
    with pytest.raises(CorruptBatch):
        decode(body)
