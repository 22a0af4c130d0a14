"""Merkle trees over op bytes (RFC 6962 shape), with subset proofs.

A seal signs the root over a contiguous run of one node's ops. When a replica needs only some
ops of a run (central forwarding a dossier's ops to its handling unit), the sender adds a proof:
the roots of the maximal subtrees that hold none of the chosen leaves, in left-to-right order.
The receiver rebuilds the root from the ops it got plus those hashes and checks the signature,
so a forwarded op still proves which node authored it.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping, Sequence

from sync.errors import BadSignature

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """Root over leaf hashes; pairs level by level, promoting a lone last node (= RFC 6962)."""
    if not leaves:
        return _sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        pairs = zip(level[0::2], level[1::2], strict=False)
        level = [_sha256(b"\x01" + left + right).digest() for left, right in pairs]
        if odd is not None:
            level.append(odd)
    return level[0]


def _holds(chosen: Sequence[int], lo: int, hi: int) -> bool:
    """Whether the sorted ``chosen`` has an index in [lo, hi): a bisection, not a scan, so a
    walk over the tree costs O(k log n) for k chosen leaves instead of O(k n)."""
    i = bisect_left(chosen, lo)
    return i < len(chosen) and chosen[i] < hi


def proof_ranges(size: int, chosen: Sequence[int]) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) of the maximal subtrees holding none of ``chosen``, in proof order."""
    ordered = sorted(set(chosen))
    ranges: list[tuple[int, int]] = []

    def walk(lo: int, hi: int) -> None:
        if not _holds(ordered, lo, hi):
            ranges.append((lo, hi))
        elif hi - lo > 1:
            mid = lo + _split(hi - lo)
            walk(lo, mid)
            walk(mid, hi)

    walk(0, size)
    return ranges


def subtree_root(
    lo: int, hi: int, leaves: Mapping[int, bytes], known: Mapping[tuple[int, int], bytes]
) -> bytes:
    """Root of leaves [lo, hi) from the leaves held and subtree roots learned from proofs."""
    if (lo, hi) in known:
        return known[(lo, hi)]
    if hi - lo == 1:
        try:
            return leaves[lo]
        except KeyError:
            raise BadSignature(f"cannot prove: leaf {lo} is neither held nor known") from None
    mid = lo + _split(hi - lo)
    return node_hash(subtree_root(lo, mid, leaves, known), subtree_root(mid, hi, leaves, known))


def prove(
    size: int,
    chosen: Sequence[int],
    leaves: Mapping[int, bytes] | Sequence[bytes],
    known: Mapping[tuple[int, int], bytes] | None = None,
) -> list[bytes]:
    """Hashes that, with the chosen leaves, rebuild the root. ``chosen`` sorted, unique.

    ``leaves`` may be partial (index -> hash) when ``known`` holds the roots of the subtrees
    whose leaves are missing, as learned from an earlier proof."""
    held = leaves if isinstance(leaves, Mapping) else dict(enumerate(leaves))
    return [subtree_root(lo, hi, held, known or {}) for lo, hi in proof_ranges(size, chosen)]


def root_from_proof(
    size: int, chosen: Sequence[int], chosen_leaves: Sequence[bytes], proof: Sequence[bytes]
) -> bytes:
    """Rebuild the root of a tree of ``size`` leaves; raise BadSignature if the proof is malformed."""
    if len(chosen) != len(chosen_leaves) or any(not 0 <= i < size for i in chosen):
        raise BadSignature("Merkle proof does not match the ops it covers")
    if list(chosen) != sorted(set(chosen)):
        raise BadSignature("Merkle proof indices must be sorted and unique")
    given = dict(zip(chosen, chosen_leaves, strict=True))
    ordered = list(chosen)
    proof_iter = iter(proof)

    def walk(lo: int, hi: int) -> bytes:
        if not _holds(ordered, lo, hi):
            try:
                return next(proof_iter)
            except StopIteration:
                raise BadSignature("Merkle proof is too short") from None
        if hi - lo == 1:
            return given[lo]
        mid = lo + _split(hi - lo)
        return node_hash(walk(lo, mid), walk(mid, hi))

    if size == 0:
        raise BadSignature("empty Merkle tree")
    result = walk(0, size)
    if next(proof_iter, None) is not None:
        raise BadSignature("Merkle proof is too long")
    return result
