"""A hub serving partial replicas: scopes, the dense feed cursor, backfill, scope digests."""

from dataclasses import replace

import pytest
from toydoc import DOC

from sync.identity import Identity
from sync.replica import Replica

# A doc belongs to the units named in its "owner" field ("a" or "a,b"); "*" docs go everywhere.
SCOPED = replace(DOC, scope_of=lambda state: set(str(state.get("owner", "")).split(",")) - {""})


@pytest.fixture
def world(tmp_path):
    hub = Replica(tmp_path / "hub.db", Identity.generate("92"), [SCOPED], feed=True)
    a = Replica(tmp_path / "a.db", Identity.generate("a"), [SCOPED], partial=True)
    b = Replica(tmp_path / "b.db", Identity.generate("b"), [SCOPED], partial=True)
    everyone = (hub, a, b)
    for r in everyone:
        for other in everyone:
            if other is not r:
                r.trust(other.identity.node, other.identity.public_raw)
    yield hub, a, b
    for r in everyone:
        r.close()


class Link:
    """What an edge keeps of the hub: its cursor. push/pull as the sync client does."""

    def __init__(self, hub, edge, unit):
        self.hub, self.edge, self.unit, self.cursor = hub, edge, unit, 0

    def push(self):
        me = self.edge.identity.node
        batches = self.edge.batches({me: self.hub.vector()[me]}, nodes=[me], max_bytes=300)
        return sum(self.hub.merge(b).applied for b in batches)

    def pull(self, max_ops=3):
        applied, done = 0, False
        while not done:
            batches, part = self.hub.pull(
                {self.unit, "*"}, self.cursor, exclude=self.edge.identity.node, max_ops=max_ops
            )
            applied += sum(self.edge.merge(b).applied for b in batches)
            self.cursor, done = part.cursor, part.done
        return applied

    def agree(self):
        keys = {self.unit, "*"}
        return self.edge.scope_digest(keys) == self.hub.scope_digest(keys)


def test_each_partial_replica_gets_its_scope_and_nothing_else(world):
    hub, a, b = world
    with hub.write() as w:
        w.append("doc", "ref", "create", {"title": "catalogue", "owner": "*"})
        w.append("doc", "for-a", "create", {"title": "only a", "owner": "a"})
        w.append("doc", "for-b", "create", {"title": "only b", "owner": "b"})
    la, lb = Link(hub, a, "a"), Link(hub, b, "b")
    assert la.pull() == 2
    assert lb.pull() == 2
    assert a.state("doc", "for-b") is None
    assert b.state("doc", "for-a") is None
    assert a.state("doc", "ref")["title"] == "catalogue"
    assert la.agree()
    assert lb.agree()


def test_shared_entity_flows_both_ways_through_the_hub(world):
    hub, a, b = world
    la, lb = Link(hub, a, "a"), Link(hub, b, "b")
    with a.write() as w:
        w.append("doc", "shared", "create", {"title": "received at a", "owner": "a,b"})
    assert la.push() == 1
    assert lb.pull() == 1
    with b.write() as w:
        w.append("doc", "shared", "move", {"to": "open"})
    assert lb.push() == 1
    assert la.pull() == 1
    assert a.state("doc", "shared")["status"] == "open"
    assert la.agree()
    assert lb.agree()


def test_an_entity_entering_a_scope_arrives_with_its_whole_history(world):
    hub, a, b = world
    la, lb = Link(hub, a, "a"), Link(hub, b, "b")
    with a.write() as w:
        w.append("doc", "d", "create", {"title": "t", "owner": "a"})
        w.append("doc", "d", "move", {"to": "open"})
        w.append("doc", "d", "set", {"note": "n1"})
    la.push()
    lb.pull()
    assert b.state("doc", "d") is None
    with a.write() as w:
        w.append("doc", "d", "set", {"owner": "a,b"})  # routed to b
    la.push()
    assert lb.pull() == 4
    assert b.state("doc", "d") == a.state("doc", "d")
    assert lb.agree()


def test_the_cursor_moves_past_ops_out_of_scope_and_never_skips_one_in_scope(world):
    hub, _a, b = world
    lb = Link(hub, b, "b")
    with hub.write() as w:
        for i in range(10):
            w.append("doc", f"x{i}", "create", {"title": "x", "owner": "a" if i % 3 else "b"})
    assert lb.pull(max_ops=1) == 4
    assert lb.cursor == hub.feed_head()
    assert lb.pull() == 0


def test_pulling_again_from_an_old_cursor_is_harmless(world):
    hub, _a, b = world
    lb = Link(hub, b, "b")
    with hub.write() as w:
        w.append("doc", "y", "create", {"title": "y", "owner": "b"})
    lb.pull()
    before = b.state_digest()
    lb.cursor = 0
    assert lb.pull() == 0
    assert b.state_digest() == before


def test_a_partial_replica_never_stashes_gaps_of_foreign_nodes(world):
    hub, a, b = world
    la, lb = Link(hub, a, "a"), Link(hub, b, "b")
    with a.write() as w:
        w.append("doc", "p", "create", {"title": "private", "owner": "a"})
        w.append("doc", "q", "create", {"title": "shared", "owner": "a,b"})
    la.push()
    lb.pull()
    assert b.pending_count() == 0
    assert b.state("doc", "q")["title"] == "shared"
    assert b.vector()[a.identity.node] == 2  # highest seen, not "contiguous" on a partial replica


def test_an_entity_routed_through_a_scope_and_on_stays_in_that_scopes_digest(world):
    """Found by the topology machine (test_topology.py). The hub's scope keys grow with every
    state it folds, in arrival order: a doc routed to b and then away again before b pulled was
    in b's scope at the hub, so b received its whole history, but b folded that history at once
    and never saw a state owned by b. b's digest left the doc out, the hub's counted it: the
    digests differed for good, and the sync client re-pulled b's whole scope every round."""
    hub, a, b = world
    la, lb = Link(hub, a, "a"), Link(hub, b, "b")
    with a.write() as w:
        w.append("doc", "d", "create", {"title": "t", "owner": "a"})
    la.push()
    with a.write() as w:
        w.append("doc", "d", "set", {"owner": "b"})  # routed to b ...
    la.push()
    with hub.write() as w:
        w.append("doc", "d", "set", {"owner": "a"})  # ... and back before b pulled
    assert lb.pull() == 3
    assert b.state("doc", "d")["owner"] == "a"
    assert la.pull() == 1
    assert la.agree()
    assert lb.agree()
