"""Administrative units (đơn vị): the post-2025 provinces and communes, plus city departments.

Provinces, wards, communes and special zones come from ``vietnam-provinces`` with their real
codes (Can Tho is province ``"92"``; its ward Ninh Kiều is ``"31135"``). Departments (Sở) and the
city's Public Administration Service Centre have no national numeric code in that data set, so
they get codes in a namespace of our own, ``<province>-SO-<abbreviation>`` and
``<province>-TTPVHCC``: the letters can never collide with the numeric official codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vietnam_provinces import Province, ProvinceCode, VietNamDivisionType, Ward, WardCode

# Unit kinds, as stored in units.kind.
PROVINCE, COMMUNE, WARD, SPECIAL_ZONE = "province", "commune", "ward", "special_zone"
DEPARTMENT, CENTRE = "department", "centre"
KINDS = (PROVINCE, COMMUNE, WARD, SPECIAL_ZONE, DEPARTMENT, CENTRE)

_KIND_OF_DIVISION = {
    VietNamDivisionType.TINH: PROVINCE,
    VietNamDivisionType.THANH_PHO_TRUNG_UONG: PROVINCE,
    VietNamDivisionType.XA: COMMUNE,
    VietNamDivisionType.PHUONG: WARD,
    VietNamDivisionType.DAC_KHU: SPECIAL_ZONE,
}


@dataclass(frozen=True, slots=True)
class UnitRecord:
    code: str
    name: str
    division_type: str
    """Vietnamese division name as the data set spells it: "xã", "phường", "sở" …"""
    kind: str
    province_code: str
    parent_code: str | None

    def as_payload(self) -> dict[str, Any]:
        """The payload of the ``unit`` kind's ``upsert`` op that describes this unit."""
        return {
            "name": self.name,
            "division_type": self.division_type,
            "kind": self.kind,
            "province_code": self.province_code,
            "parent_code": self.parent_code,
            "active": True,
        }


# Can Tho city's departments as named after the 2025 reorganisation. Codes are ours (see above);
# the list is the subset the pilot procedures route to, not all 14 departments.
_CITY_BODIES: dict[str, list[tuple[str, str, str, str]]] = {
    "92": [
        ("92-SO-TP", "Sở Tư pháp thành phố Cần Thơ", "sở", DEPARTMENT),
        ("92-SO-XD", "Sở Xây dựng thành phố Cần Thơ", "sở", DEPARTMENT),
        ("92-SO-NNMT", "Sở Nông nghiệp và Môi trường thành phố Cần Thơ", "sở", DEPARTMENT),
        ("92-SO-TC", "Sở Tài chính thành phố Cần Thơ", "sở", DEPARTMENT),
        ("92-CA", "Công an thành phố Cần Thơ", "công an", DEPARTMENT),
        (
            "92-TTPVHCC",
            "Trung tâm Phục vụ hành chính công thành phố Cần Thơ",
            "trung tâm",
            CENTRE,
        ),
    ],
}


def province_record(province_code: int | str) -> UnitRecord:
    province = Province.from_code(ProvinceCode(int(province_code)))
    code = f"{int(province.code):02d}"
    return UnitRecord(
        code=code,
        name=province.name,
        division_type=province.division_type.value,
        kind=_KIND_OF_DIVISION[province.division_type],
        province_code=code,
        parent_code=None,
    )


def province_units(province_code: int | str) -> list[UnitRecord]:
    """The province itself, its commune-level units (code order), then its departments."""
    province = province_record(province_code)
    wards = sorted(Ward.iter_by_province(ProvinceCode(int(province.code))), key=lambda w: int(w.code))
    units = [province]
    units.extend(
        UnitRecord(
            code=f"{int(ward.code):05d}",
            name=" ".join(ward.name.split()),  # the data set writes "Xã  Phú Hữu"
            division_type=ward.division_type.value,
            kind=_KIND_OF_DIVISION[ward.division_type],
            province_code=province.code,
            parent_code=province.code,
        )
        for ward in wards
    )
    units.extend(
        UnitRecord(code, name, division, kind, province.code, province.code)
        for code, name, division, kind in _CITY_BODIES.get(province.code, [])
    )
    return units


def all_provinces() -> list[UnitRecord]:
    """The 34 post-2025 provinces and centrally-run cities."""
    return [province_record(int(p.code)) for p in Province.iter_all()]


def find_unit(code: str) -> UnitRecord | None:
    """The unit with this code (a province, a commune-level unit or a city body), or None."""
    code = code.strip()
    if code.isdigit() and len(code) <= 2:
        try:
            return province_record(int(code))
        except ValueError:
            return None
    if code.isdigit():
        try:
            ward = Ward.from_code(WardCode(int(code)))
        except ValueError:
            return None
        return next((u for u in province_units(int(ward.province_code)) if u.code == code), None)
    province = code.split("-", 1)[0]
    if province.isdigit():
        return next((u for u in province_units(province) if u.code == code), None)
    return None
