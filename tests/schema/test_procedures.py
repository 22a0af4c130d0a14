import re

from schema.fields import PROCEDURE_CHECKS, PROCEDURE_REQUIRED, check_payload
from schema.procedures import (
    HOUSEHOLD_BUSINESS_REGISTRATION,
    PILOT_PROCEDURES,
    RESIDENCE_REGISTRATION,
    short_name,
)


def test_the_four_pilot_procedures():
    assert len(PILOT_PROCEDURES) == 4
    assert len({p.code for p in PILOT_PROCEDURES}) == 4
    assert all(re.fullmatch(r"[12]\.\d{6}", p.code) for p in PILOT_PROCEDURES)
    assert all(p.handling_level == "commune" for p in PILOT_PROCEDURES)
    assert all(p.processing_days > 0 and p.documents for p in PILOT_PROCEDURES)
    assert all(p.fee_online <= p.fee for p in PILOT_PROCEDURES)


def test_residence_registration():
    assert RESIDENCE_REGISTRATION.name == "Đăng ký thường trú"
    assert RESIDENCE_REGISTRATION.processing_days == 7
    declaration = RESIDENCE_REGISTRATION.documents[0]
    assert (declaration.form, declaration.original, declaration.count) == ("Mẫu CT01", True, 1)


def test_household_business_registration_takes_three_days():
    assert HOUSEHOLD_BUSINESS_REGISTRATION.processing_days == 3
    assert [d.required for d in HOUSEHOLD_BUSINESS_REGISTRATION.documents] == [True, False, False]


def test_payloads_are_valid_upserts_without_the_code():
    for procedure in PILOT_PROCEDURES:
        payload = procedure.as_payload()
        assert "code" not in payload
        assert check_payload(payload, PROCEDURE_CHECKS, PROCEDURE_REQUIRED) is None
        assert payload["documents"][0]["name"] == procedure.documents[0].name


def test_short_procedure_names():
    long = "Đính chính Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất đã cấp"
    assert short_name(long) == "Đính chính Giấy chứng nhận quyền sử dụng đất"
    assert short_name("Đăng ký thường trú") == "Đăng ký thường trú"
    cut = short_name("Cấp " + "giấy phép xây dựng mới đối với công trình " * 3)
    assert cut.endswith("…")
    assert len(cut) <= 48
