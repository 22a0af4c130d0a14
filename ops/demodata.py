"""Generated demo data: Vietnamese names, citizen ids and dossiers. Never real people.

Deterministic for a seed, so benchmarks and demos are reproducible. Dates follow the rules of
real receipts: received on working days in office hours, due after the procedure's time limit in
working days (:func:`schema.calendar.add_working_days`), most processed before their due date.
The demo replays such weeks through the real service layer (:func:`counter_weeks` gives the
plan, ``ops.demo`` performs it with the box's clock set to each moment).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schema.calendar import add_working_days, is_working_day
from schema.procedures import PILOT_PROCEDURES

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
LIMITS = {p.code: p.processing_days for p in PILOT_PROCEDURES}
"""Each pilot procedure's legal time limit, in working days."""
LATE_SHARE = 0.06
"""About this share of dossiers is processed after its due date (the rest before or on it)."""
OFFICE = ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 0)))
"""Office hours of a one-stop shop: morning and afternoon."""
FAMILY = [
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý", "Trương", "Đinh", "Lâm", "Châu",
]  # fmt: skip
MIDDLE_M = ["Văn", "Hữu", "Minh", "Đức", "Quốc", "Thanh", "Công", "Hoàng", "Gia", "Tấn"]
MIDDLE_F = ["Thị", "Ngọc", "Thanh", "Thu", "Kim", "Mỹ", "Bích", "Hồng", "Diệu", "Phương"]
GIVEN_M = [
    "An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hùng", "Khánh", "Long", "Minh", "Nam",
    "Phong", "Phúc", "Quân", "Sơn", "Tâm", "Thắng", "Trung", "Tuấn", "Vinh", "Lộc", "Toàn",
]  # fmt: skip
GIVEN_F = [
    "Anh", "Châu", "Giang", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Mai", "Nga", "Ngọc",
    "Nhung", "Phương", "Thảo", "Trang", "Vân", "Yến", "Thủy", "Duyên", "Trinh", "Xuân",
]  # fmt: skip
STREETS = [
    "Nguyễn Trãi", "Trần Hưng Đạo", "Mậu Thân", "30 Tháng 4", "Hòa Bình", "Lý Tự Trọng",
    "Cách Mạng Tháng 8", "Nguyễn Văn Cừ", "Trần Văn Khéo", "Võ Văn Kiệt",
]  # fmt: skip


@dataclass(frozen=True)
class Person:
    name: str
    female: bool
    dob: date
    citizen_id: str
    phone: str
    address: str


def person(rnd: random.Random, province_code: str = "092") -> Person:
    female = rnd.random() < 0.5
    middle = rnd.choice(MIDDLE_F if female else MIDDLE_M)
    given = rnd.choice(GIVEN_F if female else GIVEN_M)
    dob = date(1950, 1, 1) + timedelta(days=rnd.randrange(365 * 56))
    century = 0 if dob.year < 2000 else 2
    gender_digit = century + (1 if female else 0)
    citizen_id = f"{province_code}{gender_digit}{dob.year % 100:02d}{rnd.randrange(10**6):06d}"
    phone = f"0{rnd.choice('35789')}{rnd.randrange(10**8):08d}"
    address = f"{rnd.randrange(1, 400)} {rnd.choice(STREETS)}"
    return Person(f"{rnd.choice(FAMILY)} {middle} {given}", female, dob, citizen_id, phone, address)


def dossier_ops(
    rnd: random.Random, unit: str, procedure: str, day: date, number: int, received_ms: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(action, payload) of one dossier's typical life: 10 ops, create to result returned."""
    p = person(rnd)
    code = f"{unit}-{day:%y%m%d}-{number:04d}"
    clerk = {"by": "canbo01", "role": "clerk"}
    yield (
        "create",
        {
            "code": code,
            "procedure": procedure,
            "receiving_unit": unit,
            "handling_unit": unit,
            "applicant_name": p.name,
            "applicant_citizen_id": p.citizen_id,
            "applicant_dob": p.dob.isoformat(),
            "received_at": received_ms,
            "due_date": add_working_days(day, LIMITS.get(procedure, 7)).isoformat(),
            "documents": [{"name": "Tờ khai", "form": "original", "count": 1}],
            **clerk,
        },
    )
    yield "set", {"applicant_phone": p.phone}
    yield "set", {"applicant_address": p.address, "applicant_address_unit": unit}
    yield "transition", {"to": 2, **clerk}
    yield "set", {"digitised": True}
    yield "transition", {"to": 4, **clerk}
    yield "set", {"fee": rnd.choice([0, 15000, 50000, 100000])}
    yield "transition", {"to": 9, "by": "lanhdao01", "role": "leader"}
    yield "set", {"portal_code": f"H{rnd.randrange(10**9):09d}"}
    yield "transition", {"to": 10, **clerk, "note": "Đã trả kết quả"}


# --- weeks at the counter -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One thing a clerk or leader does at a moment: receive a dossier or take an action on it."""

    at: datetime
    dossier: int
    """The dossier's number in the plan (its receipt is the step with action "receive")."""
    action: str
    procedure: str = ""
    routed: bool = False


def office_moment(rnd: random.Random, day: date) -> datetime:
    """A moment of office hours on ``day``, in Vietnam's time."""
    start, end = OFFICE[rnd.randrange(2)]
    first = start.hour * 60 + start.minute
    minutes = first + rnd.randrange(end.hour * 60 + end.minute - first)
    return datetime.combine(day, time(minutes // 60, minutes % 60), VIETNAM)


def working_days_before(today: date, count: int) -> list[date]:
    """The ``count`` working days before ``today`` (not counting it), oldest first."""
    days: list[date] = []
    day = today
    while len(days) < count:
        day -= timedelta(days=1)
        if is_working_day(day):
            days.append(day)
    return days[::-1]


def counter_weeks(
    rnd: random.Random, now: datetime, dossiers: int, routed_every: int = 10, weeks: int = 4
) -> list[Step]:
    """The plan of ``dossiers`` receipts over the last ``weeks`` of working days before ``now``,
    and what happened to each until ``now``, in time order. A dossier is accepted within the hour,
    started the next working day, processed before its due date (``LATE_SHARE`` of them one to
    three working days after it), and its result returned a day or two later; whatever falls
    after ``now`` has not happened yet. Every ``routed_every``-th dossier is received for another
    unit (non-territorial); the receiving unit only accepts those, and only the last days' ones
    are planned (the other unit's box handles them)."""
    today = now.astimezone(VIETNAM).date()
    days = working_days_before(today, weeks * 5)
    steps: list[Step] = []
    for number in range(dossiers):
        routed = routed_every > 0 and number % routed_every == 0
        day = rnd.choice(days[-3:] if routed else days)
        procedure = rnd.choice(sorted(LIMITS))
        received = office_moment(rnd, day)
        steps.append(Step(received, number, "receive", procedure, routed))
        steps.append(Step(received + timedelta(minutes=rnd.randrange(5, 60)), number, "accept"))
        if routed:
            continue
        limit = LIMITS[procedure]
        due = add_working_days(day, limit)
        started = add_working_days(day, 1)
        if rnd.random() < LATE_SHARE:
            done = add_working_days(due, rnd.randint(1, 3))
        else:
            done = add_working_days(day, rnd.randint(max(1, limit // 2), limit))
        returned = add_working_days(done, rnd.randint(0, 2))
        steps.append(Step(office_moment(rnd, started), number, "start"))
        steps.append(Step(office_moment(rnd, done), number, "processed"))
        steps.append(Step(office_moment(rnd, returned) + timedelta(hours=1), number, "return_result"))
    # Each dossier's steps stay in their written order (moments of one day are drawn apart).
    ordered: list[Step] = []
    last: dict[int, datetime] = {}
    for step in steps:
        at = step.at
        if step.dossier in last and at <= last[step.dossier]:
            at = last[step.dossier] + timedelta(minutes=rnd.randrange(5, 90))
        last[step.dossier] = at
        ordered.append(Step(at, step.dossier, step.action, step.procedure, step.routed))
    return sorted((s for s in ordered if s.at <= now), key=lambda s: (s.at, s.dossier))
