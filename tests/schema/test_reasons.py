"""Every reason the fold writes comes from a template the catalogs translate, and reads back."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from schema import fields, reasons
from schema.kinds import ACCOUNT, DOSSIER
from schema.status import ROLES, Status, check_transition
from sync.clock import Stamp
from sync.fold import fold
from sync.ops import Op

T0 = 1_771_300_800_000
CREATE = {
    "code": "31135-260217-0001",
    "procedure": "1.004194",
    "receiving_unit": "31135",
    "handling_unit": "31135",
    "applicant_name": "Nguyễn Văn An",
    "received_at": T0,
    "due_date": "2026-03-02",
    "by": "clerk1",
    "role": "clerk",
}


def op(seq, action, payload, *, at=0, entity="d1", kind="dossier"):
    stamp = Stamp(T0 + at, 0).pack()
    return Op(node="n1", seq=seq, stamp=stamp, kind=kind, entity=entity, action=action, payload=payload)


def assert_explained(reason: str) -> None:
    found = reasons.explain(reason)
    assert found is not None, f"no template wrote {reason!r}"
    template, params = found
    assert template.format(**params) == reason
    for name in reasons.STATUS_PARAMS & params.keys():
        assert reasons.status_code(params[name]) in {int(s) for s in Status}
    if template == reasons.BAD_FIELD:
        assert reasons.explain_problem(params["problem"]) is not None


def test_the_closed_dossier_reason_of_the_issue_reads_back():
    reason = check_transition(7, 2, "clerk")
    assert reason == "the dossier is closed in status 7 (withdrawn): it cannot move any more"
    assert reasons.explain(reason) == (reasons.CLOSED_FOR_GOOD, {"status": "7 (withdrawn)"})


def test_every_refused_move_of_the_status_machine_is_explained():
    odd = [0, 11, "2", None, True]
    for current, target, role in itertools.product([*Status, *odd], [*Status, *odd], [*ROLES, "boss"]):
        reason = check_transition(current, target, role)
        if reason is not None:
            assert_explained(reason)


def test_a_role_that_may_not_move_names_who_may():
    template, params = reasons.explain(check_transition(4, 9, "clerk")) or ("", {})
    assert template == reasons.ROLE_MAY_NOT
    assert params["who"].split(reasons.ROLES_OR) == ["leader", "admin"]


BAD_VALUES = [None, "", " ", "x", 0, -1, 1.5, True, [], [1], {}, "2026-02-30", "A" * 64, "A" * 400]


def test_every_field_check_is_explained():
    for checks in (
        fields.DOSSIER_CREATE_CHECKS,
        fields.TRANSITION_CHECKS,
        fields.TRANSFER_CHECKS,
        fields.EXTEND_CHECKS,
        fields.ATTACH_CHECKS,
        fields.UNIT_CHECKS,
        fields.PROCEDURE_CHECKS,
        fields.ACCOUNT_CHECKS,
    ):
        for name, value in itertools.product(checks, BAD_VALUES):
            reason = fields.check_payload({name: value}, checks)
            if reason is not None:
                assert_explained(reason)
        assert_explained(fields.check_payload({"nope": 1}, checks) or "")
        assert_explained(fields.check_payload({}, checks, list(checks)) or "")


WHO = {"by": st.sampled_from(["clerk1", "clerk1", ""]), "role": st.sampled_from([*ROLES, "boss"])}
NOTE = {"note": st.sampled_from([None, "", "Sai thẩm quyền"])}
PAYLOADS = {
    "create": st.just(CREATE),
    "set": st.fixed_dictionaries(
        {}, optional={"fee": st.sampled_from([0, -5]), "portal_code": st.just("G22"), "colour": st.just(1)}
    ),
    "transition": st.fixed_dictionaries({"to": st.integers(0, 11), **WHO}, optional=NOTE),
    "transfer": st.fixed_dictionaries({"handling_unit": st.sampled_from(["31135", "31120"]), **WHO}),
    "extend": st.fixed_dictionaries(
        {"due_date": st.sampled_from(["2026-03-01", "2026-04-01", "2026-13-01"]), **WHO}, optional=NOTE
    ),
    "attach": st.fixed_dictionaries(
        {
            "sha256": st.sampled_from(["a" * 64, "nope"]),
            "name": st.just("scan.pdf"),
            "mime": st.just("application/pdf"),
            "size": st.just(10),
            "by": st.just("clerk1"),
        }
    ),
    "dance": st.just({}),
}
steps = st.sampled_from(sorted(PAYLOADS)).flatmap(lambda a: st.tuples(st.just(a), PAYLOADS[a]))


@given(st.lists(steps, max_size=12))
def test_every_conflict_of_a_random_dossier_history_is_explained(history):
    ops = [op(seq, action, payload, at=seq * 1000) for seq, (action, payload) in enumerate(history, start=1)]
    _, conflicts = fold(DOSSIER, ops)
    for conflict in conflicts:
        assert_explained(conflict.reason)


def test_every_account_refusal_is_explained():
    account = {
        "username": "an",
        "full_name": "Nguyễn Văn An",
        "unit": "31135",
        "role": "clerk",
        "password_hash": "x",
    }
    history = [
        op(1, "set", {"active": False}, kind="account", entity="an"),
        op(2, "create", {**account, "username": "binh"}, kind="account", entity="an", at=1),
        op(3, "create", account, kind="account", entity="an", at=2),
        op(4, "create", account, kind="account", entity="an", at=3),
    ]
    _, conflicts = fold(ACCOUNT, history)
    assert len(conflicts) == 3
    for conflict in conflicts:
        assert_explained(conflict.reason)


def test_a_reason_no_template_wrote_is_not_explained():
    assert reasons.explain("the moon is in the wrong phase") is None
    assert reasons.explain("applicant_name must be blue") is None
