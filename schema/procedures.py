"""The procedure catalogue (thủ tục hành chính) and the four procedures of Can Tho's pilot.

The full catalogue (2,169 procedures in Can Tho) is reference data imported at the city and
distributed as ``procedure`` ops; this module describes the pilot procedures from the field
report so that a fresh node and the tests have real ones to work with.

The national codes, forms, times and fees below are written from the legal texts as we read
them; they must be checked against the national public service portal (dichvucong.gov.vn)
before a deployment, since they change whenever a ministry republishes a procedure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

COMMUNE_LEVEL, PROVINCE_LEVEL = "commune", "province"


@dataclass(frozen=True, slots=True)
class DocumentComponent:
    """One item of a procedure's required dossier (thành phần hồ sơ)."""

    name: str
    original: bool
    """An original (bản chính) is accepted."""
    copy: bool
    """A copy (bản sao) is accepted."""
    electronic: bool
    """An electronic document (bản điện tử, e.g. from VNeID) is accepted."""
    count: int = 1
    required: bool = True
    """False for items that are only needed in some cases (trường hợp …)."""
    form: str | None = None


@dataclass(frozen=True, slots=True)
class ProcedureRecord:
    code: str
    """National procedure code, e.g. ``1.004194``."""
    name: str
    sector: str
    handling_level: str
    processing_days: int
    """Legal processing time in working days (see :mod:`schema.calendar`)."""
    documents: tuple[DocumentComponent, ...]
    fee: int
    """Fee or charge in VND for a paper filing."""
    fee_online: int
    """Fee in VND when filed online (often reduced to encourage online filing)."""
    result: str
    legal_basis: str

    def as_payload(self) -> dict[str, Any]:
        """The payload of the ``procedure`` kind's ``upsert`` op for this procedure."""
        payload = asdict(self)
        del payload["code"]
        payload["documents"] = [asdict(doc) for doc in self.documents]
        payload["active"] = True
        return payload


SHORT_NAME_CHARS = 48
"""A procedure's short name in lists fits in about a third of a 1024-pixel-wide table."""


def short_name(name: str, limit: int = SHORT_NAME_CHARS) -> str:
    """The name a list shows: up to the first comma or parenthesis (the national names add their
    qualifications there), cut at a word with "…" if still longer than ``limit``."""
    head = name.split(", ", 1)[0].split(" (", 1)[0].strip() or name
    if len(head) <= limit:
        return head
    cut = head[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


RESIDENCE_REGISTRATION = ProcedureRecord(
    code="1.004194",
    name="Đăng ký thường trú",
    sector="Đăng ký, quản lý cư trú",
    handling_level=COMMUNE_LEVEL,  # commune police (Công an cấp xã)
    processing_days=7,  # Luật Cư trú 2020, Điều 22
    documents=(
        DocumentComponent(
            "Tờ khai thay đổi thông tin cư trú",
            original=True,
            copy=False,
            electronic=True,
            form="Mẫu CT01",
        ),
        DocumentComponent(
            "Giấy tờ, tài liệu chứng minh chỗ ở hợp pháp",
            original=False,
            copy=True,
            electronic=True,
        ),
        DocumentComponent(
            "Giấy tờ, tài liệu chứng minh quan hệ nhân thân với chủ hộ, thành viên hộ gia đình "
            "(khi đăng ký thường trú vào chỗ ở của người khác)",
            original=False,
            copy=True,
            electronic=True,
            required=False,
        ),
    ),
    fee=20_000,  # Thông tư 75/2022/TT-BTC
    fee_online=10_000,
    result="Cập nhật thông tin thường trú vào Cơ sở dữ liệu về cư trú và thông báo kết quả",
    legal_basis="Luật Cư trú 2020; Nghị định 154/2024/NĐ-CP; Thông tư 75/2022/TT-BTC",
)

LAND_CERTIFICATE_CORRECTION = ProcedureRecord(
    code="1.012794",
    name="Đính chính Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất đã cấp",
    sector="Đất đai",
    handling_level=COMMUNE_LEVEL,
    processing_days=10,
    documents=(
        DocumentComponent(
            "Đơn đề nghị đính chính Giấy chứng nhận đã cấp",
            original=True,
            copy=False,
            electronic=True,
        ),
        DocumentComponent(
            "Giấy chứng nhận đã cấp",
            original=True,
            copy=False,
            electronic=False,
        ),
    ),
    fee=0,  # no fee when the error is the issuing authority's
    fee_online=0,
    result="Giấy chứng nhận đã được đính chính hoặc Giấy chứng nhận mới",
    legal_basis="Luật Đất đai 2024, Điều 152; Nghị định 101/2024/NĐ-CP",
)

CONSTRUCTION_PLANNING_INFORMATION = ProcedureRecord(
    code="1.008432",
    name="Cung cấp thông tin về quy hoạch xây dựng",
    sector="Quy hoạch xây dựng, kiến trúc",
    # A district-level procedure before July 2025; the communes took it over with the merger.
    handling_level=COMMUNE_LEVEL,
    processing_days=15,
    documents=(
        DocumentComponent(
            "Phiếu đề nghị cung cấp thông tin về quy hoạch xây dựng",
            original=True,
            copy=False,
            electronic=True,
        ),
        DocumentComponent(
            "Sơ đồ vị trí khu vực đề nghị cung cấp thông tin",
            original=False,
            copy=True,
            electronic=True,
        ),
    ),
    fee=0,  # information is free; copies of drawings are charged at cost
    fee_online=0,
    result="Văn bản cung cấp thông tin về quy hoạch xây dựng",
    legal_basis="Luật Quy hoạch đô thị và nông thôn 2024; Nghị định 44/2015/NĐ-CP",
)

HOUSEHOLD_BUSINESS_REGISTRATION = ProcedureRecord(
    code="2.000720",
    name="Đăng ký thành lập hộ kinh doanh",
    sector="Thành lập và hoạt động của hộ kinh doanh",  # finance sector since 2025
    handling_level=COMMUNE_LEVEL,
    processing_days=3,  # Nghị định 01/2021/NĐ-CP, Điều 88
    documents=(
        DocumentComponent(
            "Giấy đề nghị đăng ký hộ kinh doanh",
            original=True,
            copy=False,
            electronic=True,
        ),
        DocumentComponent(
            "Bản sao biên bản họp thành viên hộ gia đình về việc thành lập hộ kinh doanh "
            "(khi các thành viên hộ gia đình cùng đăng ký)",
            original=False,
            copy=True,
            electronic=True,
            required=False,
        ),
        DocumentComponent(
            "Bản sao văn bản ủy quyền của thành viên hộ gia đình cho một thành viên làm chủ hộ "
            "kinh doanh (nếu có)",
            original=False,
            copy=True,
            electronic=True,
            required=False,
        ),
    ),
    # Set by the city People's Council; the online reduction is a common local incentive.
    fee=100_000,
    fee_online=50_000,
    result="Giấy chứng nhận đăng ký hộ kinh doanh",
    legal_basis="Nghị định 01/2021/NĐ-CP; Thông tư 02/2023/TT-BKHĐT",
)

PILOT_PROCEDURES: tuple[ProcedureRecord, ...] = (
    RESIDENCE_REGISTRATION,
    LAND_CERTIFICATE_CORRECTION,
    CONSTRUCTION_PLANNING_INFORMATION,
    HOUSEHOLD_BUSINESS_REGISTRATION,
)
