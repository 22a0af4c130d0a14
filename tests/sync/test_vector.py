"""Version vectors: what a replica holds, and what another one lacks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.vector import Vector

ENTRIES = st.dictionaries(st.text(min_size=1, max_size=12), st.integers(min_value=0, max_value=1 << 40))
VECTORS = ENTRIES.map(Vector)


@given(VECTORS)
def test_encode_decode_round_trip(v: Vector) -> None:
    assert Vector.decode(v.encode()) == v


@given(ENTRIES)
def test_zero_entries_are_dropped_and_encoding_is_canonical(entries: dict[str, int]) -> None:
    v = Vector(entries)
    assert dict(v) == {n: s for n, s in entries.items() if s}
    assert Vector(dict(reversed(list(entries.items())))).encode() == v.encode()
    assert all(v[n] == entries.get(n, 0) for n in [*entries, "absent"])


@given(VECTORS, VECTORS, VECTORS)
def test_merge_is_a_join(a: Vector, b: Vector, c: Vector) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    m = a.merge(b)
    assert m.dominates(a)
    assert m.dominates(b)
    assert all(m[n] == max(a[n], b[n]) for n in set(a) | set(b))


@given(VECTORS, VECTORS)
def test_missing_from_names_exactly_what_the_other_lacks(mine: Vector, theirs: Vector) -> None:
    missing = mine.missing_from(theirs)
    for node, (first, last) in missing.items():
        assert first == theirs[node] + 1
        assert last == mine[node]
    # after receiving those ranges, the other side holds everything this one does
    filled = theirs.merge({n: last for n, (_, last) in missing.items()})
    assert filled.dominates(mine)
    assert (not missing) == theirs.dominates(mine)
    assert sum(last - first + 1 for first, last in missing.values()) == sum(
        max(0, mine[n] - theirs[n]) for n in mine
    )


@pytest.mark.parametrize("entries", [{"n": -1}, {"n": True}, {"n": 1.5}])
def test_rejects_entries_that_are_not_counts(entries) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        Vector(entries)


@pytest.mark.parametrize("data", [b"", b"[1,2]", b'{"n": "x"}', b'{"n": -3}', b"{"])
def test_decode_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"vector"):
        Vector.decode(data)
