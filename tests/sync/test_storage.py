"""The Store contract (sync/storage.py), run against every implementation: SQLite today.

A PostgreSQL store (issue 12) joins the ``store`` fixture's params and must pass the same tests.
Each test opens a transaction first, as the replica always does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync import ops as opcodec
from sync.db import connect, install
from sync.fold import Conflict
from sync.ops import Op
from sync.replica.sqlite import SqliteStore
from sync.storage import EntityRow, SealRow, Store


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    conn = connect(tmp_path / "store.db")
    install(conn)
    s = SqliteStore(conn)
    s.begin()
    yield s
    s.rollback()
    conn.close()


def op(node: str, seq: int, entity: str = "d1") -> Op:
    return Op(node, seq, 1000 + seq, "doc", entity, "set", {"n": seq})


def test_nodes_keys_heads_and_revocation(store: Store) -> None:
    a = store.add_node("a")
    b = store.add_node("b")
    assert a != b
    store.set_key("a", b"k" * 32)
    store.set_head(a, 3)
    store.add_pending([(a, 5, b"x"), (a, 9, b"y")])
    store.set_revoked(a, 6)
    rows = {row.node: row for row in store.nodes()}
    assert rows["a"] == (a, "a", b"k" * 32, 3, 6)
    assert rows["b"] == (b, "b", None, 0, None)
    assert store.pending_range(a, 0, 100) == {5: b"x"}  # the op after the revocation is dropped


def test_the_op_log(store: Store) -> None:
    a = store.add_node("a")
    store.insert_ops([(a, seq, b"op%d" % seq) for seq in (1, 2, 3, 5)])
    assert store.op_body(a, 2) == b"op2"
    assert store.op_body(a, 4) is None
    assert store.op_range(a, 2, 5) == [(2, b"op2"), (3, b"op3"), (5, b"op5")]
    assert store.op_bodies(a, [1, 4, 5]) == {1: b"op1", 5: b"op5"}
    assert store.ref_bodies([(a, 3), (a, 1)]) == [b"op3", b"op1"]
    assert store.op_count() == 4


def test_ops_waiting_behind_a_gap(store: Store) -> None:
    a = store.add_node("a")
    store.add_pending([(a, 4, b"four"), (a, 6, b"six")])
    store.add_pending([(a, 4, b"other")])  # one already waiting is left as it is
    assert store.pending_after(a, 3) == [(4, b"four"), (6, b"six")]
    assert store.pending_range(a, 5, 6) == {6: b"six"}
    store.drop_pending_through(a, 4)
    assert store.pending_after(a, 0) == [(6, b"six")]
    assert store.pending_count() == 1


def test_entities_and_conflicts(store: Store) -> None:
    row = EntityRow({"title": "t", "n": [1, 2]}, (1001, "a"), b"\x01\x00\x00\x00\x01\x00\x00\x00")
    store.put_entities({("doc", "d1"): row})
    assert store.entity_rows("doc", ["d1", "d2"]) == {"d1": row}
    assert store.state("doc", "d1") == row.state
    assert store.state("doc", "d2") is None
    assert store.states("doc") == {("doc", "d1"): row.state}
    assert store.entity_refs("doc", "d1") == row.refs
    assert store.all_refs() == [("doc", "d1", row.refs)]
    newer = EntityRow({"title": "u"}, (1002, "b"), row.refs * 2)
    store.put_entities({("doc", "d1"): newer})
    assert store.entity_rows("doc", ["d1"])["d1"] == newer
    conflict = Conflict("doc", "d1", "b", 2, "move", "cannot move")
    store.add_conflicts([conflict, conflict])
    assert store.conflicts(None, None) == [conflict]
    assert store.conflicts("doc", "d2") == []
    store.clear_conflicts("doc", "d1")
    assert store.conflicts("doc", None) == []


def test_seals_and_their_known_hashes(store: Store) -> None:
    a = store.add_node("a")
    assert store.last_sealed(a) == 0
    first = SealRow(1, 4, b"r" * 32, b"s" * 64)
    store.add_seal(a, first)
    store.add_seal(a, SealRow(5, 8, b"q" * 32, b"t" * 64))
    store.add_seal(a, first, known=True)  # a received seal already held
    assert store.last_sealed(a) == 8
    assert store.seals(a, 3, 5) == [first, SealRow(5, 8, b"q" * 32, b"t" * 64)]
    assert store.seals(a, 9, 12) == []
    store.add_seal_hashes(a, 1, {(0, 1): b"h" * 32, (2, 2): b"i" * 32})
    assert store.seal_hashes(a, 1) == {(0, 1): b"h" * 32, (2, 2): b"i" * 32}
    assert store.seal_hashes(a, 5) == {}


def test_the_feed_and_scopes(store: Store) -> None:
    a = store.add_node("a")
    hub = store.add_node("92")
    ops = [op("a", 1, "d1"), op("a", 2, "d2"), op("92", 1, "d1")]
    store.insert_ops([({"a": a, "92": hub}[o.node], o.seq, opcodec.encode(o)) for o in ops])
    assert store.feed_head() == 0
    store.add_scope_keys([("doc", "d1", "unit-a")])
    store.feed_append({"a": a, "92": hub}, ops)
    assert store.feed_head() == 3
    assert store.feed_position(hub, 1) == 3
    part = store.feed_slice(["unit-a"], 0, a, 100)
    assert (part.ops, part.cursor, part.done) == ({"92": [1]}, 3, True)  # a's own ops are not sent back
    assert store.feed_slice(["unit-a"], 3, None, 100).ops == {}


def test_small_values(store: Store) -> None:
    assert store.get_meta("hlc") is None
    store.set_meta("hlc", 5)
    store.set_meta("hlc", 7)
    store.set_meta("app:name", "x")
    assert (store.get_meta("hlc"), store.get_meta("app:name")) == (7, "x")


def test_a_rollback_keeps_nothing_and_version_moves_on_anothers_commit(store: Store, tmp_path) -> None:
    store.add_node("a")
    store.rollback()
    assert store.nodes() == []
    before = store.version()
    other = connect(tmp_path / "store.db")
    other.execute("INSERT INTO sync_meta (key, value) VALUES ('x', 1)")
    other.commit()
    other.close()
    assert store.version() != before
    store.begin()
