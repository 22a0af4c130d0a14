"""Codes a clerk types or prints: dossier codes, citizen ids (CCCD), and search folding.

A dossier code is ``<receiving unit code>-<yymmdd>-<4-digit daily sequence>``, e.g.
``31135-260217-0001``; unit codes may themselves contain hyphens (``92-SO-TP``), so a code is
parsed from the right.

A CCCD (căn cước công dân) is 12 digits: a 3-digit province code of the place of birth
registration, a gender/century digit, the last two digits of the year of birth, then a 6-digit
serial (Circular 07/2016/TT-BCA, later 59/2021/TT-BCA).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from schema.errors import CitizenIdProblem, InvalidCitizenId, InvalidDossierCode

MAX_DAILY_SEQUENCE = 9999
_UNIT_CODE = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*")
_DAY = re.compile(r"[0-9]{6}")
_SEQ = re.compile(r"[0-9]{4}")


@dataclass(frozen=True, slots=True)
class DossierCode:
    unit: str
    day: date
    sequence: int

    def __str__(self) -> str:
        return format_dossier_code(self.unit, self.day, self.sequence)


def format_dossier_code(unit: str, day: date, sequence: int) -> str:
    """``format_dossier_code("31135", date(2026, 2, 17), 1) == "31135-260217-0001"``."""
    if not _UNIT_CODE.fullmatch(unit):
        raise InvalidDossierCode(f"{unit!r} is not a unit code (letters, digits, hyphens)")
    if not 1 <= sequence <= MAX_DAILY_SEQUENCE:
        raise InvalidDossierCode(f"daily sequence {sequence} is outside 1..{MAX_DAILY_SEQUENCE}")
    if not 2000 <= day.year <= 2099:
        raise InvalidDossierCode(f"a dossier code's year must be 2000..2099, not {day.year}")
    return f"{unit}-{day:%y%m%d}-{sequence:04d}"


def parse_dossier_code(code: str) -> DossierCode:
    """The parts of a dossier code; raises :class:`InvalidDossierCode` saying what is wrong."""
    parts = code.rsplit("-", 2)
    if len(parts) != 3:
        raise InvalidDossierCode(f"{code!r} is not <unit>-<yymmdd>-<nnnn>")
    unit, day_text, seq_text = parts
    if not _UNIT_CODE.fullmatch(unit):
        raise InvalidDossierCode(f"{code!r}: {unit!r} is not a unit code")
    if not _DAY.fullmatch(day_text):
        raise InvalidDossierCode(f"{code!r}: {day_text!r} is not a yymmdd date")
    if not _SEQ.fullmatch(seq_text) or seq_text == "0000":
        raise InvalidDossierCode(f"{code!r}: {seq_text!r} is not a sequence 0001..9999")
    try:
        day = date(2000 + int(day_text[:2]), int(day_text[2:4]), int(day_text[4:]))
    except ValueError:
        raise InvalidDossierCode(f"{code!r}: {day_text!r} is not a real date") from None
    return DossierCode(unit, day, int(seq_text))


def is_dossier_code(code: str) -> bool:
    try:
        parse_dossier_code(code)
    except InvalidDossierCode:
        return False
    return True


# --- citizen id (CCCD) --------------------------------------------------------------------------

# The 63 pre-2025 province codes of Circular 07/2016/TT-BCA. The 2025 merger did not renumber
# the CCCDs already issued, so these (not the 34 new provinces) are the valid prefixes:
# 001 Hà Nội … 092 Cần Thơ, 093 Hậu Giang, 094 Sóc Trăng, 095 Bạc Liêu, 096 Cà Mau.
CCCD_PROVINCES = frozenset(
    f"{n:03d}"
    for n in (
        1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33,
        34, 35, 36, 37, 38, 40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64,
        66, 67, 68, 70, 72, 74, 75, 77, 79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94,
        95, 96,
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CitizenId:
    number: str
    province: str
    """3-digit pre-2025 province code of the place of birth registration."""
    female: bool
    birth_year: int
    serial: str


def parse_citizen_id(value: str, *, today: date | None = None) -> CitizenId:
    """Parse a CCCD; raises :class:`InvalidCitizenId` carrying a :class:`CitizenIdProblem`.

    ``today`` (optional, since this module reads no clock) enables the future-birth check.
    """
    number = value.strip()
    if not number.isascii() or not number.isdigit():
        problem = CitizenIdProblem.NOT_DIGITS if number else CitizenIdProblem.WRONG_LENGTH
        raise InvalidCitizenId(problem)
    if len(number) != 12:
        raise InvalidCitizenId(CitizenIdProblem.WRONG_LENGTH)
    if number[:3] not in CCCD_PROVINCES:
        raise InvalidCitizenId(CitizenIdProblem.UNKNOWN_PROVINCE)
    # Gender/century digit: 0/1 = male/female born 1900-1999, 2/3 = 2000-2099, … 8/9 = 2300s.
    century_digit = int(number[3])
    birth_year = 1900 + 100 * (century_digit // 2) + int(number[4:6])
    if today is not None and birth_year > today.year:
        raise InvalidCitizenId(CitizenIdProblem.BORN_IN_FUTURE)
    return CitizenId(number, number[:3], century_digit % 2 == 1, birth_year, number[6:])


def citizen_id_problem(value: str, *, today: date | None = None) -> CitizenIdProblem | None:
    """None if ``value`` is a valid CCCD, else what is wrong with it."""
    try:
        parse_citizen_id(value, today=today)
    except InvalidCitizenId as exc:
        return exc.problem
    return None


# --- phone numbers ------------------------------------------------------------------------------

_PHONE_MARKS = re.compile(r"[\s.\-()]")
_MOBILE = re.compile(r"0[35789]\d{8}")
"""10 digits: 03x, 05x, 07x, 08x, 09x (the 2018 numbering plan)."""
_LANDLINE = re.compile(r"02\d{9}")
"""11 digits: 02 + the rest of the province's area code + the subscriber number (0292 3831 234)."""


def parse_phone(text: str) -> str | None:
    """A Vietnamese mobile or landline number as digits only (``0292 3831 234`` ->
    ``"02923831234"``, ``+84 912.345.678`` -> ``"0912345678"``); None if it is neither.
    Spaces, dots, hyphens and brackets between the digits are the writer's, not the number's."""
    digits = _PHONE_MARKS.sub("", text)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    if _MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(digits):
        return digits
    return None


# --- search folding -----------------------------------------------------------------------------


def _fold_slowly(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", bare).lower()


# The projector folds every changed dossier's name on the hot path: a translate table for the
# Latin letters (Vietnamese lives in U+00C0-U+024F and U+1E00-U+1EFF) does in one C call what
# the Unicode round trip does per character. Built from _fold_slowly, so the two always agree.
_LATIN = {
    code: _fold_slowly(chr(code))
    for code in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00))
    if _fold_slowly(chr(code)).isascii()
}


def fold_text(text: str) -> str:
    """Lowercase without Vietnamese diacritics: ``"Nguyễn Thị Đặng" -> "nguyen thi dang"``.

    NFD splits a letter from its marks; the marks are dropped. ``đ`` is a letter of its own, not
    a ``d`` with a mark, so it is mapped by hand (FTS5's remove_diacritics misses it too).
    """
    folded = text.translate(_LATIN)
    if folded.isascii():
        return folded.lower()
    return _fold_slowly(folded)
