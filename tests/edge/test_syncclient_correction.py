"""The sync client's side of a correction that the city already knows of (decision 0008).

A box gives up bodies in its hello before re-stamping them (sync/correction.py). If it forgets
that it did — restored from a backup taken just before — it pushes the old bodies again and the
city refuses them as superseded; the client keeps that, and its next round gives them up again
and re-stamps them, so the box does not stay refused for good.
"""

from __future__ import annotations

import pytest
from edgekit import UNIT, receive_sample
from synckit import FakeHub

from edge.node import Node
from edge.settings import load
from edge.syncclient import sync_once
from sync import correction
from sync import ops as opcodec
from sync.merkle import leaf_hash


@pytest.fixture
def hub(tmp_path):
    h = FakeHub(tmp_path / "city")
    yield h
    h.close()


@pytest.fixture
def edge(tmp_path, hub):
    node = hub.make_edge(tmp_path / "edge", UNIT)
    yield node
    node.close()


def round_(node: Node, hub: FakeHub):
    return sync_once(node, hub.peer(node), load(node.data_dir, digest_interval_s=0))


def test_bodies_given_up_in_a_forgotten_hello_are_given_up_again_and_corrected(hub, edge):
    assert round_(edge, hub).outcome == "ok"
    receive_sample(edge)
    me = edge.identity.node
    seq = edge.replica.vector()[me]
    old = edge.replica.op(me, seq)
    assert old is not None
    # The hello that gave this body up reached the city; the restored box does not remember it.
    hub.replica.give_up(me, [(seq, leaf_hash(opcodec.encode(old)))], hub.now())

    refused = round_(edge, hub)
    assert refused.outcome != "ok"
    assert "superseded" in (refused.detail or "")
    assert hub.replica.vector()[me] == seq - 1
    assert correction.pending_from(edge.replica) == seq

    result = round_(edge, hub)
    assert result.outcome == "ok", result.summary()
    new = edge.replica.op(me, seq)
    assert new is not None
    assert new != old
    assert (new.kind, new.entity, new.action, new.payload) == (old.kind, old.entity, old.action, old.payload)
    assert hub.replica.op(me, seq) == new
    assert hub.scope_digest(edge.config.unit) == edge.replica.scope_digest({edge.config.unit, "*"})
