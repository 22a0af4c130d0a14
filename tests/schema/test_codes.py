import unicodedata
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.codes import (
    CCCD_PROVINCES,
    _fold_slowly,
    citizen_id_problem,
    fold_text,
    format_dossier_code,
    is_dossier_code,
    parse_citizen_id,
    parse_dossier_code,
)
from schema.errors import CitizenIdProblem, InvalidCitizenId, InvalidDossierCode

unit_codes = st.from_regex(r"[0-9A-Za-z]{1,6}(-[0-9A-Za-z]{1,4}){0,2}", fullmatch=True)
code_days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
sequences = st.integers(min_value=1, max_value=9999)


def test_format_dossier_code():
    assert format_dossier_code("31135", date(2026, 2, 17), 1) == "31135-260217-0001"
    assert format_dossier_code("92-SO-TP", date(2025, 7, 1), 42) == "92-SO-TP-250701-0042"


def test_parse_dossier_code_reads_from_the_right():
    code = parse_dossier_code("92-SO-TP-250701-0042")
    assert (code.unit, code.day, code.sequence) == ("92-SO-TP", date(2025, 7, 1), 42)
    assert str(code) == "92-SO-TP-250701-0042"


@given(unit_codes, code_days, sequences)
def test_dossier_code_round_trip(unit, day, sequence):
    text = format_dossier_code(unit, day, sequence)
    code = parse_dossier_code(text)
    assert (code.unit, code.day, code.sequence) == (unit, day, sequence)
    assert str(code) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not <unit>-<yymmdd>-<nnnn>"),
        ("31135-260217", "is not <unit>-<yymmdd>-<nnnn>"),
        ("-260217-0001", "is not a unit code"),
        ("31 135-260217-0001", "is not a unit code"),
        ("31135-2602-0001", "is not a yymmdd date"),
        ("31135-261317-0001", "is not a real date"),
        ("31135-250229-0001", "is not a real date"),
        ("31135-260217-0000", "is not a sequence"),
        ("31135-260217-12345", "is not a sequence"),
        ("31135-260217-00a1", "is not a sequence"),
    ],
)
def test_invalid_dossier_codes(text, says):
    with pytest.raises(InvalidDossierCode, match=says):
        parse_dossier_code(text)
    assert not is_dossier_code(text)


@pytest.mark.parametrize(
    ("unit", "day", "sequence"),
    [("31135", date(2026, 1, 1), 0), ("31135", date(2026, 1, 1), 10000), ("a b", date(2026, 1, 1), 1),
     ("31135", date(1999, 12, 31), 1)],
)  # fmt: skip
def test_format_refuses_what_cannot_be_parsed_back(unit, day, sequence):
    with pytest.raises(InvalidDossierCode):
        format_dossier_code(unit, day, sequence)


def test_cccd_province_codes_are_the_63_old_provinces():
    assert len(CCCD_PROVINCES) == 63
    assert {"001", "079", "092", "096"} <= CCCD_PROVINCES
    assert not {"000", "003", "097", "099"} & CCCD_PROVINCES


def test_parse_citizen_id():
    woman = parse_citizen_id("092190012345")
    assert (woman.province, woman.female, woman.birth_year, woman.serial) == (
        "092",
        True,
        1990,
        "012345",
    )
    man = parse_citizen_id(" 079201000123 ")
    assert (man.province, man.female, man.birth_year) == ("079", False, 2001)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", CitizenIdProblem.WRONG_LENGTH),
        ("09219001234", CitizenIdProblem.WRONG_LENGTH),
        ("0921900123456", CitizenIdProblem.WRONG_LENGTH),
        ("0921900123a5", CitizenIdProblem.NOT_DIGITS),
        ("092-19001234", CitizenIdProblem.NOT_DIGITS),
        ("０９２１９００１２３４５", CitizenIdProblem.NOT_DIGITS),  # full-width digits
        ("003190012345", CitizenIdProblem.UNKNOWN_PROVINCE),
        ("097190012345", CitizenIdProblem.UNKNOWN_PROVINCE),
        ("000190012345", CitizenIdProblem.UNKNOWN_PROVINCE),
    ],
)
def test_invalid_citizen_ids(value, problem):
    assert citizen_id_problem(value) is problem
    with pytest.raises(InvalidCitizenId) as caught:
        parse_citizen_id(value)
    assert caught.value.problem is problem
    assert caught.value.message == problem.value


def test_birth_year_in_the_future_needs_a_today():
    # century digit 2 + "50": born 2050
    assert citizen_id_problem("092250012345") is None
    assert citizen_id_problem("092250012345", today=date(2026, 2, 17)) is CitizenIdProblem.BORN_IN_FUTURE
    assert citizen_id_problem("092226012345", today=date(2026, 2, 17)) is None


@given(
    st.sampled_from(sorted(CCCD_PROVINCES)),
    st.integers(0, 9),
    st.integers(0, 99),
    st.integers(0, 999_999),
)
def test_every_well_formed_cccd_parses(province, century, year, serial):
    number = f"{province}{century}{year:02d}{serial:06d}"
    parsed = parse_citizen_id(number)
    assert parsed.number == number
    assert parsed.birth_year == 1900 + 100 * (century // 2) + year
    assert parsed.female == (century % 2 == 1)


def test_fold_text():
    assert fold_text("Nguyễn Thị Đặng") == "nguyen thi dang"
    assert fold_text("ĐOÀN VĂN ĐỨC") == "doan van duc"
    assert fold_text("Phường Ninh Kiều") == "phuong ninh kieu"
    assert fold_text("Hồ Chí Minh, Bà Rịa - Vũng Tàu") == "ho chi minh, ba ria - vung tau"


def test_fold_text_does_not_care_how_the_input_was_composed():
    name = "Nguyễn Thị Đặng"
    assert fold_text(unicodedata.normalize("NFD", name)) == fold_text(name)


vietnamese = st.text(
    alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyAĂÂĐÊÔƠƯàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọ"
    "ồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵÀÁẢÃẠỄỆỎỐỮỸ 0123456789-",
    max_size=40,
)


@given(vietnamese)
def test_fold_text_leaves_plain_lowercase_ascii(text):
    folded = fold_text(text)
    assert folded.isascii()
    assert folded == folded.lower()
    assert fold_text(folded) == folded
    assert len(folded) == len(text)


@given(st.text())
def test_the_fast_fold_agrees_with_the_unicode_definition(text):
    assert fold_text(text) == _fold_slowly(text)
