"""A portal for tests and the demo: ``motcua upstream simulate --port P --kind dvcqg|lgsp``.

A real HTTP server (Starlette under uvicorn) speaking :mod:`central.upstream.dvcqg`'s or
:mod:`central.upstream.lgsp`'s shape. It validates every field of every record, keeps what it
received (``GET /_sim/state``: each dossier's newest record, how many creates and updates it
took, its processing steps; every request, accepted or not), and plays faults switched by
``POST /_sim/faults`` (JSON, each key optional)::

    {"expire_sessions": true,          every session issued so far is now expired
     "rate_limit": N, "retry_after": S the next N calls answer 429 with Retry-After: S
     "fail": N,                        the next N calls answer 500
     "slow_ms": MS,                    every answer waits MS first (0: off)
     "cut_after_commit": N,            the next N dossier calls are committed, then the
                                       connection is cut before the answer
     "refuse": ["MaHoSo", ...],        validation refusal of these dossiers (every call)
     "refuse_names": ["ChuHoSo", ...]} validation refusal of dossiers of these applicants

A create of a dossier it already holds is refused as a duplicate (DVCQG "04", LGSP 409), and
counted; ``arrived`` counts requests as they arrive (before a slow answer's wait), so a test
can see one in flight. ``POST /_sim/reset`` forgets everything. Nothing here is secured: loopback only.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from central.upstream import dvcqg, lgsp

_STAMP = re.compile(r"[0-9]{14}")
_PROCEDURE = re.compile(r"[0-9]+\.[0-9]{6}")
_UNIT = r"[0-9A-Za-z.]+(?:-[0-9A-Za-z.]+)*"

_TEXT_REQUIRED = (
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "ChuHoSo",
    "TrichYeuHoSo",
    "DonViXuLy",
)
_TEXT_OPTIONAL = (
    "MaDoiTuong",
    "ThongTinKhac",
    "Email",
    "Fax",
    "SoDienThoai",
    "ThongTinTra",
    "GhiChu",
)
_STAMPS_REQUIRED = ("NgayTiepNhan",)
_STAMPS_OPTIONAL = ("NgayHenTra", "NgayTra", "NgayKetThucXuLy")
_LISTS = (
    "TaiLieuNop",
    "DanhSachLePhi",
    "DanhSachTepDinhKemKhac",
    "DanhSachHoSoBoSung",
    "DanhSachGiayToKetQua",
)
_PROGRESS_TEXT = ("MaHoSo", "NguoiXuLy", "ChucDanh", "PhongBanXuLy", "NoiDungXuLy")
_PROGRESS_STAMPS = ("ThoiDiemXuLy", "NgayBatDau")


class Invalid(Exception):
    pass


def check_record(record: Any, unit: str) -> None:
    """Every field of a ``DongBoHoSoMC`` record; raises :class:`Invalid` naming the first wrong one."""
    if not isinstance(record, dict):
        raise Invalid("data[0] không phải một đối tượng / is not an object")
    expected = {*_TEXT_REQUIRED, *_TEXT_OPTIONAL, *_STAMPS_REQUIRED, *_STAMPS_OPTIONAL, *_LISTS}
    expected |= {"LoaiDoiTuong", "TrangThaiHoSo", "HinhThuc", "KenhThucHien"}
    unknown = set(record) - expected
    if unknown:
        raise Invalid(f"trường không biết / unknown fields: {', '.join(sorted(unknown))}")
    for name in _TEXT_REQUIRED:
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise Invalid(f"thiếu {name} / {name} is missing")
    for name in _TEXT_OPTIONAL:
        if not isinstance(record.get(name, ""), str):
            raise Invalid(f"{name} phải là chuỗi / must be a string")
    for name in _STAMPS_REQUIRED:
        if not _STAMP.fullmatch(str(record.get(name, ""))):
            raise Invalid(f"{name} không đúng yyyyMMddHHmmss / is not yyyyMMddHHmmss")
    for name in _STAMPS_OPTIONAL:
        value = record.get(name, "")
        if value and not _STAMP.fullmatch(str(value)):
            raise Invalid(f"{name} không đúng yyyyMMddHHmmss / is not yyyyMMddHHmmss")
    if not re.fullmatch(rf"{re.escape(unit)}-[0-9]{{6}}-[0-9]{{4}}", record["MaHoSo"]):
        raise Invalid(f"MaHoSo {record['MaHoSo']!r} không theo <madonvi>-YYMMDD-XXXX của {unit}")
    if not _PROCEDURE.fullmatch(record["MaTTHC"]):
        raise Invalid("MaTTHC không đúng mã thủ tục quốc gia / is not a national procedure code")
    if record.get("LoaiDoiTuong") not in ("1", "2"):
        raise Invalid("LoaiDoiTuong phải là 1 hoặc 2 / must be 1 or 2")
    if record.get("TrangThaiHoSo") not in {str(n) for n in range(1, 11)}:
        raise Invalid("TrangThaiHoSo phải là 1..10 / must be 1..10")
    if record.get("KenhThucHien") not in ("1", "2", "3"):
        raise Invalid("KenhThucHien phải là 1, 2 hoặc 3 / must be 1, 2 or 3")
    if record.get("HinhThuc") not in ("0", "1"):
        raise Invalid("HinhThuc phải là 0 hoặc 1 / must be 0 or 1")
    for name in _LISTS:
        value = record.get(name)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise Invalid(f"{name} phải là danh sách đối tượng / must be a list of objects")
    for fee in record["DanhSachLePhi"]:
        if not isinstance(fee.get("Gia"), int) or fee["Gia"] < 0 or not fee.get("TenPhiLePhi"):
            raise Invalid("DanhSachLePhi: Gia và TenPhiLePhi / fee amount and name")
    for doc in record["TaiLieuNop"]:
        if not isinstance(doc.get("TenTaiLieu"), str) or not doc["TenTaiLieu"]:
            raise Invalid("TaiLieuNop: thiếu TenTaiLieu / a document has no name")


def check_progress(step: Any) -> None:
    if not isinstance(step, dict):
        raise Invalid("data[0] không phải một đối tượng / is not an object")
    for name in _PROGRESS_TEXT:
        if not isinstance(step.get(name), str) or (name in ("MaHoSo", "NguoiXuLy") and not step[name]):
            raise Invalid(f"thiếu {name} / {name} is missing")
    for name in _PROGRESS_STAMPS:
        if not _STAMP.fullmatch(str(step.get(name, ""))):
            raise Invalid(f"{name} không đúng yyyyMMddHHmmss / is not yyyyMMddHHmmss")
    due = step.get("NgayKetThucTheoQuyDinh", "")
    if due and not _STAMP.fullmatch(str(due)):
        raise Invalid("NgayKetThucTheoQuyDinh không đúng yyyyMMddHHmmss")
    if step.get("TrangThai") not in {str(n) for n in range(1, 11)}:
        raise Invalid("TrangThai phải là 1..10 / must be 1..10")


@dataclass
class Held:
    """What the portal holds of one dossier."""

    unit: str
    record: dict[str, Any]
    creates: int = 1
    updates: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Faults:
    rate_limit: int = 0
    retry_after: int = 1
    fail: int = 0
    slow_ms: int = 0
    cut_after_commit: int = 0
    refuse: set[str] = field(default_factory=set)
    refuse_names: set[str] = field(default_factory=set)


class Portal:
    """The simulated portal's memory. Every handler holds the lock while it reads or writes."""

    def __init__(self, kind: str, username: str, password: str) -> None:
        self.kind = kind
        self.username = username
        self.password = password
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.held: dict[str, Held] = {}
        self.sessions: set[str] = set()
        self.faults = Faults()
        self.requests: list[dict[str, Any]] = []
        self.duplicates = 0
        self.cuts = 0
        self.arrived = 0

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dossiers": {
                code: {
                    "unit": h.unit,
                    "record": h.record,
                    "creates": h.creates,
                    "updates": h.updates,
                    "steps": h.steps,
                }
                for code, h in self.held.items()
            },
            "requests": self.requests,
            "duplicates": self.duplicates,
            "cuts": self.cuts,
            "arrived": self.arrived,
        }

    def set_faults(self, body: Mapping[str, Any]) -> None:
        f = self.faults
        if body.get("expire_sessions"):
            self.sessions.clear()
        for name in ("rate_limit", "retry_after", "fail", "slow_ms", "cut_after_commit"):
            if name in body:
                setattr(f, name, int(body[name]))
        if "refuse" in body:
            f.refuse = {str(code) for code in body["refuse"]}
        if "refuse_names" in body:
            f.refuse_names = {str(name) for name in body["refuse_names"]}

    # --- the calls, whatever the shape -------------------------------------------------------

    def sync(self, unit: str, body: Mapping[str, Any]) -> tuple[str, str]:
        """(outcome, message): "ok", "invalid", "exists"."""
        data = body.get("data")
        if not isinstance(data, list) or len(data) != 1:
            return "invalid", "data phải là danh sách một hồ sơ / data must hold one record"
        if body.get("isUpdating") not in ("True", "False"):
            return "invalid", "isUpdating phải là True hoặc False"
        record = data[0]
        try:
            check_record(record, unit)
        except Invalid as exc:
            return "invalid", str(exc)
        code = record["MaHoSo"]
        if code in self.faults.refuse or record["ChuHoSo"] in self.faults.refuse_names:
            return "invalid", f"Hồ sơ {code} bị từ chối: MaDoiTuong không khớp CSDL quốc gia về dân cư"
        held = self.held.get(code)
        if body["isUpdating"] == "False":
            if held is not None:
                self.duplicates += 1
                return "exists", f"Hồ sơ {code} đã tồn tại / already exists"
            self.held[code] = Held(unit, record)
        else:
            if held is None:
                self.held[code] = Held(unit, record, creates=0, updates=1)
            else:
                held.record = record
                held.updates += 1
        return "ok", ""

    def progress(self, unit: str, body: Mapping[str, Any]) -> tuple[str, str]:
        data = body.get("data")
        if not isinstance(data, list) or len(data) != 1:
            return "invalid", "data phải là danh sách một bước / data must hold one step"
        step = data[0]
        try:
            check_progress(step)
        except Invalid as exc:
            return "invalid", str(exc)
        held = self.held.get(step["MaHoSo"])
        if held is None:
            return "missing", f"Không tìm thấy hồ sơ {step['MaHoSo']}"
        if held.unit != unit:
            return "invalid", "madonvi không phải đơn vị của hồ sơ / not the dossier's unit"
        if step not in held.steps:
            held.steps.append(step)
        return "ok", ""

    def lookup(self, unit: str, body: Mapping[str, Any]) -> tuple[str, str, Any]:
        code = str(body.get("mahoso", ""))
        held = self.held.get(code)
        if held is None:
            return "missing", f"Không tìm thấy hồ sơ {code}", None
        return "ok", "", {"MaHoSo": code, "TrangThaiHoSo": held.record["TrangThaiHoSo"]}

    def before(self, dossier_call: bool) -> Response | None:
        """A fault's answer in place of the real one, if one is switched on."""
        f = self.faults
        if f.rate_limit > 0:
            f.rate_limit -= 1
            return JSONResponse(
                {"error_code": "429", "message": "Quá nhiều yêu cầu / too many requests"},
                status_code=429,
                headers={"Retry-After": str(f.retry_after)},
            )
        if f.fail > 0:
            f.fail -= 1
            return JSONResponse({"error_code": dvcqg.INTERNAL, "message": "Lỗi hệ thống"}, status_code=500)
        return None

    def cut_now(self) -> bool:
        if self.faults.cut_after_commit > 0:
            self.faults.cut_after_commit -= 1
            self.cuts += 1
            return True
        return False


class CutResponse(Response):
    """Headers promise a body that never comes: the client sees the connection cut after the
    portal committed (uvicorn closes the connection when the app raises mid-response)."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        await send({"type": "http.response.body", "body": b'{"error_code"', "more_body": True})
        raise ConnectionAbortedError("simulated cut after commit")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def create_simulator(kind: str, username: str = "motcua", password: str = "") -> Starlette:
    """``password``: the DVCQG login's, or for LGSP the access and secret keys' two lines ("":
    any credentials are accepted)."""
    if kind not in (dvcqg.KIND, lgsp.KIND):
        raise ValueError(f"unknown portal kind {kind!r}: dvcqg or lgsp")
    portal = Portal(kind, username, password)

    async def slow() -> None:
        with portal.lock:
            portal.arrived += 1
        if portal.faults.slow_ms:
            await asyncio.sleep(portal.faults.slow_ms / 1000)

    def log(service: str, body: Mapping[str, Any], outcome: str, message: str) -> None:
        code = ""
        data = body.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            code = str(data[0].get("MaHoSo", ""))
        portal.requests.append(
            {
                "service": service,
                "dossier": code or str(body.get("mahoso", "")),
                "outcome": outcome,
                "message": message,
            }
        )

    # --- DVCQG ------------------------------------------------------------------------------

    async def dvcqg_auth(request: Request) -> Response:
        await slow()
        body = await _body(request)
        with portal.lock:
            ok = bool(body.get("username")) and bool(body.get("password"))
            if portal.password:
                ok = body.get("username") == portal.username and body.get("password") == portal.password
            log("auth", {}, "ok" if ok else "denied", "")
            if not ok:
                return JSONResponse({"error_code": "1", "message": "Sai tên đăng nhập hoặc mật khẩu"})
            session = secrets.token_hex(16)
            portal.sessions.add(session)
        return JSONResponse({"error_code": dvcqg.AUTH_OK, "session": session})

    async def dvcqg_call(request: Request) -> Response:
        await slow()
        body = await _body(request)
        service = str(body.get("service", ""))
        unit = str(body.get("madonvi", ""))
        with portal.lock:
            fault = portal.before(True)
            if fault is not None:
                log(service, body, f"fault {fault.status_code}", "")
                return fault
            if body.get("session") not in portal.sessions:
                log(service, body, "expired", "")
                return JSONResponse({"error_code": dvcqg.SESSION_EXPIRED, "message": "Phiên đã hết hạn"})
            if not re.fullmatch(_UNIT, unit):
                log(service, body, "invalid", "madonvi")
                return JSONResponse({"error_code": dvcqg.INVALID, "message": "madonvi không hợp lệ"})
            if service == dvcqg.SYNC:
                outcome, message = portal.sync(unit, body)
            elif service == dvcqg.PROGRESS:
                outcome, message = portal.progress(unit, body)
            elif service == dvcqg.LOOKUP:
                outcome, message, found = portal.lookup(unit, body)
                log(service, body, outcome, message)
                if outcome == "ok":
                    return JSONResponse({"error_code": dvcqg.OK, "result": found})
                return JSONResponse({"error_code": dvcqg.NOT_FOUND, "message": message})
            else:
                outcome, message = "invalid", f"service {service!r} không hỗ trợ"
            log(service, body, outcome, message)
            cut = outcome == "ok" and portal.cut_now()
        if cut:
            return CutResponse()
        code = {"ok": dvcqg.OK, "exists": dvcqg.EXISTS, "missing": dvcqg.NOT_FOUND}.get(
            outcome, dvcqg.INVALID
        )
        return JSONResponse({"error_code": code, "message": message})

    # --- LGSP -------------------------------------------------------------------------------

    def lgsp_denied(request: Request) -> Response | None:
        name = request.headers.get("appname", "")
        access = request.headers.get("accesskey", "")
        secret = request.headers.get("secretkey", "")
        if not (name and access and secret):
            return JSONResponse({"error_code": "401", "message": "Thiếu khoá ứng dụng"}, status_code=401)
        if portal.password:
            keys = lgsp.split_keys(portal.password)
            if (name, access, secret) != (portal.username, *keys):
                return JSONResponse({"error_code": "403", "message": "Khoá không hợp lệ"}, status_code=403)
        return None

    def lgsp_route(service: str) -> Route:
        async def handle(request: Request) -> Response:
            await slow()
            body = await _body(request)
            unit = str(body.get("madonvi", ""))
            with portal.lock:
                denied = lgsp_denied(request)
                if denied is not None:
                    log(service, body, f"denied {denied.status_code}", "")
                    return denied
                fault = portal.before(True)
                if fault is not None:
                    log(service, body, f"fault {fault.status_code}", "")
                    return fault
                if not re.fullmatch(_UNIT, unit):
                    log(service, body, "invalid", "madonvi")
                    return JSONResponse(
                        {"error_code": "E02", "message": "madonvi không hợp lệ"}, status_code=400
                    )
                found: Any = None
                if service == lgsp.SYNC:
                    outcome, message = portal.sync(unit, body)
                elif service == lgsp.PROGRESS:
                    outcome, message = portal.progress(unit, body)
                else:
                    outcome, message, found = portal.lookup(unit, body)
                log(service, body, outcome, message)
                cut = outcome == "ok" and service != lgsp.LOOKUP and portal.cut_now()
            if cut:
                return CutResponse()
            status = {"ok": 200, "exists": 409, "missing": 404}.get(outcome, 400)
            answer: dict[str, Any] = {
                "error_code": "00" if status == 200 else f"E{status}",
                "message": message,
            }
            if found is not None:
                answer["result"] = found
            return JSONResponse(answer, status_code=status)

        return Route(f"/{service}", handle, methods=["POST"])

    # --- control ----------------------------------------------------------------------------

    async def faults(request: Request) -> Response:
        body = await _body(request)
        with portal.lock:
            portal.set_faults(body)
        return JSONResponse({"ok": True})

    async def state(request: Request) -> Response:
        with portal.lock:
            return JSONResponse(portal.state())

    async def reset(request: Request) -> Response:
        with portal.lock:
            portal.reset()
        return JSONResponse({"ok": True})

    routes = [
        Route("/_sim/faults", faults, methods=["POST"]),
        Route("/_sim/state", state, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
    if kind == dvcqg.KIND:
        routes += [Route("/auth", dvcqg_auth, methods=["POST"]), Route("/", dvcqg_call, methods=["POST"])]
    else:
        routes += [lgsp_route(service) for service in (lgsp.SYNC, lgsp.PROGRESS, lgsp.LOOKUP)]
    app = Starlette(routes=routes)
    app.state.portal = portal
    return app
