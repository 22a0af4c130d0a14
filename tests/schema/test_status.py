import itertools

import pytest

from schema.status import (
    CLOSED,
    DEADLINE_RUNNING,
    OPEN,
    ROLES,
    TERMINAL,
    TRANSITIONS,
    Status,
    as_status,
    check_transition,
    next_statuses,
)


def test_codes_and_labels_follow_the_national_portal():
    assert [int(s) for s in Status] == list(range(1, 11))
    assert Status(1).vi == "Mới đăng ký"
    assert Status(4).vi == "Đang xử lý"
    assert Status(6).vi == "Yêu cầu thực hiện nghĩa vụ tài chính"
    assert Status(10).vi == "Đã trả kết quả"
    assert Status(7).en == "withdrawn"
    assert Status(9).en == "processed"
    assert all(s.vi and s.en for s in Status)


def test_terminal_statuses():
    assert {int(s) for s in TERMINAL} == {3, 7, 8, 10}


def test_one_definition_of_open_closed_and_running():
    assert CLOSED == TERMINAL
    assert set(Status) == OPEN | CLOSED
    assert not OPEN & CLOSED
    # Open: a move is left (for some role); closed: none is.
    assert {s for s in Status if any(next_statuses(s, role) for role in ROLES)} == OPEN
    # The deadline runs until the result exists: 9 (processed) is open but never overdue.
    assert {int(s) for s in DEADLINE_RUNNING} == {1, 2, 4, 5, 6}
    assert OPEN - {Status.PROCESSED} == DEADLINE_RUNNING


@pytest.mark.parametrize(("move", "roles"), sorted(TRANSITIONS.items()))
def test_every_move_in_the_table_is_allowed_for_its_roles(move, roles):
    source, target = move
    for role in roles:
        assert check_transition(source, target, role) is None


def test_the_table_is_the_whole_rule():
    for source, target, role in itertools.product(Status, Status, ROLES):
        allowed = role in TRANSITIONS.get((source, target), frozenset())
        assert (check_transition(source, target, role) is None) == allowed, (source, target, role)


@pytest.mark.parametrize(
    ("source", "target", "role"),
    [
        (1, 2, "clerk"),
        (1, 3, "clerk"),
        (2, 4, "clerk"),
        (4, 5, "clerk"),
        (4, 6, "clerk"),
        (5, 4, "clerk"),
        (6, 4, "clerk"),
        (9, 10, "clerk"),
        (4, 9, "leader"),
        (4, 8, "leader"),
        (5, 8, "leader"),
        (4, 9, "admin"),
        (1, 7, "clerk"),
        (6, 7, "clerk"),
    ],
)
def test_the_portal_workflow(source, target, role):
    assert check_transition(source, target, role) is None


@pytest.mark.parametrize(
    ("source", "target", "role", "says"),
    [
        (1, 10, "clerk", "status 1 (newly registered) cannot move to 10 (result returned)"),
        (1, 4, "leader", "cannot move to 4 (processing)"),
        (2, 3, "clerk", "cannot move to 3 (not accepted)"),
        (4, 9, "clerk", "a clerk may not move a dossier from 4 (processing) to 9 (processed)"),
        (4, 8, "clerk", "that needs a leader or admin"),
        (9, 7, "clerk", "cannot move to 7 (withdrawn)"),
        (9, 4, "leader", "cannot move"),
        (4, 4, "clerk", "already in status 4 (processing)"),
        (10, 9, "admin", "closed in status 10 (result returned)"),
        (2, 4, "mayor", "unknown role 'mayor'"),
        (2, 11, "clerk", "11 is not a dossier status"),
        (2, True, "clerk", "True is not a dossier status"),
        (None, 2, "clerk", "current status None is not a portal status"),
    ],
)
def test_invalid_moves_are_refused_with_a_reason(source, target, role, says):
    reason = check_transition(source, target, role)
    assert reason is not None
    assert says in reason


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_statuses_have_no_exits(terminal):
    assert not [move for move in TRANSITIONS if move[0] == terminal]
    for target, role in itertools.product(Status, ROLES):
        assert check_transition(terminal, target, role) is not None


def test_withdrawal_is_possible_from_every_open_status_before_a_result():
    for source in Status:
        allowed = check_transition(source, Status.WITHDRAWN, "clerk") is None
        assert allowed == (source in {1, 2, 4, 5, 6}), source


def test_next_statuses_lists_the_buttons_a_role_gets():
    assert next_statuses(Status.NEW, "clerk") == [2, 3, 7]
    assert next_statuses(Status.PROCESSING, "clerk") == [5, 6, 7]
    assert next_statuses(Status.PROCESSING, "leader") == [5, 6, 7, 8, 9]
    assert next_statuses(Status.RETURNED, "admin") == []


def test_as_status():
    assert as_status(4) is Status.PROCESSING
    assert as_status(0) is None
    assert as_status("4") is None
    assert as_status(False) is None
