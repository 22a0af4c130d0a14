"""Dossier status codes of the national public service portal, and the status machine.

The codes are the portal's own (1 newly registered … 10 result returned), so exports need no
translation table.

Who may move a dossier where (``TRANSITIONS``)::

    from                       to                          roles
    1 newly registered    ->   2 accepted                  clerk, leader, admin
    1 newly registered    ->   3 not accepted              clerk, leader, admin
    2 accepted            ->   4 processing                clerk, leader, admin
    4 processing          ->   5 supplement requested      clerk, leader, admin
    4 processing          ->   6 fees requested            clerk, leader, admin
    4 processing          ->   9 processed                 leader, admin
    5 supplement requested ->  4 processing                clerk, leader, admin
    6 fees requested      ->   4 processing                clerk, leader, admin
    2, 4, 5, 6            ->   8 processing stopped        leader, admin
    1, 2, 4, 5, 6         ->   7 withdrawn                 clerk, leader, admin
    9 processed           ->   10 result returned          clerk, leader, admin

Decisions behind the table:

- The clerk of the one-stop shop receives, routes and returns; signing off a result (4 -> 9) and
  stopping processing (-> 8) are decisions of the unit's leader.
- ``admin`` (city IT) has the leader's rights so that a dossier whose leader is absent can still
  move; every step records the role, so such a move stays visible.
- Withdrawal (7) is the citizen's request, recorded by a clerk, before a result exists. A
  processed dossier (9) cannot be withdrawn: its result exists and must be returned or kept, and
  the record that the unit met its deadline must not disappear.
- Supplement (5) and fees (6) return to processing (4); a dossier waiting on them may be stopped
  by a leader when the citizen never answers.
- Terminal statuses (3, 7, 8, 10) have no exits.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType

from schema import reasons

ROLES = ("clerk", "leader", "admin")


class Status(IntEnum):
    NEW = 1
    ACCEPTED = 2
    NOT_ACCEPTED = 3
    PROCESSING = 4
    SUPPLEMENT_REQUESTED = 5
    FEES_REQUESTED = 6
    WITHDRAWN = 7
    STOPPED = 8
    PROCESSED = 9
    RETURNED = 10

    @property
    def vi(self) -> str:
        return _VI[self]

    @property
    def en(self) -> str:
        return _EN[self]

    def describe(self) -> str:
        """``"4 (processing)"``: how reasons name a status."""
        return f"{int(self)} ({self.en})"


_VI = {
    Status.NEW: "Mới đăng ký",
    Status.ACCEPTED: "Được tiếp nhận",
    Status.NOT_ACCEPTED: "Không được tiếp nhận",
    Status.PROCESSING: "Đang xử lý",
    Status.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung",
    Status.FEES_REQUESTED: "Yêu cầu thực hiện nghĩa vụ tài chính",
    Status.WITHDRAWN: "Công dân yêu cầu rút hồ sơ",
    Status.STOPPED: "Dừng xử lý",
    Status.PROCESSED: "Đã xử lý xong",
    Status.RETURNED: "Đã trả kết quả",
}
_EN = {
    Status.NEW: "newly registered",
    Status.ACCEPTED: "accepted",
    Status.NOT_ACCEPTED: "not accepted",
    Status.PROCESSING: "processing",
    Status.SUPPLEMENT_REQUESTED: "supplement requested",
    Status.FEES_REQUESTED: "fees requested",
    Status.WITHDRAWN: "withdrawn",
    Status.STOPPED: "processing stopped",
    Status.PROCESSED: "processed",
    Status.RETURNED: "result returned",
}

# --- the named sets: the one definition of "open" --------------------------------------------
# Pages, the API, the lists, the home counts, the reports and the fold all read these; none
# writes its own list of codes.

TERMINAL = frozenset({Status.NOT_ACCEPTED, Status.WITHDRAWN, Status.STOPPED, Status.RETURNED})
"""Closed: no move leaves these. Only the portal code may still be set (schema.kinds)."""
CLOSED = TERMINAL
OPEN = frozenset(Status) - CLOSED
"""Some role may still move the dossier (9 'processed' waits for the result's return)."""
DEADLINE_RUNNING = OPEN - {Status.PROCESSED}
"""Before a result exists: the appointment date still binds the unit, so a dossier here can be
overdue, extended with an apology (form 04) or transferred. Once processed (9) the deadline was
met or missed for good."""

_ANYONE = frozenset(ROLES)
_LEADERS = frozenset({"leader", "admin"})


def _table() -> dict[tuple[Status, Status], frozenset[str]]:
    s = Status
    table = {
        (s.NEW, s.ACCEPTED): _ANYONE,
        (s.NEW, s.NOT_ACCEPTED): _ANYONE,
        (s.ACCEPTED, s.PROCESSING): _ANYONE,
        (s.PROCESSING, s.SUPPLEMENT_REQUESTED): _ANYONE,
        (s.PROCESSING, s.FEES_REQUESTED): _ANYONE,
        (s.PROCESSING, s.PROCESSED): _LEADERS,
        (s.SUPPLEMENT_REQUESTED, s.PROCESSING): _ANYONE,
        (s.FEES_REQUESTED, s.PROCESSING): _ANYONE,
        (s.PROCESSED, s.RETURNED): _ANYONE,
    }
    for source in (s.ACCEPTED, s.PROCESSING, s.SUPPLEMENT_REQUESTED, s.FEES_REQUESTED):
        table[(source, s.STOPPED)] = _LEADERS
    for source in (s.NEW, s.ACCEPTED, s.PROCESSING, s.SUPPLEMENT_REQUESTED, s.FEES_REQUESTED):
        table[(source, s.WITHDRAWN)] = _ANYONE
    return table


TRANSITIONS: Mapping[tuple[Status, Status], frozenset[str]] = MappingProxyType(_table())
"""(from, to) -> the roles allowed to make that move. Anything absent is refused."""


_BY_CODE = {int(status): status for status in Status}  # a dict lookup; Enum's call is slow


def as_status(value: object) -> Status | None:
    """The :class:`Status` for a portal code (int), or None if ``value`` is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return _BY_CODE.get(value)


def check_transition(current: object, target: object, role: object) -> str | None:
    """Why a dossier in ``current`` may not move to ``target`` by ``role``; None if it may."""
    source, goal = as_status(current), as_status(target)
    if source is None:
        return reasons.NOT_A_PORTAL_STATUS.format(current=repr(current))
    if goal is None:
        return reasons.NOT_A_STATUS.format(target=repr(target))
    if role not in ROLES:
        return reasons.UNKNOWN_ROLE.format(given=repr(role), roles=", ".join(ROLES))
    if source in TERMINAL:
        return reasons.CLOSED_FOR_GOOD.format(status=source.describe())
    if source == goal:
        return reasons.ALREADY_IN.format(status=source.describe())
    allowed = TRANSITIONS.get((source, goal))
    if allowed is None:
        return reasons.NO_SUCH_MOVE.format(source=source.describe(), goal=goal.describe())
    if role not in allowed:
        who = reasons.ROLES_OR.join(r for r in ROLES if r in allowed)
        return reasons.ROLE_MAY_NOT.format(role=role, source=source.describe(), goal=goal.describe(), who=who)
    return None


def next_statuses(current: Status, role: str) -> list[Status]:
    """The statuses ``role`` may move a dossier in ``current`` to, in code order (for buttons)."""
    return sorted(
        goal for (source, goal), roles in TRANSITIONS.items() if source == current and role in roles
    )
