"""Node trust: keys, revocations, and verifying a batch against them."""

from __future__ import annotations

from sync.batch import Batch, Verified, verify_batch
from sync.errors import UnknownNode
from sync.identity import check_binding
from sync.identity import verify as verify_signature
from sync.replica.core import (
    Core,
)


class Trust(Core):
    """Which key speaks for which node, which nodes are revoked, and a batch checked against
    both (pure CPU: no writes)."""

    def trust(self, node: str, public_raw: bytes) -> None:
        """Record the key that speaks for ``node`` (the id must derive from it)."""
        check_binding(node, public_raw)
        with self._transaction():
            self._node_id(node)
            self.store.set_key(node, public_raw)
        self._keys[node] = public_raw

    def revoke(self, node: str, after_seq: int | None = None) -> int:
        """Refuse ``node``'s ops after ``after_seq`` (default: what this replica holds now)."""
        with self._transaction():
            node_id = self._node_id(node)
            after = self._heads.get(node, 0) if after_seq is None else after_seq
            self.store.set_revoked(node_id, after)
        self._revoked[node] = after
        return after

    def revoked_after(self, node: str) -> int | None:
        """The last of ``node``'s seqs this replica accepts; None: not revoked."""
        return self._revoked.get(node)

    def public_key(self, node: str) -> bytes:
        key = self._keys.get(node)
        if key is None:
            with self._lock:  # registered by another process since (motcua node add)?
                self._refresh()
            key = self._keys.get(node)
        if key is None:
            raise UnknownNode(f"no trusted key for node {node}")
        return key

    def _verify(self, node: str, signature: bytes, message: bytes) -> None:
        verify_signature(self.public_key(node), signature, message)

    def verify(self, batch: Batch) -> list[Verified]:
        """Check every run of a batch against the keys and revocations this replica holds."""
        return verify_batch(batch, self._verify, self.revoked_after)
