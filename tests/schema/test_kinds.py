import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.kinds import ACCOUNT, DOSSIER, KINDS, PROCEDURE, UNIT
from schema.procedures import RESIDENCE_REGISTRATION
from schema.units import province_units
from sync.clock import Stamp
from sync.fold import apply, fold
from sync.ops import Op

T0 = 1_771_300_800_000  # 17 Feb 2026 04:00 UTC, in ms
SHA_A = "a" * 64
SHA_B = "b" * 64

CREATE = {
    "code": "31135-260217-0001",
    "procedure": "1.004194",
    "receiving_unit": "31135",
    "handling_unit": "31135",
    "applicant_name": "Nguyễn Văn An",
    "applicant_citizen_id": "092190012345",
    "received_at": T0,
    "due_date": "2026-03-02",
    "fee": 20000,
    "documents": [{"name": "Tờ khai CT01", "copy": False}],
    "channel": "direct",
    "digitised": True,
    "by": "clerk1",
    "role": "clerk",
}


def op(seq, action, payload, *, node="n1", at=0, counter=0, entity="d1", kind="dossier"):
    return Op(
        node=node,
        seq=seq,
        stamp=Stamp(T0 + at, counter).pack(),
        kind=kind,
        entity=entity,
        action=action,
        payload=payload,
    )


def move(seq, to, *, role="clerk", by="clerk1", at=None, node="n1", note=None):
    payload = {"to": to, "by": by, "role": role}
    if note is not None:
        payload["note"] = note
    return op(seq, "transition", payload, at=seq * 1000 if at is None else at, node=node)


def lifecycle():
    return [
        op(1, "create", CREATE),
        move(2, 2),
        move(3, 4),
        move(4, 9, role="leader", by="leader1"),
        move(5, 10),
    ]


def test_kinds_are_registered_by_name():
    assert [k.name for k in KINDS] == ["unit", "procedure", "account", "dossier"]
    assert all(k.project is not None and k.scope_of is not None for k in KINDS)


def test_a_valid_lifecycle_ends_with_the_result_returned():
    state, conflicts = fold(DOSSIER, lifecycle())
    assert conflicts == []
    assert state["status"] == 10
    steps = state["steps"]
    assert len(steps) == 5
    assert [(s["action"], s["from"], s["to"]) for s in steps] == [
        ("create", None, 1),
        ("transition", 1, 2),
        ("transition", 2, 4),
        ("transition", 4, 9),
        ("transition", 9, 10),
    ]
    assert [s["seq"] for s in steps] == [1, 2, 3, 4, 5]
    assert steps[3]["by"] == "leader1"
    assert steps[3]["role"] == "leader"
    assert steps[3]["at"] == T0 + 4000
    assert state["processed_at"] == T0 + 4000
    assert state["closed_at"] == T0 + 5000
    assert state["applicant_name"] == "Nguyễn Văn An"
    assert state["attachments"] == {}
    assert state["_stamp"] == Stamp(T0 + 5000, 0).pack()


def test_an_invalid_transition_is_a_conflict_and_changes_nothing():
    state, conflicts = fold(DOSSIER, [op(1, "create", CREATE), move(2, 10)])
    assert state["status"] == 1
    assert len(state["steps"]) == 1
    [conflict] = conflicts
    assert (conflict.entity, conflict.node, conflict.seq, conflict.action) == (
        "d1",
        "n1",
        2,
        "transition",
    )
    assert "cannot move to 10 (result returned)" in conflict.reason


def test_a_clerk_cannot_sign_off_a_result():
    ops = [op(1, "create", CREATE), move(2, 2), move(3, 4), move(4, 9)]
    state, conflicts = fold(DOSSIER, ops)
    assert state["status"] == 4
    assert "needs a leader or admin" in conflicts[0].reason


def test_ops_before_the_create_are_conflicts():
    state, conflicts = fold(DOSSIER, [move(1, 2, at=-5000), op(2, "create", CREATE)])
    assert state["status"] == 1
    assert conflicts[0].reason == "the dossier does not exist yet"


def test_a_second_create_is_a_conflict():
    _, conflicts = fold(DOSSIER, [op(1, "create", CREATE), op(1, "create", CREATE, node="n2")])
    assert [c.reason for c in conflicts] == ["the dossier already exists"]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({k: v for k, v in CREATE.items() if k != "applicant_name"}, "missing field(s): applicant_name"),
        ({**CREATE, "status": 4}, "unknown field(s): status"),
        ({**CREATE, "role": "mayor"}, "role must be one of"),
        ({**CREATE, "received_at": "today"}, "received_at must be a whole number"),
        ({**CREATE, "due_date": "02/03/2026"}, "due_date must be a date"),
        ({**CREATE, "channel": "fax"}, "channel must be one of: direct, online"),
        ({**CREATE, "digitised": 1}, "digitised must be true or false"),
    ],
)  # fmt: skip
def test_a_malformed_create_is_refused(payload, says):
    state, conflicts = fold(DOSSIER, [op(1, "create", payload)])
    assert state == {}
    assert says in conflicts[0].reason


def test_set_is_last_writer_wins_and_cannot_touch_status_or_code():
    ops = [
        op(1, "create", CREATE),
        op(2, "set", {"applicant_phone": "0909000111"}, at=10),
        op(3, "set", {"applicant_phone": "0909000222", "portal_code": "G22-1"}, at=20),
        op(4, "set", {"status": 10}, at=30),
        op(5, "set", {"code": "X"}, at=40),
    ]
    state, conflicts = fold(DOSSIER, ops)
    assert state["applicant_phone"] == "0909000222"
    assert state["portal_code"] == "G22-1"
    assert state["status"] == 1
    assert state["code"] == CREATE["code"]
    assert [c.reason for c in conflicts] == ["unknown field(s): status", "unknown field(s): code"]


@given(st.booleans(), st.booleans())
def test_concurrent_sets_the_higher_stamp_then_node_wins(same_wall, reverse):
    a = op(1, "set", {"applicant_name": "Trần Thị A"}, node="na", at=100)
    b = op(1, "set", {"applicant_name": "Lê Văn B"}, node="nb", at=100 if same_wall else 50)
    # Same stamp: the node id breaks the tie ("nb" > "na"); otherwise the later stamp wins.
    winner = "Lê Văn B" if same_wall else "Trần Thị A"
    ops = [op(1, "create", CREATE), a, b]
    if reverse:
        ops.reverse()
    state, conflicts = fold(DOSSIER, ops)
    assert conflicts == []
    assert state["applicant_name"] == winner


def test_a_closed_dossier_only_takes_a_late_portal_code():
    ops = [*lifecycle(), op(6, "set", {"fee": 0}, at=9000), op(7, "set", {"portal_code": "G22"}, at=9500)]
    state, conflicts = fold(DOSSIER, ops)
    assert state["fee"] == 20000
    assert state["portal_code"] == "G22"
    assert [c.seq for c in conflicts] == [6]
    assert "closed in status 10" in conflicts[0].reason


def test_transfer_moves_the_handling_unit_and_is_on_the_timeline():
    transfer = {"handling_unit": "92-SO-TP", "by": "clerk1", "role": "clerk", "note": "thẩm quyền Sở"}
    ops = [op(1, "create", CREATE), move(2, 2), op(3, "transfer", transfer, at=2500)]
    state, conflicts = fold(DOSSIER, ops)
    assert conflicts == []
    assert state["handling_unit"] == "92-SO-TP"
    assert state["receiving_unit"] == "31135"
    last = state["steps"][-1]
    assert (last["action"], last["from"], last["to"], last["handling_unit"], last["note"]) == (
        "transfer",
        2,
        2,
        "92-SO-TP",
        "thẩm quyền Sở",
    )
    assert set(DOSSIER.scope_of(state)) == {"31135", "92-SO-TP"}
    assert state["steps"][0]["handling_unit"] == "31135"


def test_transfer_is_refused_when_closed_or_pointless():
    transfer = {"handling_unit": "92-SO-TP", "by": "clerk1", "role": "clerk"}
    closed = [op(1, "create", CREATE), move(2, 3), op(3, "transfer", transfer, at=9000)]
    state, conflicts = fold(DOSSIER, closed)
    assert state["handling_unit"] == "31135"
    assert "closed in status 3 (not accepted)" in conflicts[0].reason
    same = [op(1, "create", CREATE), op(2, "transfer", {**transfer, "handling_unit": "31135"}, at=1)]
    _, conflicts = fold(DOSSIER, same)
    assert conflicts[0].reason == "the dossier is already handled by unit 31135"


def test_attach_is_idempotent_per_content():
    scan = {"sha256": SHA_A, "name": "to-khai.pdf", "mime": "application/pdf", "size": 1234, "by": "clerk1"}
    ops = [
        op(1, "create", CREATE),
        op(2, "attach", scan, at=10),
        op(3, "attach", {**scan, "name": "again.pdf"}, at=20),
        op(4, "attach", {**scan, "sha256": SHA_B, "name": "cccd.jpg", "mime": "image/jpeg"}, at=30),
        op(5, "attach", {**scan, "sha256": "not-a-digest"}, at=40),
    ]
    state, conflicts = fold(DOSSIER, ops)
    assert set(state["attachments"]) == {SHA_A, SHA_B}
    assert state["attachments"][SHA_A] == {
        "name": "to-khai.pdf",
        "mime": "application/pdf",
        "size": 1234,
        "by": "clerk1",
        "at": T0 + 10,
    }
    assert [c.seq for c in conflicts] == [5]


def _history():
    """Two nodes working one dossier, with edits, an attach, a transfer and one bad move."""
    scan = {"sha256": SHA_A, "name": "scan.pdf", "mime": "application/pdf", "size": 9, "by": "c2"}
    return [
        op(1, "create", CREATE),
        move(2, 2),
        op(1, "set", {"applicant_phone": "0911"}, node="n2", at=2500),
        op(2, "attach", scan, node="n2", at=2600),
        move(3, 4),
        op(3, "transfer", {"handling_unit": "31150", "by": "c2", "role": "clerk"}, node="n2", at=3500),
        move(4, 10),  # invalid: 4 -> 10
        op(4, "set", {"applicant_phone": "0922"}, node="n2", at=3500),  # same stamp as n2#3
        move(5, 9, role="leader"),
        op(5, "attach", {**scan, "name": "dup.pdf"}, node="n2", at=5500),
        move(6, 10),
    ]


@given(st.permutations(_history()))
def test_any_delivery_order_folds_to_the_same_state(ops):
    expected, expected_conflicts = fold(DOSSIER, _history())
    state, conflicts = fold(DOSSIER, ops)
    assert state == expected
    assert sorted(conflicts, key=lambda c: (c.node, c.seq)) == sorted(
        expected_conflicts, key=lambda c: (c.node, c.seq)
    )
    assert state["status"] == 10
    assert len(expected_conflicts) == 1


@given(st.integers(min_value=0, max_value=len(_history())))
def test_incremental_folding_through_json_equals_one_fold(split):
    # sync applies new ops to a stored (serialised) state: it must not matter where it stopped.
    ops = sorted(_history(), key=lambda o: o.key)
    whole, _ = fold(DOSSIER, ops)
    state = json.loads(json.dumps(apply(DOSSIER, {}, ops[:split], [])))
    apply(DOSSIER, state, ops[split:], [])
    assert state == whole


def test_account_create_and_set():
    create = {
        "username": "clerk1",
        "full_name": "Nguyễn Thị Lan",
        "unit": "31135",
        "role": "clerk",
        "password_hash": "scrypt$...",
    }
    ops = [
        op(1, "create", create, kind="account", entity="clerk1"),
        op(2, "set", {"role": "leader", "active": False}, at=10, kind="account", entity="clerk1"),
        op(3, "set", {"username": "boss"}, at=20, kind="account", entity="clerk1"),
    ]
    state, conflicts = fold(ACCOUNT, ops)
    assert (state["role"], state["active"], state["username"]) == ("leader", False, "clerk1")
    assert [c.reason for c in conflicts] == ["unknown field(s): username"]
    assert set(ACCOUNT.scope_of(state)) == {"31135"}


def test_an_account_id_is_its_username():
    create = {"username": "clerk1", "full_name": "A", "unit": "31135", "role": "clerk", "password_hash": "h"}
    state, conflicts = fold(ACCOUNT, [op(1, "create", create, kind="account", entity="uuid-1")])
    assert state == {}
    assert "must be its username" in conflicts[0].reason


def test_units_upsert_create_then_update():
    ninh_kieu = next(u for u in province_units(92) if u.code == "31135")
    ops = [
        op(1, "upsert", ninh_kieu.as_payload(), kind="unit", entity="31135"),
        op(2, "upsert", {"active": False}, at=10, kind="unit", entity="31135"),
    ]
    state, conflicts = fold(UNIT, ops)
    assert conflicts == []
    assert (state["name"], state["kind"], state["active"]) == ("Phường Ninh Kiều", "ward", False)
    assert list(UNIT.scope_of(state)) == ["*"]


def test_the_first_upsert_must_describe_the_whole_entity():
    state, conflicts = fold(UNIT, [op(1, "upsert", {"active": False}, kind="unit", entity="31135")])
    assert state == {}
    assert conflicts[0].reason == "missing field(s): name, kind, province_code"


def test_procedure_upsert():
    payload = RESIDENCE_REGISTRATION.as_payload()
    state, conflicts = fold(PROCEDURE, [op(1, "upsert", payload, kind="procedure", entity="1.004194")])
    assert conflicts == []
    assert state["processing_days"] == 7
    assert state["documents"][0]["form"] == "Mẫu CT01"
    assert list(PROCEDURE.scope_of(state)) == ["*"]
