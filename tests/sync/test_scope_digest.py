"""The scope digest is part of the protocol: a box and the city compare it, whatever version each
runs, so reading the ops faster (range scans, tests below) must not change a single bit of it."""

from __future__ import annotations

import hashlib
import sqlite3
import struct

from hypothesis import given
from hypothesis import strategies as st

from sync import feed


def reference_digest(
    names: dict[int, str], bodies: dict[tuple[int, int], bytes], refs: set[tuple[int, int]]
) -> bytes:
    """The definition, written plainly: SHA-256 over (node name, seq, SHA-256 of the op's bytes,
    empty when the op is not held) in (name, seq) order."""
    h = hashlib.sha256()
    for name, node_id, seq in sorted((names[n], n, s) for n, s in refs):
        h.update(b"%s\x00%d\x00" % (name.encode(), seq))
        h.update(hashlib.sha256(bodies.get((node_id, seq), b"")).digest())
    return h.digest()


def database(names, bodies, entities) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        """CREATE TABLE sync_node (id INTEGER PRIMARY KEY, node TEXT NOT NULL UNIQUE);
        CREATE TABLE sync_op (node INTEGER, seq INTEGER, body BLOB, PRIMARY KEY (node, seq)) WITHOUT ROWID;
        CREATE TABLE sync_entity (kind TEXT, entity TEXT, refs BLOB, PRIMARY KEY (kind, entity));
        CREATE TABLE sync_scope (kind TEXT, entity TEXT, key TEXT, since_pos INTEGER,
                                 PRIMARY KEY (kind, entity, key));"""
    )
    conn.executemany("INSERT INTO sync_node VALUES (?,?)", names.items())
    conn.executemany("INSERT INTO sync_op VALUES (?,?,?)", [(n, s, b) for (n, s), b in bodies.items()])
    for index, (key, refs) in enumerate(entities):
        packed = b"".join(struct.pack("<II", n, s) for n, s in sorted(refs))
        conn.execute("INSERT INTO sync_entity VALUES ('dossier', ?, ?)", (str(index), packed))
        conn.execute("INSERT INTO sync_scope VALUES ('dossier', ?, ?, 0)", (str(index), key))
    return conn


NAMES = {1: "92-city", 2: "31135-b", 3: "31120-a", 4: "31135-a"}
refs_strategy = st.sets(st.tuples(st.sampled_from(sorted(NAMES)), st.integers(1, 400)), max_size=120)


@given(
    entities=st.lists(st.tuples(st.sampled_from(["31135", "31120", "*"]), refs_strategy), max_size=6),
    dense=st.lists(st.tuples(st.sampled_from(sorted(NAMES)), st.integers(1, 60), st.integers(0, 300))),
    missing=st.sets(st.tuples(st.sampled_from(sorted(NAMES)), st.integers(1, 400)), max_size=20),
    keys=st.sets(st.sampled_from(["31135", "31120", "*"]), min_size=1),
)
def test_the_digest_is_the_plain_definition_for_sparse_dense_and_missing_ops(entities, dense, missing, keys):
    # Dense runs (a node's own log: range scans) next to scattered picks (point reads).
    entities = entities + [("31135", {(n, first + i) for i in range(count)}) for n, count, first in dense]
    every = {ref for _, refs in entities for ref in refs}
    bodies = {ref: b"op %d/%d" % ref * (ref[1] % 5 + 1) for ref in every - missing}
    conn = database(NAMES, bodies, entities)
    in_scope = {ref for key, refs in entities if key in keys for ref in refs}
    assert feed.scope_digest(conn, keys) == reference_digest(NAMES, bodies, in_scope)
