"""Folded entity states: each entity's state, fold position and refs, and the fold."""

from __future__ import annotations

import operator
import struct
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sync import feed
from sync import ops as opcodec
from sync.fold import Conflict, Kind, State, apply
from sync.ops import Op
from sync.replica.core import (
    Core,
    EntityKey,
)
from sync.storage import EntityRow


@dataclass
class MergeReport:
    applied: int = 0
    duplicates: int = 0
    pending: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    entities: set[EntityKey] = field(default_factory=set)
    unknown_kinds: int = 0


_Row = EntityRow
"""What is held of one entity (its refs packed by :func:`_pack_refs`)."""


def _pack_refs(pairs: Sequence[tuple[int, int]]) -> bytes:
    return struct.pack(f"<{2 * len(pairs)}I", *(n for pair in pairs for n in pair))


def _unpack_refs(refs: bytes) -> list[tuple[int, int]]:
    return list(_REF.iter_unpack(refs))


_REF = struct.Struct("<II")
_fold_order = operator.attrgetter("stamp", "node")


class Entities(Core):
    """Folded entity states: read, fold new ops in, re-fold from the log, store and project."""

    # --- fold -----------------------------------------------------------------------------

    def _fold(
        self, new_ops: Sequence[Op], report: MergeReport, read: Mapping[EntityKey, _Row | None] | None = None
    ) -> None:
        """Fold each touched entity's new ops at once, then store every state (and project)
        once. ``read``: entities already read (None: not held); the others are read here (ops
        released from pending may touch entities the batch itself does not)."""
        grouped: dict[EntityKey, list[Op]] = defaultdict(list)
        for op in new_ops:
            grouped[(op.kind, op.entity)].append(op)
        read = read or {}
        rows = {key: row for key, row in read.items() if row is not None}
        rows.update(self._load_rows([key for key in grouped if key not in read]))
        changed: dict[EntityKey, _Row] = {}
        ids = self._ids
        for key, ops in grouped.items():
            if len(ops) > 1:
                ops.sort(key=_fold_order)
            row = rows.get(key)
            refs = (row.refs if row else b"") + _pack_refs([(ids[op.node], op.seq) for op in ops])
            if key[0] not in self.registry:
                # Kept in the log and referenced; folded by refold_all() after an upgrade.
                report.unknown_kinds += len(ops)
                changed[key] = _Row({}, max(ops[-1].key, row.last) if row else ops[-1].key, refs)
                continue
            kind = self.registry[key[0]]
            conflicts: list[Conflict] = []
            if row is None or ops[0].key > row.last:
                state = row.state if row else {}
                apply(kind, state, ops, conflicts)
                if conflicts:
                    state["_conflicts"] = state.get("_conflicts", []) + [
                        [c.node, c.seq, c.action, c.reason] for c in conflicts
                    ]
                changed[key] = _Row(state, ops[-1].key, refs)
            else:
                changed[key] = self._refold(kind, key[1], refs, conflicts)
            report.conflicts.extend(conflicts)
            report.entities.add(key)
        self._store_rows(changed)

    def _bodies(self, refs: bytes) -> list[bytes]:
        return self.store.ref_bodies(_unpack_refs(refs))

    def _refold(self, kind: Kind, entity: str, refs: bytes, conflicts: list[Conflict]) -> _Row:
        """Fold an entity's whole history again: the price of a late op, paid by its entity only."""
        ops = sorted((opcodec.decode(b) for b in self._bodies(refs)), key=lambda op: op.key)
        state = apply(kind, {}, ops, conflicts)
        if conflicts:
            state["_conflicts"] = [[c.node, c.seq, c.action, c.reason] for c in conflicts]
        self.store.clear_conflicts(kind.name, entity)
        return _Row(state, ops[-1].key, refs)

    def _load_rows(self, keys: Sequence[EntityKey]) -> dict[EntityKey, _Row]:
        out: dict[EntityKey, _Row] = {}
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, entity in keys:
            by_kind[kind].append(entity)
        for kind, entities in by_kind.items():
            for entity, row in self.store.entity_rows(kind, entities).items():
                out[(kind, entity)] = row
        return out

    def _store_rows(self, rows: Mapping[EntityKey, _Row]) -> None:
        store = self.store
        store.put_entities(rows)
        store.add_scope_keys(feed.scope_keys(self.registry, {key: row.state for key, row in rows.items()}))
        conflicts = [
            Conflict(kind, entity, *c)
            for (kind, entity), row in rows.items()
            for c in row.state.get("_conflicts", ())
        ]
        if conflicts:
            store.add_conflicts(conflicts)
        by_kind: dict[str, list[tuple[str, State]]] = defaultdict(list)
        for (kind, entity), row in rows.items():
            by_kind[kind].append((entity, row.state))
        for kind_name, items in by_kind.items():
            if kind_name in self.registry:
                project = self.registry[kind_name].project
                if project is not None:
                    self._projecting = True
                    try:
                        project(self.conn, items)
                    finally:
                        self._projecting = False

    def refold_all(self) -> int:
        """Re-fold every entity from the log (after an upgrade that registers new kinds)."""
        with self._transaction():
            rows = self.store.all_refs()
            changed = {
                (kind_name, entity): self._refold(self.registry[kind_name], entity, refs, [])
                for kind_name, entity, refs in rows
                if kind_name in self.registry
            }
            self._store_rows(changed)
        return len(changed)
