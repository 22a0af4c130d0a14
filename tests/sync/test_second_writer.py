"""A second writer on a served node's file: a CLI beside the server (docs/decisions/0007).

The server's replica caches heads, node ids, keys, revocations and its clock. Another process's
replica on the same file (``motcua user add``, ``node add``, ``node revoke``, ``catalogue
import`` beside ``central serve``) commits behind its back; the server must see that commit
before its next write, merge or pull, and a pull's cursor must never pass an op it did not return.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toydoc import DOC

from sync import feed
from sync.db import BUSY_TIMEOUT_MS
from sync.errors import RevokedNode
from sync.identity import Identity
from sync.replica import Replica

SCOPED = replace(DOC, scope_of=lambda state: set(str(state.get("owner", "")).split(",")) - {""})
SCOPE = frozenset({"a", "*"})


class Hub:
    """The city's file opened twice with the city's identity: ``served`` as the server holds it,
    ``cli`` as a command run beside it holds it."""

    def __init__(self, directory: Path) -> None:
        self.identity = Identity.generate("92")
        self.served = Replica(directory / "hub.db", self.identity, [SCOPED], feed=True)
        self.cli = Replica(directory / "hub.db", self.identity, [SCOPED], feed=True)

    def close(self) -> None:
        self.cli.close()
        self.served.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path)
    yield h
    h.close()


def edge_of(directory: Path, unit: str, hub: Hub) -> Replica:
    edge = Replica(directory / f"{unit}.db", Identity.generate(unit), [SCOPED], partial=True)
    edge.trust(hub.identity.node, hub.identity.public_raw)
    return edge


def write(replica: Replica, entity: str, owner: str = "a") -> None:
    with replica.write() as w:
        w.append("doc", entity, "create", {"title": entity, "owner": owner})


def test_the_server_writes_after_a_cli_wrote_beside_it(hub: Hub) -> None:
    write(hub.served, "first")
    write(hub.cli, "from-the-cli")
    write(hub.served, "second")  # before: IntegrityError (node, seq) — the server's head was stale
    me = hub.identity.node
    assert [hub.served.op(me, seq).entity for seq in (1, 2, 3)] == ["first", "from-the-cli", "second"]
    assert hub.served.vector()[me] == 3
    assert hub.cli.vector()[me] == 3


def test_a_pull_delivers_what_a_cli_wrote_and_its_cursor_passes_nothing(hub: Hub, tmp_path: Path) -> None:
    edge = edge_of(tmp_path, "a", hub)
    write(hub.served, "before")
    batches, part = hub.served.pull(SCOPE, 0, exclude=edge.identity.node)
    for batch in batches:
        edge.merge(batch)
    write(hub.cli, "new-clerk")
    batches, part = hub.served.pull(SCOPE, part.cursor, exclude=edge.identity.node)
    for batch in batches:
        edge.merge(batch)
    assert edge.state("doc", "new-clerk") is not None
    assert part.cursor == hub.served.feed_head()
    edge.close()


def test_a_pull_holds_its_cursor_before_an_op_its_batches_do_not_carry(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an unsealed op can be left out of a pull's batches; the pull seals in its own
    transaction, so this needs the sealing to be skipped to happen at all."""
    edge = edge_of(tmp_path, "a", hub)
    write(hub.served, "sealed")
    hub.served.seal_pending()
    write(hub.served, "unsealed")
    write(hub.served, "after")
    monkeypatch.setattr(hub.served, "_seal", lambda max_ops: 0)
    batches, part = hub.served.pull(SCOPE, 0, exclude=edge.identity.node)
    for batch in batches:
        edge.merge(batch)
    assert (part.cursor, part.done) == (1, False)
    assert edge.state("doc", "sealed") is not None
    monkeypatch.undo()
    batches, part = hub.served.pull(SCOPE, part.cursor, exclude=edge.identity.node)
    for batch in batches:
        edge.merge(batch)
    assert (part.cursor, part.done) == (3, True)
    assert edge.state("doc", "unsealed") is not None
    assert edge.state("doc", "after") is not None
    edge.close()


def test_a_merge_accepts_a_node_a_cli_registered(hub: Hub, tmp_path: Path) -> None:
    box = Replica(tmp_path / "box.db", Identity.generate("a"), [SCOPED], partial=True)
    hub.served.vector()  # the server has read its nodes
    hub.cli.trust(box.identity.node, box.identity.public_raw)  # motcua node add
    write(box, "at-the-box")
    for batch in box.batches({}, nodes=[box.identity.node]):
        assert hub.served.merge(batch).applied == 1
    box.close()


def test_a_revocation_by_a_cli_holds_at_the_server(hub: Hub, tmp_path: Path) -> None:
    box = Replica(tmp_path / "box.db", Identity.generate("a"), [SCOPED], partial=True)
    hub.served.trust(box.identity.node, box.identity.public_raw)
    write(box, "kept")
    for batch in box.batches({}, nodes=[box.identity.node]):
        hub.served.merge(batch)
    hub.cli.revoke(box.identity.node)  # motcua node revoke
    write(box, "refused")
    (batch,) = box.batches({box.identity.node: 1}, nodes=[box.identity.node])
    with pytest.raises(RevokedNode):
        hub.served.merge(batch)
    assert hub.served.vector()[box.identity.node] == 1
    box.close()


def test_a_revocation_that_lands_between_verify_and_commit_still_holds(hub: Hub, tmp_path: Path) -> None:
    """The server checked the batch before the CLI's revocation committed: the database itself
    refuses the revoked node's ops past the revocation (no cache is trusted for it)."""
    box = Replica(tmp_path / "box.db", Identity.generate("a"), [SCOPED], partial=True)
    hub.served.trust(box.identity.node, box.identity.public_raw)
    write(box, "kept")
    write(box, "refused")
    (batch,) = box.batches({}, nodes=[box.identity.node])
    verify = hub.served.verify

    def verify_then_revoke(b: object) -> object:
        checked = verify(b)  # type: ignore[arg-type]
        hub.cli.revoke(box.identity.node, after_seq=1)
        return checked

    hub.served.verify = verify_then_revoke  # type: ignore[method-assign]
    with pytest.raises(RevokedNode):
        hub.served.merge(batch)
    assert hub.served.op(box.identity.node, 1) is None  # nothing of the refused batch
    box.close()


# --- the property: a pull's cursor never passes an op it did not return ---------------------

WHERE = ("before", "feed_pull", "feed_head_1", "feed_head_2")
"""Where a second writer tries to commit relative to one pull of the server: before it, or from
inside it: as the server starts reading the feed, or at its first or second look at the feed's
head (before the slice, and between the slice and the cursor it returns). From inside, it tries
at once and, if SQLite says the database is locked, commits right after the pull instead, as
another process waiting for the lock would."""

writes = st.tuples(
    st.sampled_from(["served", "cli", "box"]),  # who writes: the server, a CLI beside it, a box's push
    st.sampled_from(["a", "b", "*", "a,b"]),  # the doc's owner: in the pulling edge's scope or not
    st.sampled_from(WHERE),
    st.none() | st.integers(0, 30),  # a new doc, or (at the hub) a new owner for a doc it holds:
)  # a doc that enters the edge's scope so comes with its whole history
REAL_HEAD, REAL_PULL = feed.head, feed.pull
steps = st.lists(st.one_of(writes, st.integers(1, 4)), min_size=1, max_size=25)
"""A write, or a pull step of the edge with that ``max_ops``."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_a_pull_cursor_never_passes_an_undelivered_op(
    tmp_path_factory: pytest.TempPathFactory, steps: list[object]
) -> None:
    directory = tmp_path_factory.mktemp("pull")
    hub = Hub(directory)
    edge = edge_of(directory, "a", hub)
    box = Replica(directory / "box.db", Identity.generate("b"), [SCOPED], partial=True)
    hub.cli.trust(box.identity.node, box.identity.public_raw)
    edge.trust(box.identity.node, box.identity.public_raw)
    hooks: dict[str, list[Callable[[], None]]] = {}
    waiting: list[Callable[[], None]] = []
    pulling, heads_read = [False], [0]
    real_head, real_pull = REAL_HEAD, REAL_PULL

    def fire(where: str) -> None:
        for hook in hooks.pop(where, []):
            hub.cli.conn.execute("PRAGMA busy_timeout = 0")
            try:
                hook()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                waiting.append(hook)
            finally:
                hub.cli.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def head(conn: object) -> int:
        if pulling[0]:  # a write's own look at the feed's head is not a pull's
            heads_read[0] += 1
            fire(f"feed_head_{heads_read[0]}")
        return real_head(conn)  # type: ignore[arg-type]

    def pull(*args: object, **kwargs: object) -> feed.Slice:
        fire("feed_pull")
        return real_pull(*args, **kwargs)  # type: ignore[arg-type]

    feed.head, feed.pull = head, pull  # type: ignore[assignment]  # restored below, every example
    cursor, n = 0, 0
    landed: list[str] = []
    try:
        for step in steps:
            if isinstance(step, tuple):
                who, owner, where, target = step
                n += 1
                entity = f"doc{n}"
                if who == "box":
                    write(box, entity, owner)  # on the box; its push to the hub is what lands

                def land(
                    who: str = who, owner: str = owner, entity: str = entity, target: int | None = target
                ) -> None:
                    if who == "box":
                        me = box.identity.node
                        for batch in box.batches({me: hub.cli.vector()[me]}, nodes=[me]):
                            hub.cli.merge(batch)
                    elif target is not None and landed:
                        with (hub.served if who == "served" else hub.cli).write() as w:
                            w.append("doc", landed[target % len(landed)], "set", {"owner": owner})
                        return
                    else:
                        write(hub.served if who == "served" else hub.cli, entity, owner)
                    landed.append(entity)

                if where == "before" or who == "served":
                    land()  # the server's own writes wait for its lock: never inside its pull
                else:
                    hooks.setdefault(where, []).append(land)
                continue
            assert isinstance(step, int)
            heads_read[0], pulling[0] = 0, True
            try:
                batches, part = hub.served.pull(SCOPE, cursor, exclude=edge.identity.node, max_ops=step)
            finally:
                pulling[0] = False
            for hook in waiting:  # what waited for the lock commits now
                hook()
            waiting.clear()
            for where in list(hooks):  # and what the pull did not reach lands after it
                for hook in hooks.pop(where):
                    hook()
            for batch in batches:
                edge.merge(batch)
            cursor = part.cursor
            # Every op at a feed position up to the cursor, of an entity in the scope by then
            # (it may enter later: its history comes then), is now held by the edge.
            with hub.cli.reading() as conn:
                passed = conn.execute(
                    """SELECT n.node, f.seq FROM sync_feed AS f JOIN sync_node AS n ON n.id = f.node
                       JOIN sync_scope AS s ON s.kind = f.kind AND s.entity = f.entity
                       WHERE f.pos <= ? AND s.since_pos <= ? AND s.key IN ('a', '*')""",
                    (cursor, cursor),
                ).fetchall()
            missing = [(node, seq) for node, seq in passed if edge.op(node, seq) is None]
            assert not missing, f"cursor {cursor} passed ops the edge never received: {missing}"
    finally:
        feed.head, feed.pull = REAL_HEAD, REAL_PULL  # type: ignore[assignment]
        for r in (edge, box):
            r.close()
        hub.close()
