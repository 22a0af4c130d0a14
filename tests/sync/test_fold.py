"""The fold: an entity's state depends on its set of ops, never on their arrival order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from toydoc import DOC, FIELDS, STATUSES, model_fold

from sync.clock import Stamp
from sync.fold import Conflict, Kind, Rejected, fold, lww, state_machine
from sync.ops import Op

NODES = ("a-01", "b-02", "c-03")


@st.composite
def doc_histories(draw):
    """Ops of one doc from several nodes, with stamps colliding across nodes and conflicting
    moves. Like a real HLC, each node's stamps increase with its seq."""
    n = draw(st.integers(min_value=1, max_value=12))
    seqs = dict.fromkeys(NODES, 0)
    last = dict.fromkeys(NODES, -1)
    ops = []
    for _ in range(n):
        node = draw(st.sampled_from(NODES))
        seqs[node] += 1
        stamp = max(last[node] + 1, Stamp(draw(st.integers(0, 5)), draw(st.integers(0, 2))).pack())
        last[node] = stamp
        action = draw(st.sampled_from(["create", "set", "move"]))
        if action == "move":
            payload = {"to": draw(st.sampled_from(STATUSES))}
        else:
            payload = draw(st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 3), max_size=2))
        ops.append(Op(node, seqs[node], stamp, "doc", "d1", action, payload))
    return ops


@given(doc_histories(), st.data())
def test_fold_is_invariant_under_permutation(ops: list[Op], data) -> None:
    state, conflicts = fold(DOC, ops)
    shuffled = data.draw(st.permutations(ops))
    assert fold(DOC, shuffled) == (state, conflicts)


@given(doc_histories())
def test_fold_matches_the_hand_written_rules(ops: list[Op]) -> None:
    state, conflicts = fold(DOC, ops)
    want_state, want_conflicts = model_fold(ops)
    assert state == want_state
    assert [(c.node, c.seq) for c in conflicts] == want_conflicts
    # nothing is dropped: every op either shaped the state or is reported
    assert len(conflicts) <= len(ops)


def test_lww_tie_on_stamp_is_broken_by_node_id() -> None:
    stamp = Stamp(10, 0).pack()
    create = Op("a-01", 1, Stamp(1, 0).pack(), "doc", "d1", "create", {"title": "x"})
    low = Op("b-02", 1, stamp, "doc", "d1", "set", {"title": "from b"})
    high = Op("c-03", 1, stamp, "doc", "d1", "set", {"title": "from c"})
    for order in ([create, low, high], [high, low, create], [low, create, high]):
        state, conflicts = fold(DOC, order)
        assert state["title"] == "from c"
        assert conflicts == []


def test_later_stamp_wins_over_larger_node_id() -> None:
    create = Op("a-01", 1, Stamp(1, 0).pack(), "doc", "d1", "create", {"owner": "x"})
    old = Op("z-99", 1, Stamp(5, 3).pack(), "doc", "d1", "set", {"owner": "old"})
    new = Op("b-02", 1, Stamp(5, 4).pack(), "doc", "d1", "set", {"owner": "new"})
    assert fold(DOC, [new, old, create])[0]["owner"] == "new"


def test_invalid_transition_is_kept_as_a_conflict() -> None:
    ops = [
        Op("a-01", 1, Stamp(1, 0).pack(), "doc", "d1", "create", {"title": "t"}),
        Op("a-01", 2, Stamp(2, 0).pack(), "doc", "d1", "move", {"to": "open"}),
        Op("b-02", 1, Stamp(3, 0).pack(), "doc", "d1", "move", {"to": "closed"}),
        # concurrently, c moved the same doc to review: invalid after "closed"
        Op("c-03", 1, Stamp(4, 0).pack(), "doc", "d1", "move", {"to": "review"}),
    ]
    state, conflicts = fold(DOC, ops)
    assert state["status"] == "closed"
    assert conflicts == [Conflict("doc", "d1", "c-03", 1, "move", "cannot move from closed to review")]


def test_ops_before_create_and_unknown_actions_are_conflicts() -> None:
    ops = [
        Op("a-01", 1, Stamp(1, 0).pack(), "doc", "d1", "set", {"title": "early"}),
        Op("a-01", 2, Stamp(2, 0).pack(), "doc", "d1", "create", {"title": "t"}),
        Op("a-01", 3, Stamp(3, 0).pack(), "doc", "d1", "archive", {}),
        Op("a-01", 4, Stamp(4, 0).pack(), "doc", "d1", "set", {"colour": "red"}),
        Op("b-02", 1, Stamp(5, 0).pack(), "doc", "d1", "create", {"title": "again"}),
    ]
    state, conflicts = fold(DOC, ops)
    assert state == {"_created": True, "title": "t"}
    assert [(c.seq, c.node, c.reason) for c in conflicts] == [
        (1, "a-01", "entity does not exist yet"),
        (3, "a-01", "unknown action"),
        (4, "a-01", "unknown field(s): colour"),
        (1, "b-02", "entity already exists"),
    ]


def test_state_machine_also_sets_listed_fields_only_on_success() -> None:
    def check(current, target, op):
        return None if target == "done" else "no"

    kind = Kind(
        "task",
        {"create": lww(["x"], create=True), "finish": state_machine("st", check, also_set=["by"])},
    )
    ops = [
        Op("a-01", 1, 1, "task", "t", "create", {}),
        Op("a-01", 2, 2, "task", "t", "finish", {"to": "nope", "by": "eve"}),
        Op("a-01", 3, 3, "task", "t", "finish", {"to": "done", "by": "bob", "junk": 1}),
    ]
    state, conflicts = fold(kind, ops)
    assert state == {"_created": True, "st": "done", "by": "bob"}
    assert [c.seq for c in conflicts] == [2]


def test_rejected_carries_its_reason() -> None:
    assert Rejected("why").reason == "why"
