"""Seals and batches: how ops travel, and how a receiver proves who wrote them.

A :class:`Seal` is an origin node's Ed25519 signature over the Merkle root of a contiguous run of
its own ops (seqs ``first..last``). One signature covers a whole run, so verification costs one
Ed25519 check per run plus two SHA-256 per op, instead of one Ed25519 check per op.

A :class:`Batch` carries :class:`Run` s: a seal and some of its ops (all of them, or a chosen
subset with a Merkle proof). On the wire a batch is msgpack, compressed with zstandard; the
receiver decodes with a bound on the decompressed size, verifies every run, and only then lets
the replica apply anything. Any failure raises a :class:`~sync.errors.VerificationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
import zstandard

from sync import merkle, ops
from sync.errors import BadSignature, CorruptBatch, RevokedNode
from sync.ops import Op

PROTOCOL = 1
SEAL_CONTEXT = b"motcua-seal/1"
MAX_DECOMPRESSED = 64 * 1024 * 1024


class Seal(msgspec.Struct, array_like=True, frozen=True):
    node: str
    first: int
    last: int
    root: bytes
    signature: bytes = b""

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def message(self) -> bytes:
        return msgspec.msgpack.encode([SEAL_CONTEXT, self.node, self.first, self.last, self.root])


class Run(msgspec.Struct, array_like=True, frozen=True):
    seal: Seal
    ops: list[bytes]
    chosen: list[int] | None = None
    """Indices (0-based within the seal) of ``ops`` when only some are sent; None: all."""
    proof: list[bytes] = []


class Batch(msgspec.Struct, array_like=True, frozen=True):
    protocol: int
    sender: str
    runs: list[Run]


@dataclass(frozen=True, slots=True)
class Verified:
    """An op that passed verification, with the exact bytes it came with."""

    op: Op
    body: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Batch)


def encode_batch(batch: Batch, level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(_encoder.encode(batch))


_SLICE = 1024
"""Compressed bytes fed to the decompressor at a time: zstd expands a slice at most ~32,768
times (128 KiB blocks of a few bytes each), so the output passes a cap by at most ~32 MiB
before the cap refuses it."""


def decompress(data: bytes, max_size: int, what: str = "batch") -> bytes:
    """Exactly one whole zstd frame, at most ``max_size`` bytes decompressed; CorruptBatch else.

    The frame's end is what proves the bytes whole: a frame cut short (even by only its last
    byte, the checksum, which leaves every content byte readable) is refused, and so is anything
    after the frame. ``decompress()`` would trust the size a frame header claims (a hostile header
    can claim anything) and a stream reader returns what it has at EOF without complaint, so the
    frame is fed in slices, counting the output."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    view = memoryview(data)
    parts: list[bytes] = []
    size = 0
    try:
        for start in range(0, len(data), _SLICE):
            part = decompressor.decompress(view[start : start + _SLICE])
            size += len(part)
            if size > max_size:
                raise CorruptBatch(f"{what} decompresses to more than {max_size} bytes")
            parts.append(part)
            if decompressor.eof:
                if decompressor.unused_data or start + _SLICE < len(data):
                    raise CorruptBatch(f"{what} has bytes after the end of its compressed frame")
                break
    except zstandard.ZstdError as exc:
        raise CorruptBatch(f"{what} is not valid zstandard data: {exc}") from exc
    if not decompressor.eof:
        raise CorruptBatch(f"{what} is truncated: its compressed frame does not end")
    return b"".join(parts)


def decode_batch(data: bytes, max_size: int = MAX_DECOMPRESSED) -> Batch:
    raw = decompress(data, max_size)
    if not raw:
        raise CorruptBatch("batch is empty")
    try:
        batch = _decoder.decode(raw)
    # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CorruptBatch(f"batch does not decode: {exc}") from exc
    if batch.protocol != PROTOCOL:
        raise CorruptBatch(f"batch protocol {batch.protocol} is not supported (this is {PROTOCOL})")
    return batch


def seal_run(node: str, first: int, bodies: Sequence[bytes], sign: Callable[[bytes], bytes]) -> Seal:
    leaves = [merkle.leaf_hash(b) for b in bodies]
    unsigned = Seal(node, first, first + len(bodies) - 1, merkle.root(leaves))
    return Seal(unsigned.node, unsigned.first, unsigned.last, unsigned.root, sign(unsigned.message()))


def verify_run(run: Run, verify: Callable[[str, bytes, bytes], None]) -> list[Verified]:
    """Check a run against its seal; ``verify(node, signature, message)`` raises if invalid."""
    seal = run.seal
    if seal.first < 1 or seal.last < seal.first:
        raise CorruptBatch(f"seal of {seal.node} has an empty or negative range")
    if seal.last > ops.MAX_INT:
        raise CorruptBatch(f"seal of {seal.node} ends beyond the largest seq a log can hold")
    if run.chosen is None:
        if len(run.ops) != seal.size:
            raise CorruptBatch(f"run of {seal.node}#{seal.first} is truncated")
        indices: Sequence[int] = range(seal.size)
    else:
        indices = run.chosen
        if len(indices) != len(run.ops):
            raise CorruptBatch(f"run of {seal.node}#{seal.first} lists {len(indices)} indices")
    out: list[Verified] = []
    node, first, decode = seal.node, seal.first, ops.decode
    for index, body in zip(indices, run.ops, strict=True):
        op = decode(body)
        if op.seq != first + index or op.node != node:
            raise CorruptBatch(f"op {op.node}#{op.seq} is not at its place in its seal")
        out.append(Verified(op, body))
    leaves = [merkle.leaf_hash(body) for body in run.ops]
    if run.chosen is None:
        got = merkle.root(leaves)
    else:
        got = merkle.root_from_proof(seal.size, run.chosen, leaves, run.proof)
    if got != seal.root:
        raise BadSignature(f"ops of {seal.node}#{seal.first}..{seal.last} do not match their seal")
    verify(seal.node, seal.signature, seal.message())
    return out


def verify_batch(
    batch: Batch,
    verify: Callable[[str, bytes, bytes], None],
    revoked_after: Callable[[str], int | None],
) -> list[Verified]:
    """Check every run of a batch (:func:`verify_run`) and refuse a revoked origin's ops after
    its revocation (``revoked_after(node)``: the last seq still accepted, None: not revoked);
    raise on the first failure. Pure CPU, no writes: the one revocation rule, whether the keys
    come from a replica or from certificates a bundle carries."""
    out: list[Verified] = []
    for run in batch.runs:
        verified = verify_run(run, verify)
        node = run.seal.node
        after = revoked_after(node)
        # Only the ops actually sent count: earlier ops sharing a seal with later ones stay valid.
        if after is not None and verified and verified[-1].op.seq > after:
            raise RevokedNode(f"node {node} was revoked; its ops after #{after} are refused")
        out.extend(verified)
    return out
