"""Merkle roots and subset proofs: a forwarded op still proves who wrote it."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.errors import BadSignature
from sync.merkle import leaf_hash, node_hash, proof_ranges, prove, root, root_from_proof, subtree_root


def leaves_of(size: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]


@st.composite
def tree_and_subset(draw, min_chosen: int = 1):
    size = draw(st.integers(min_value=1, max_value=70))
    chosen = sorted(draw(st.sets(st.integers(0, size - 1), min_size=min(min_chosen, size))))
    return size, chosen


def rfc6962(hashes: list[bytes]) -> bytes:
    """MTH from RFC 6962 section 2.1, written out independently."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(rfc6962(hashes[:k]), rfc6962(hashes[k:]))


@given(st.integers(min_value=1, max_value=200))
def test_root_is_the_rfc6962_root(size: int) -> None:
    leaves = leaves_of(size)
    assert root(leaves) == rfc6962(leaves)
    assert subtree_root(0, size, dict(enumerate(leaves)), {}) == root(leaves)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root([]) == hashlib.sha256(b"").digest()


@given(tree_and_subset())
def test_prove_then_root_from_proof_gives_the_root(case) -> None:
    size, chosen = case
    leaves = leaves_of(size)
    proof = prove(size, chosen, leaves)
    assert len(proof) == len(proof_ranges(size, chosen))
    assert root_from_proof(size, chosen, [leaves[i] for i in chosen], proof) == root(leaves)


@given(tree_and_subset())
def test_proof_ranges_cover_exactly_the_unchosen_leaves(case) -> None:
    size, chosen = case
    covered: list[int] = []
    for lo, hi in proof_ranges(size, chosen):
        assert lo < hi
        covered.extend(range(lo, hi))
    assert covered == sorted(covered)  # left to right, disjoint
    assert set(covered) == set(range(size)) - set(chosen)


@given(tree_and_subset(), st.data())
def test_reprove_a_subset_from_partial_knowledge(case, data) -> None:
    size, chosen = case
    leaves = leaves_of(size)
    proof = prove(size, chosen, leaves)
    # what a receiver of that proof knows: the chosen leaves and the subtree roots
    held = {i: leaves[i] for i in chosen}
    known = dict(zip(proof_ranges(size, chosen), proof, strict=True))
    subset = sorted(data.draw(st.sets(st.sampled_from(chosen), min_size=1)))
    onward = prove(size, subset, held, known)
    assert root_from_proof(size, subset, [leaves[i] for i in subset], onward) == root(leaves)


@given(tree_and_subset(), st.data())
def test_any_altered_chosen_leaf_changes_the_root(case, data) -> None:
    size, chosen = case
    leaves = leaves_of(size)
    proof = prove(size, chosen, leaves)
    given_leaves = [leaves[i] for i in chosen]
    victim = data.draw(st.integers(0, len(chosen) - 1))
    given_leaves[victim] = leaf_hash(b"forged")
    assert root_from_proof(size, chosen, given_leaves, proof) != root(leaves)


def test_reproving_without_the_needed_knowledge_is_refused() -> None:
    leaves = leaves_of(8)
    with pytest.raises(BadSignature, match="neither held nor known"):
        prove(8, [0], {0: leaves[0]})


@pytest.mark.parametrize(
    ("size", "chosen", "n_leaves", "proof_delta", "match"),
    [
        (8, [1, 1], 2, 0, "sorted and unique"),
        (8, [3, 1], 2, 0, "sorted and unique"),
        (8, [8], 1, 0, "does not match"),
        (8, [1, 2], 1, 0, "does not match"),
        (8, [1], 1, -1, "too short"),
        (8, [1], 1, +1, "too long"),
        (0, [], 0, 0, "empty"),
    ],
)
def test_malformed_proofs_are_refused(size, chosen, n_leaves, proof_delta, match) -> None:
    leaves = leaves_of(max(size, 1))
    ok_chosen = sorted(set(i for i in chosen if i < size)) or [0]
    proof = prove(max(size, 1), ok_chosen, leaves) if size else []
    if proof_delta < 0:
        proof = proof[:proof_delta]
    elif proof_delta > 0:
        proof = [*proof, b"\x00" * 32]
    with pytest.raises(BadSignature, match=match):
        root_from_proof(size, chosen, leaves[:n_leaves], proof)
