"""Generated demo data: Vietnamese names, citizen ids and dossiers. Never real people.

Deterministic for a seed, so benchmarks and demos are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

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
            "due_date": (day + timedelta(days=7)).isoformat(),
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
