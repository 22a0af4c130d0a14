"""The box's sync state: one typed record over the same keys as before (they are on disk)."""

from __future__ import annotations

from edge.node import FORWARD_JUMP, Node
from edge.syncstate import SyncState


def test_a_new_box_has_the_defaults(node: Node) -> None:
    assert SyncState.load(node.replica) == SyncState()


def test_each_setter_writes_its_key_and_load_reads_it_back(node: Node) -> None:
    r = node.replica
    SyncState.set_feed_cursor(r, 42)
    SyncState.set_clock_offset(r, -1500)
    SyncState.set_clock_drift(r, 90_000)
    SyncState.set_blobs_up(r, ["b" * 64, "a" * 64, "b" * 64])
    SyncState.set_last_error(r, "No connection to the city server. (reset)")
    SyncState.set_certs_since(r, 1_700_000_000_000)
    SyncState.set_compared_at(r, 1_700_000_000_001)
    r.set_meta(FORWARD_JUMP, 4 * 86_400_000)
    assert SyncState.load(r) == SyncState(
        feed_cursor=42,
        clock_offset_ms=-1500,
        clock_drift_ms=90_000,
        blobs_up=("a" * 64, "b" * 64),
        last_error="No connection to the city server. (reset)",
        certs_since_ms=1_700_000_000_000,
        compared_at_ms=1_700_000_000_001,
        forward_jump_ms=4 * 86_400_000,
    )
    # The keys on disk are the ones boxes in the field already have.
    assert r.meta("sync.feed_cursor") == 42
    assert r.meta("sync.blobs_up") == '["' + "a" * 64 + '", "' + "b" * 64 + '"]'
    assert r.meta("sync.last_error") == "No connection to the city server. (reset)"
    SyncState.clear_forward_jump(r)
    SyncState.set_last_error(r, None)
    state = SyncState.load(r)
    assert (state.forward_jump_ms, state.last_error) == (0, None)
    assert r.meta("sync.last_error") == ""


def test_a_damaged_value_reads_as_the_default(node: Node) -> None:
    for key in ("sync.feed_cursor", "sync.clock_drift_ms", "sync.blobs_up", "sync.compared_at_ms"):
        node.replica.set_meta(key, "garbage")
    assert SyncState.load(node.replica) == SyncState()


def test_revocations_are_kept_per_node(node: Node) -> None:
    assert SyncState.revoked_after(node.replica, "31120-abcd") is None
    SyncState.set_revoked_after(node.replica, "31120-abcd", 7)
    assert SyncState.revoked_after(node.replica, "31120-abcd") == 7
    assert node.replica.meta("sync.revoked:31120-abcd") == 7
