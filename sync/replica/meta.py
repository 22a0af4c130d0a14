"""The small key-value store next to the log (sync_meta) and what peers hold (sync_peer)."""

from __future__ import annotations

from collections.abc import Mapping

from sync.replica.core import (
    Core,
    _locked,
)
from sync.vector import Vector


class Meta(Core):
    """Small persistent values next to the log, and what peers hold."""

    # --- small persistent values -------------------------------------------------------------

    @_locked
    def meta(self, key: str, default: int | str | None = None) -> int | str | None:
        """A value this node keeps next to its log (a feed cursor, a clock offset …)."""
        value = self.store.get_meta(f"app:{key}")
        return default if value is None else value

    def set_meta(self, key: str, value: int | str) -> None:
        with self._transaction():
            self.store.set_meta(f"app:{key}", value)

    # --- peers ----------------------------------------------------------------------------

    def remember_peer(self, peer: str, vector: Mapping[str, int]) -> None:
        with self._transaction():
            self.conn.executemany(
                "INSERT INTO sync_peer (peer, node, seq) VALUES (?,?,?) "
                "ON CONFLICT (peer, node) DO UPDATE SET seq = max(seq, excluded.seq)",
                [(peer, node, seq) for node, seq in vector.items()],
            )

    @_locked
    def peer_vector(self, peer: str) -> Vector:
        rows = self.conn.execute("SELECT node, seq FROM sync_peer WHERE peer = ?", (peer,))
        return Vector(dict(rows.fetchall()))
