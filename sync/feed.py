"""Scopes and the feed: how a hub serves partial replicas (docs/decisions/0003).

Every replica records, for each entity whose kind declares ``scope_of``, the scope keys it has
ever had (``sync_scope``; keys only grow). A hub (``Replica(feed=True)``) also numbers every op
it stores in arrival order (``sync_feed``). A partial replica then pulls "the ops of entities in
my scope that arrived after position P" and keeps P as its cursor: the cursor is dense, so no
gap is ever skipped, and an entity that enters the scope later (a dossier transferred to the
unit) arrives with its whole history.

These functions run inside the replica's write transaction (``record``, ``update_scopes``) or
on its connection under its lock (``pull``, ``scope_digest``).
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sync.fold import Registry, State
from sync.ops import Op

EVERYWHERE = "*"
"""The scope key of reference data: in every replica's scope."""


def record(conn: sqlite3.Connection, ids: Mapping[str, int], ops: Sequence[Op]) -> None:
    conn.executemany(
        "INSERT INTO sync_feed (node, seq, kind, entity) VALUES (?,?,?,?)",
        [(ids[op.node], op.seq, op.kind, op.entity) for op in ops],
    )


def head(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(pos), 0) FROM sync_feed").fetchone()[0])


def update_scopes(
    conn: sqlite3.Connection, registry: Registry, states: Mapping[tuple[str, str], State]
) -> None:
    """Add the scope keys the changed entities have now (never remove: scopes only grow)."""
    add_scope_keys(conn, scope_keys(registry, states))


def scope_keys(registry: Registry, states: Mapping[tuple[str, str], State]) -> list[tuple[str, str, str]]:
    """(kind, entity, scope key) of every scope key these entities' states have."""
    wanted: list[tuple[str, str, str]] = []
    for (kind_name, entity), state in states.items():
        if kind_name not in registry:
            continue
        scope_of = registry[kind_name].scope_of
        if scope_of is None:
            continue
        wanted.extend((kind_name, entity, key) for key in scope_of(state))
    return wanted


def add_scope_keys(conn: sqlite3.Connection, wanted: Sequence[tuple[str, str, str]]) -> None:
    """Add (kind, entity, scope key) rows entered at the feed's head now (kept if held)."""
    if not wanted:
        return
    position = head(conn)
    conn.executemany(
        "INSERT OR IGNORE INTO sync_scope (kind, entity, key, since_pos) VALUES (?,?,?,?)",
        [(kind, entity, key, position) for kind, entity, key in wanted],
    )


@dataclass(frozen=True)
class Slice:
    """What a partial replica lacks, as op identities, and the cursor to keep afterwards."""

    ops: dict[str, list[int]]
    """origin node -> sorted seqs"""
    cursor: int
    done: bool
    """True when nothing in scope remains after ``cursor``."""

    @property
    def count(self) -> int:
        return sum(len(seqs) for seqs in self.ops.values())


def _after_cursor(conn: sqlite3.Connection, keys: Sequence[str], cursor: int, columns: str) -> str:
    """SELECT ``columns`` of the feed rows after ``cursor`` of entities in the scope ``keys`` and
    not authored by a node; parameters: (*keys, cursor, exclude node id).

    Two plans, chosen by size: a node that pulls often is a few rows behind the head, and walking
    the feed from its cursor is cheapest; a node far behind (a busy province, a long outage) is
    better served by walking its scope's entities and probing each one's ops after the cursor —
    otherwise every hello and pull would read the whole fleet's traffic since then."""
    marks = ",".join("?" * len(keys))
    behind = head(conn) - cursor
    in_scope = conn.execute(f"SELECT count(*) FROM sync_scope WHERE key IN ({marks})", keys).fetchone()[0]
    if behind <= in_scope:
        return f"""SELECT {columns} FROM sync_feed AS f
            WHERE EXISTS (SELECT 1 FROM sync_scope AS s WHERE s.key IN ({marks})
                          AND s.kind = f.kind AND s.entity = f.entity)
              AND f.pos > ? AND f.node != ?"""
    return f"""SELECT DISTINCT {columns} FROM sync_scope AS s CROSS JOIN sync_feed AS f
        WHERE s.key IN ({marks}) AND f.kind = s.kind AND f.entity = s.entity
          AND f.pos > ? AND f.node != ?"""


def pull(
    conn: sqlite3.Connection,
    keys: Iterable[str],
    cursor: int,
    exclude_node: int | None,
    max_ops: int,
) -> Slice:
    """The next slice of a partial replica's scope after ``cursor`` (at most about ``max_ops``
    ops in arrival order, plus the whole history of entities that entered the scope)."""
    keys = sorted(set(keys))
    marks = ",".join("?" * len(keys))
    exclude = -1 if exclude_node is None else exclude_node
    rows = conn.execute(
        f"{_after_cursor(conn, keys, cursor, 'f.pos, f.node, f.seq')} ORDER BY f.pos LIMIT ?",
        (*keys, cursor, exclude, max_ops + 1),
    ).fetchall()
    done = len(rows) <= max_ops
    rows = rows[:max_ops]
    new_cursor = head(conn) if done else rows[-1][0]
    picked: dict[int, set[int]] = defaultdict(set)
    for _, node, seq in rows:
        picked[node].add(seq)
    entered = conn.execute(
        f"""SELECT DISTINCT f.node, f.seq FROM sync_scope AS s
            JOIN sync_feed AS f ON f.kind = s.kind AND f.entity = s.entity
            WHERE s.key IN ({marks}) AND s.since_pos > ? AND s.since_pos <= ?
              AND f.pos <= ? AND f.node != ?""",
        (*keys, cursor, new_cursor, cursor, exclude),
    ).fetchall()
    for node, seq in entered:
        picked[node].add(seq)
    names = dict(conn.execute("SELECT id, node FROM sync_node").fetchall())
    return Slice({names[n]: sorted(seqs) for n, seqs in picked.items()}, new_cursor, done)


def backlog(conn: sqlite3.Connection, keys: Iterable[str], cursor: int, exclude: str | None, cap: int) -> int:
    """How many ops of the scope arrived after ``cursor`` (not ``exclude``'s own), up to ``cap``:
    what a partial replica's next pulls will bring, besides the history of newly routed entities."""
    keys = sorted(set(keys))
    node = conn.execute("SELECT id FROM sync_node WHERE node = ?", (exclude or "",)).fetchone()
    query = _after_cursor(conn, keys, max(0, cursor), "f.pos")
    row = conn.execute(
        f"SELECT count(*) FROM ({query} LIMIT ?)", (*keys, max(0, cursor), node[0] if node else -1, cap)
    ).fetchone()
    return int(row[0])


def first_after(
    conn: sqlite3.Connection, keys: Iterable[str], cursor: int, exclude: str | None
) -> bytes | None:
    """The bytes of the first op of the scope after ``cursor`` not authored by ``exclude``: the
    oldest change a partial replica has still to pull (None: nothing waits)."""
    keys = sorted(set(keys))
    row = conn.execute(
        f"""SELECT o.body FROM sync_feed AS f
            JOIN sync_op AS o ON o.node = f.node AND o.seq = f.seq
            WHERE f.pos > ?
              AND f.node != coalesce((SELECT id FROM sync_node WHERE node = ?), -1)
              AND EXISTS (SELECT 1 FROM sync_scope AS s
                          WHERE s.kind = f.kind AND s.entity = f.entity
                            AND s.key IN ({",".join("?" * len(keys))}))
            ORDER BY f.pos LIMIT 1""",
        (max(0, cursor), exclude or "", *keys),
    ).fetchone()
    return None if row is None else bytes(row[0])


def delivery_positions(
    conn: sqlite3.Connection, kind: str, wanted: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], int]:
    """For each (entity, scope key, node): the feed position a partial replica of that scope must
    have pulled past to hold every op of the entity that the node did not write itself — the
    later of its last such op and the moment the entity entered the scope (0: nothing)."""
    out: dict[tuple[str, str, str], int] = {}
    for start in range(0, len(wanted), 300):
        chunk = wanted[start : start + 300]
        values = ",".join("(?,?,?)" for _ in chunk)
        rows = conn.execute(
            f"""WITH want (entity, key, node) AS (VALUES {values})
                SELECT w.entity, w.key, w.node, max(
                    coalesce((SELECT max(f.pos) FROM sync_feed AS f
                              WHERE f.kind = ? AND f.entity = w.entity AND f.node != coalesce(
                                  (SELECT id FROM sync_node WHERE node = w.node), -1)), 0),
                    coalesce((SELECT s.since_pos FROM sync_scope AS s
                              WHERE s.kind = ? AND s.entity = w.entity AND s.key = w.key), 0))
                FROM want AS w""",
            [*(v for item in chunk for v in item), kind, kind],
        ).fetchall()
        out.update({(entity, key, node): int(pos) for entity, key, node, pos in rows})
    return out


def scope_digest(conn: sqlite3.Connection, keys: Iterable[str], *, held: bool = False) -> bytes:
    """SHA-256 over the ops of every entity in the scope, in (node, seq) order: a hub and a
    partial replica that agree hold the same ops of that scope.

    ``held``: every entity this replica holds is in the scope — a partial replica's side. Its
    own ``sync_scope`` cannot say which entities the hub put in its scope: the hub's keys grow
    with every state it folds, in its arrival order, so a dossier routed through a unit and on
    before that unit's box pulled is in the unit's scope at the hub (the box receives its whole
    history), while the box folds that history at once and never sees a state of its unit.
    Everything a partial replica holds came from its scope at the hub or is its own write
    inside it, so "every entity held" is the same set as the hub's."""
    if held:
        rows = conn.execute("SELECT refs FROM sync_entity").fetchall()
    else:
        keys = sorted(set(keys))
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"""SELECT DISTINCT e.refs FROM sync_scope AS s
                JOIN sync_entity AS e ON e.kind = s.kind AND e.entity = s.entity
                WHERE s.key IN ({marks})""",
            keys,
        ).fetchall()
    wanted: dict[int, set[int]] = defaultdict(set)
    for (blob,) in rows:
        for node_id, seq in struct.iter_unpack("<II", blob):
            wanted[node_id].add(seq)
    names = dict(conn.execute("SELECT id, node FROM sync_node").fetchall())
    h = hashlib.sha256()
    for node_id in sorted(wanted, key=lambda n: (names[n], n)):
        name = names[node_id].encode()
        for seq, body in _bodies(conn, node_id, sorted(wanted[node_id])):
            h.update(b"%s\x00%d\x00" % (name, seq))
            h.update(hashlib.sha256(body).digest())
    return h.digest()


def _bodies(conn: sqlite3.Connection, node_id: int, seqs: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """(seq, body) of one node's ops ``seqs`` (sorted), in order; an op not held has empty bytes.

    A commune's scope holds most of its own ops and of the city's: one range scan reads them
    far faster than a point query each (the digest runs every comparison, at both ends). Sparse
    picks (another node's ops on a few routed dossiers) are read one by one."""
    if len(seqs) * 4 >= seqs[-1] - seqs[0] + 1:
        held = conn.execute(
            "SELECT seq, body FROM sync_op WHERE node = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (node_id, seqs[0], seqs[-1]),
        )
        want = iter(seqs)
        seq = next(want, None)
        for have, body in held:
            while seq is not None and seq < have:
                yield seq, b""
                seq = next(want, None)
            if seq == have:
                yield have, bytes(body)
                seq = next(want, None)
        while seq is not None:
            yield seq, b""
            seq = next(want, None)
        return
    for seq in seqs:
        row = conn.execute("SELECT body FROM sync_op WHERE node = ? AND seq = ?", (node_id, seq)).fetchone()
        yield seq, row[0] if row else b""
