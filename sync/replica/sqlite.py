"""The :class:`~sync.storage.Store` on SQLite: the statements a replica runs on its writer connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from sync import feed
from sync.fold import Conflict, State
from sync.ops import Op
from sync.storage import EntityKey, EntityRow, NodeRow, SealRow

CHUNK = 500  # SQLite host parameters per IN (...) query

_state_encoder = msgspec.json.Encoder(order="sorted")
_state_decoder = msgspec.json.Decoder(dict[str, Any])


class SqliteStore:
    """sync's tables on one SQLite connection (the replica's writer, under its lock)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # --- transactions -------------------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        # SQLite may already have rolled back itself (a full disk at COMMIT does): a second
        # ROLLBACK would fail and hide the real error.
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    # --- nodes --------------------------------------------------------------------------
    def nodes(self) -> list[NodeRow]:
        rows = self.conn.execute("SELECT id, node, public_key, head, revoked_after FROM sync_node")
        return [NodeRow(*row) for row in rows]

    def add_node(self, node: str) -> int:
        cur = self.conn.execute("INSERT INTO sync_node (node) VALUES (?)", (node,))
        return int(cur.lastrowid or 0)

    def set_key(self, node: str, public_raw: bytes) -> None:
        self.conn.execute("UPDATE sync_node SET public_key = ? WHERE node = ?", (public_raw, node))

    def set_revoked(self, node_id: int, after: int) -> None:
        self.conn.execute("UPDATE sync_node SET revoked_after = ? WHERE id = ?", (after, node_id))
        self.conn.execute("DELETE FROM sync_pending WHERE node = ? AND seq > ?", (node_id, after))

    def set_head(self, node_id: int, head: int) -> None:
        self.conn.execute("UPDATE sync_node SET head = ? WHERE id = ?", (head, node_id))

    # --- the op log ---------------------------------------------------------------------
    def insert_ops(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        self.conn.executemany("INSERT INTO sync_op (node, seq, body) VALUES (?,?,?)", rows)

    def op_body(self, node_id: int, seq: int) -> bytes | None:
        row = self.conn.execute(
            "SELECT body FROM sync_op WHERE node = ? AND seq = ?", (node_id, seq)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def op_range(self, node_id: int, first: int, last: int) -> list[tuple[int, bytes]]:
        return self.conn.execute(
            "SELECT seq, body FROM sync_op WHERE node = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (node_id, first, last),
        ).fetchall()

    def op_bodies(self, node_id: int, seqs: Sequence[int]) -> dict[int, bytes]:
        held: dict[int, bytes] = {}
        for i in range(0, len(seqs), CHUNK):
            chunk = seqs[i : i + CHUNK]
            held.update(
                self.conn.execute(
                    f"SELECT seq, body FROM sync_op WHERE node = ? AND seq IN ({','.join('?' * len(chunk))})",
                    (node_id, *chunk),
                ).fetchall()
            )
        return held

    def ref_bodies(self, refs: Iterable[tuple[int, int]]) -> list[bytes]:
        get = self.conn.execute
        return [get("SELECT body FROM sync_op WHERE node = ? AND seq = ?", ref).fetchone()[0] for ref in refs]

    # --- ops waiting behind a gap -------------------------------------------------------
    def pending_range(self, node_id: int, first: int, last: int) -> dict[int, bytes]:
        rows = self.conn.execute(
            "SELECT seq, body FROM sync_pending WHERE node = ? AND seq BETWEEN ? AND ?",
            (node_id, first, last),
        )
        return dict(rows.fetchall())

    def pending_after(self, node_id: int, seq: int) -> list[tuple[int, bytes]]:
        return self.conn.execute(
            "SELECT seq, body FROM sync_pending WHERE node = ? AND seq > ? ORDER BY seq", (node_id, seq)
        ).fetchall()

    def add_pending(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO sync_pending (node, seq, body) VALUES (?,?,?)", rows)

    def drop_pending_through(self, node_id: int, seq: int) -> None:
        self.conn.execute("DELETE FROM sync_pending WHERE node = ? AND seq <= ?", (node_id, seq))

    # --- entities and conflicts ---------------------------------------------------------
    def entity_rows(self, kind: str, entities: Sequence[str]) -> dict[str, EntityRow]:
        out: dict[str, EntityRow] = {}
        decode = _state_decoder.decode
        for i in range(0, len(entities), CHUNK):
            chunk = entities[i : i + CHUNK]
            marks = ",".join("?" * len(chunk))
            for entity, state, stamp, node, refs in self.conn.execute(
                "SELECT entity, state, last_stamp, last_node, refs FROM sync_entity "
                f"WHERE kind = ? AND entity IN ({marks})",
                (kind, *chunk),
            ):
                out[entity] = EntityRow(decode(state), (stamp, node), refs)
        return out

    def state(self, kind: str, entity: str) -> State | None:
        row = self.conn.execute(
            "SELECT state FROM sync_entity WHERE kind = ? AND entity = ?", (kind, entity)
        ).fetchone()
        return None if row is None else _state_decoder.decode(row[0])

    def states(self, kind: str | None) -> dict[EntityKey, State]:
        query = "SELECT kind, entity, state FROM sync_entity"
        rows = self.conn.execute(query + " WHERE kind = ?", (kind,)) if kind else self.conn.execute(query)
        return {(k, e): _state_decoder.decode(s) for k, e, s in rows}

    def entity_refs(self, kind: str, entity: str) -> bytes | None:
        row = self.conn.execute(
            "SELECT refs FROM sync_entity WHERE kind = ? AND entity = ?", (kind, entity)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def all_refs(self) -> list[tuple[str, str, bytes]]:
        return self.conn.execute("SELECT kind, entity, refs FROM sync_entity").fetchall()

    def put_entities(self, rows: Mapping[EntityKey, EntityRow]) -> None:
        encode = _state_encoder.encode
        self.conn.executemany(
            "INSERT INTO sync_entity (kind, entity, state, last_stamp, last_node, refs) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (kind, entity) DO UPDATE SET state = excluded.state, "
            "last_stamp = excluded.last_stamp, last_node = excluded.last_node, refs = excluded.refs",
            [
                (kind, entity, encode(row.state), row.last[0], row.last[1], row.refs)
                for (kind, entity), row in rows.items()
            ],
        )

    def add_conflicts(self, conflicts: Sequence[Conflict]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO sync_conflict (kind, entity, node, seq, action, reason) "
            "VALUES (?,?,?,?,?,?)",
            [(c.kind, c.entity, c.node, c.seq, c.action, c.reason) for c in conflicts],
        )

    def clear_conflicts(self, kind: str, entity: str) -> None:
        self.conn.execute("DELETE FROM sync_conflict WHERE kind = ? AND entity = ?", (kind, entity))

    def conflicts(self, kind: str | None, entity: str | None) -> list[Conflict]:
        query = "SELECT kind, entity, node, seq, action, reason FROM sync_conflict WHERE 1=1"
        params: list[str] = []
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        if entity is not None:
            query += " AND entity = ?"
            params.append(entity)
        return [
            Conflict(*row) for row in self.conn.execute(query + " ORDER BY kind, entity, node, seq", params)
        ]

    def op_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM sync_op").fetchone()[0])

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM sync_pending").fetchone()[0])

    # --- scopes and the feed (a hub) ----------------------------------------------------
    def add_scope_keys(self, rows: Sequence[tuple[str, str, str]]) -> None:
        feed.add_scope_keys(self.conn, rows)

    def feed_append(self, ids: Mapping[str, int], ops: Sequence[Op]) -> None:
        feed.record(self.conn, ids, ops)

    def feed_head(self) -> int:
        return feed.head(self.conn)

    def feed_slice(self, keys: Iterable[str], cursor: int, exclude: int | None, max_ops: int) -> feed.Slice:
        return feed.pull(self.conn, keys, cursor, exclude, max_ops)

    def feed_position(self, node_id: int, seq: int) -> int:
        row = self.conn.execute("SELECT min(pos) FROM sync_feed WHERE node = ? AND seq = ?", (node_id, seq))
        return int(row.fetchone()[0])

    # --- seals --------------------------------------------------------------------------
    def last_sealed(self, node_id: int) -> int:
        row = self.conn.execute("SELECT max(last) FROM sync_seal WHERE node = ?", (node_id,)).fetchone()
        return int(row[0] or 0)

    def seals(self, node_id: int, first: int, last: int) -> list[SealRow]:
        rows = self.conn.execute(
            "SELECT first, last, root, signature FROM sync_seal "
            "WHERE node = ? AND last >= ? AND first <= ? ORDER BY first",
            (node_id, first, last),
        ).fetchall()
        return [SealRow(*row) for row in rows]

    def add_seal(self, node_id: int, seal: SealRow, *, known: bool = False) -> None:
        self.conn.execute(
            f"INSERT {'OR IGNORE ' if known else ''}INTO sync_seal (node, first, last, root, signature) "
            "VALUES (?,?,?,?,?)",
            (node_id, seal.first, seal.last, seal.root, seal.signature),
        )

    def seal_hashes(self, node_id: int, first: int) -> dict[tuple[int, int], bytes]:
        rows = self.conn.execute(
            "SELECT lo, hi, hash FROM sync_seal_hash WHERE node = ? AND first = ?", (node_id, first)
        )
        return {(lo, hi): h for lo, hi, h in rows}

    def add_seal_hashes(self, node_id: int, first: int, hashes: Mapping[tuple[int, int], bytes]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO sync_seal_hash (node, first, lo, hi, hash) VALUES (?,?,?,?,?)",
            [(node_id, first, lo, hi, h) for (lo, hi), h in hashes.items()],
        )

    # --- small values -------------------------------------------------------------------
    def get_meta(self, key: str) -> int | str | None:
        row = self.conn.execute("SELECT value FROM sync_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: int | str) -> None:
        self.conn.execute(
            "INSERT INTO sync_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
