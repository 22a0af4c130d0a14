"""Version vectors: node id -> highest contiguous sequence number held.

Pure arithmetic over plain dicts wrapped in an immutable mapping. Because each node's seqs are
dense and a replica never records n+1 before n, a vector entry ``{node: n}`` means "I hold
exactly ops 1..n of node", and two vectors name exactly the ops one side lacks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import msgspec


class Vector(Mapping[str, int]):
    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        clean = {}
        for node, seq in (entries or {}).items():
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError(f"vector entry for {node!r} must be a non-negative integer")
            if seq:
                clean[node] = seq
        self._entries = clean

    def __getitem__(self, node: str) -> int:
        return self._entries.get(node, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Vector({self._entries!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Vector):
            return self._entries == other._entries
        if isinstance(other, Mapping):
            return self._entries == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._entries.items()))

    def merge(self, other: Mapping[str, int]) -> Vector:
        """Pointwise maximum: what two replicas hold together."""
        out = dict(self._entries)
        for node, seq in other.items():
            if seq > out.get(node, 0):
                out[node] = seq
        return Vector(out)

    def dominates(self, other: Mapping[str, int]) -> bool:
        """True if this vector holds everything ``other`` holds."""
        return all(self[node] >= seq for node, seq in other.items())

    def missing_from(self, other: Mapping[str, int]) -> dict[str, tuple[int, int]]:
        """Ranges (first, last) inclusive that ``other`` lacks and this vector holds."""
        return {
            node: (other.get(node, 0) + 1, seq)
            for node, seq in self._entries.items()
            if seq > other.get(node, 0)
        }

    def total(self) -> int:
        return sum(self._entries.values())

    def to_dict(self) -> dict[str, int]:
        return dict(self._entries)

    def encode(self) -> bytes:
        return msgspec.json.encode(self._entries, order="sorted")

    @classmethod
    def decode(cls, data: bytes) -> Vector:
        try:
            entries = msgspec.json.decode(data, type=dict[str, int])
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a version vector: {exc}") from exc
        return cls(entries)
