"""Operations: the immutable unit of change, and their one canonical encoding.

An op is encoded as a msgpack array (field order fixed by the struct, map keys sorted), so the
same op always encodes to the same bytes. Its identity is (node, seq); its hash is the Merkle
leaf hash of those bytes (see :mod:`sync.merkle`), and the receiver always hashes the bytes it
received, never a re-encoding.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sync.clock import Stamp
from sync.errors import CorruptBatch

Payload = dict[str, Any]
MAX_INT = (1 << 63) - 1
"""Seqs and stamps are stored as SQLite INTEGERs (signed 64-bit): a larger one is malformed."""


class Op(msgspec.Struct, array_like=True, frozen=True, gc=False):
    node: str
    """Origin node id; the op is covered by this node's signature."""
    seq: int
    """Dense per-node sequence number: 1, 2, 3 …"""
    stamp: int
    """Packed hybrid logical clock stamp (:meth:`Stamp.pack`)."""
    kind: str
    """Entity kind, e.g. a registered :class:`~sync.fold.Kind` name."""
    entity: str
    """Entity id, unique within its kind."""
    action: str
    """Op kind, dispatched to the kind's reducer of the same name."""
    payload: Payload = {}

    @property
    def hlc(self) -> Stamp:
        return Stamp.unpack(self.stamp)

    @property
    def key(self) -> tuple[int, str]:
        """Fold order: HLC stamp, then origin node as the tie-break."""
        return (self.stamp, self.node)

    @property
    def ident(self) -> tuple[str, int]:
        return (self.node, self.seq)


_encoder = msgspec.msgpack.Encoder(order="sorted")


def _refuse_extension(code: int, data: memoryview) -> Any:
    # Payloads are JSON-like; a msgpack extension value could not be stored as state.
    raise CorruptBatch(f"op holds a msgpack extension value (type {code}); ops carry JSON-like values only")


_decoder = msgspec.msgpack.Decoder(Op, ext_hook=_refuse_extension)


def encode(op: Op) -> bytes:
    return _encoder.encode(op)


def decode(data: bytes) -> Op:
    try:
        op = _decoder.decode(data)
    # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CorruptBatch(f"undecodable op: {exc}") from exc
    if not 1 <= op.seq <= MAX_INT or not 0 <= op.stamp <= MAX_INT or not op.node or not op.entity:
        raise CorruptBatch(f"malformed op {op.node}#{op.seq}")
    return op
