"""A dossier's folded state as the portal's records (pure: states in, dicts out).

What comes from where:

- ``MaHoSo``: the portal code a clerk or the portal set (``portal_code``), or else derived from
  the box's own code ``<unit>-YYMMDD-NNNN`` by putting the receiving unit's electronic
  identifier code (mã định danh điện tử, Circular 10/2016/TT-BTTTT) in front: the box already
  issues one counter per unit per day offline, so the portal code is as collision-free as the
  box's, and every existing dossier code keeps working (docs/decisions/0011).
- ``madonvi``: the receiving unit's electronic identifier code. A unit without one is a
  configuration error (:class:`MissingCode`), shown on the upstream page, never a crash.
- ``MaTTHC``/``TenTTHC``: the national procedure code and name; ``MaLinhVuc``/``TenLinhVuc``:
  the sector's code (imported beside the unit codes) and name.
- Dates: ``yyyyMMddHHmmss`` in Asia/Ho_Chi_Minh; an appointment date (a day) at 17:00, the end
  of office hours.
- ``TrangThaiHoSo``: the status code itself (schema/status.py uses the portal's codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from schema.status import Status

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DUE_TIME = "170000"

APPLICANT_TYPE = {"citizen": "1", "organisation": "2"}
CHANNEL = {"direct": "1", "online": "2", "post": "3"}
ROLE_TITLE = {"clerk": "Cán bộ một cửa", "leader": "Lãnh đạo", "admin": "Quản trị"}


class MissingCode(Exception):
    """Configuration: a unit or sector has no code for the portal. ``what`` is "unit" or
    "sector", ``key`` its code or name."""

    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        if what == "unit":
            text = f"unit {key} has no electronic identifier code: import it (upstream add --unit-code-file)"
        else:
            text = f"sector {key!r} has no portal code: import it (upstream add --sector-code-file)"
        super().__init__(text)


class Codes:
    """The codes the portal knows our units and sectors by."""

    def __init__(self, units: Mapping[str, str], sectors: Mapping[str, str]) -> None:
        self.units = dict(units)
        self.sectors = dict(sectors)

    def unit(self, code: str) -> str:
        found = self.units.get(code)
        if not found:
            raise MissingCode("unit", code)
        return found

    def sector(self, name: str) -> str:
        found = self.sectors.get(name)
        if not found:
            raise MissingCode("sector", name)
        return found


def stamp_text(ms: int | None) -> str:
    """``yyyyMMddHHmmss`` in Vietnam's time zone; "" for no time."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, TIMEZONE).strftime("%Y%m%d%H%M%S")


def day_text(iso_day: str | None) -> str:
    if not iso_day:
        return ""
    return date.fromisoformat(iso_day).strftime("%Y%m%d") + DUE_TIME


def portal_code(state: Mapping[str, Any], codes: Codes) -> str:
    if state.get("portal_code"):
        return str(state["portal_code"])
    unit, day, seq = str(state["code"]).rsplit("-", 2)
    return f"{codes.unit(unit)}-{day}-{seq}"


def unit_of(state: Mapping[str, Any], codes: Codes) -> str:
    """``madonvi``: the receiving unit's electronic identifier code."""
    return codes.unit(str(state["receiving_unit"]))


def dossier_record(
    state: Mapping[str, Any],
    procedure: Mapping[str, Any] | None,
    unit_names: Mapping[str, str],
    codes: Codes,
) -> dict[str, Any]:
    """``DongBoHoSoMC``'s record of a dossier's newest state."""
    procedure = procedure or {}
    status = int(state["status"])
    steps = state.get("steps") or []
    last_note = next((s.get("note") for s in reversed(steps) if s.get("note")), None)
    procedure_name = str(procedure.get("name") or state["procedure"])
    sector = str(procedure.get("sector") or "")
    fee = int(state.get("fee") or 0)
    return {
        "MaHoSo": portal_code(state, codes),
        "MaTTHC": str(state["procedure"]),
        "TenTTHC": procedure_name,
        "MaLinhVuc": codes.sector(sector),
        "TenLinhVuc": sector,
        "ChuHoSo": str(state["applicant_name"]),
        "LoaiDoiTuong": APPLICANT_TYPE.get(str(state.get("applicant_type")), "1"),
        "MaDoiTuong": str(state.get("applicant_citizen_id") or ""),
        "ThongTinKhac": str(state.get("applicant_address") or ""),
        "Email": str(state.get("applicant_email") or ""),
        "Fax": "",
        "SoDienThoai": str(state.get("applicant_phone") or ""),
        "TrichYeuHoSo": f"{procedure_name} — {state['applicant_name']}",
        "NgayTiepNhan": stamp_text(int(state["received_at"])),
        "NgayHenTra": day_text(state.get("due_date")),
        "TrangThaiHoSo": str(status),
        "NgayTra": stamp_text(state.get("closed_at")) if status == Status.RETURNED else "",
        "ThongTinTra": "",
        "HinhThuc": "0",
        "NgayKetThucXuLy": stamp_text(state.get("processed_at")),
        "DonViXuLy": unit_names.get(str(state["handling_unit"]), str(state["handling_unit"])),
        "GhiChu": str(last_note or ""),
        "KenhThucHien": CHANNEL.get(str(state.get("channel")), "1"),
        "TaiLieuNop": [
            {
                "TenTaiLieu": str(d.get("name", "")),
                "HinhThuc": str(d.get("form", "")),
                "SoLuong": int(d.get("count", 1)),
            }
            for d in state.get("documents") or []
        ],
        "DanhSachLePhi": (
            [
                {
                    "TenPhiLePhi": "Lệ phí",
                    "MaPhiLePhi": "LP",
                    "HinhThucThu": "1",
                    "Gia": fee,
                    "LoaiPhiLePhi": "1",
                }
            ]
            if fee
            else []
        ),
        "DanhSachTepDinhKemKhac": [
            {"TenTepDinhKem": str(a.get("name", "")), "MaTep": sha}
            for sha, a in sorted((state.get("attachments") or {}).items())
        ],
        "DanhSachHoSoBoSung": [
            {"NgayYeuCau": stamp_text(s["at"]), "NoiDung": str(s.get("note") or "")}
            for s in steps
            if s.get("to") == Status.SUPPLEMENT_REQUESTED and s.get("from") != s.get("to")
        ],
        "DanhSachGiayToKetQua": [],
    }


def progress_record(
    state: Mapping[str, Any], unit_names: Mapping[str, str], codes: Codes
) -> dict[str, Any] | None:
    """``CapNhatTienDoHoSoMC``'s record of the dossier's newest step after its creation."""
    steps = state.get("steps") or []
    if len(steps) < 2:
        return None
    step = steps[-1]
    return {
        "MaHoSo": portal_code(state, codes),
        "NguoiXuLy": str(step.get("by") or ""),
        "ChucDanh": ROLE_TITLE.get(str(step.get("role")), str(step.get("role") or "")),
        "ThoiDiemXuLy": stamp_text(int(step["at"])),
        "PhongBanXuLy": unit_names.get(str(step.get("handling_unit")), str(step.get("handling_unit") or "")),
        "NoiDungXuLy": str(step.get("note") or step.get("action") or ""),
        "TrangThai": str(int(step["to"])),
        "NgayBatDau": stamp_text(int(step["at"])),
        "NgayKetThucTheoQuyDinh": day_text(state.get("due_date")),
    }
