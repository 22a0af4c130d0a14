"""Vietnamese first, English second: gettext catalogs (Babel .po files) and local formats.

The msgids are English; ``locale/vi/LC_MESSAGES/messages.po`` translates every one of them
(a test extracts the msgids from the code and templates and fails on any missing), and English
falls back to the msgid. Catalogs are compiled in memory at start, so the box needs no build
step. The current language is a context variable that the app sets per request.
"""

from __future__ import annotations

import contextvars
import gettext
import io
import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("vi", "en")
LOCALE_DIR = Path(__file__).with_name("locale")
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")

current_language: contextvars.ContextVar[str] = contextvars.ContextVar("language", default="vi")


@cache
def translations(language: str) -> gettext.NullTranslations:
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def gettext_(message: str, **params: Any) -> str:
    text = translations(current_language.get()).gettext(message)
    return text.format(**params) if params else text


def ngettext_(singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(current_language.get()).ngettext(singular, plural, n)
    return text.format(n=n, **params)


_ = gettext_


def N_(message: str) -> str:
    """Marks a msgid for extraction where it is translated later (with its parameters)."""
    return message


def pick_language(requested: str | None, default: str) -> str:
    return requested if requested in LANGUAGES else default


# --- formats (the same in both languages: Vietnamese conventions) -----------------------------


def format_date(value: date | str | int | None) -> str:
    """dd/mm/yyyy from a date, an ISO date string or epoch milliseconds."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, TIMEZONE).date()
    elif isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return value.strftime("%d/%m/%Y")


def format_datetime(ms: int | None) -> str:
    """dd/mm/yyyy HH:MM in Vietnam's time zone, from epoch milliseconds."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, TIMEZONE).strftime("%d/%m/%Y %H:%M")


def format_number(value: float, places: int = 1) -> str:
    """A number as the page's language writes it: ``2,5`` and ``1.250`` in Vietnamese, ``2.5`` and
    ``1,250`` in English; whole numbers without decimals."""
    whole = float(value).is_integer()
    text = f"{int(value):,}" if whole else f"{value:,.{places}f}".rstrip("0").rstrip(".")
    if current_language.get() == "vi":
        text = text.translate(str.maketrans(",.", ".,"))
    return text


def format_money(vnd: int | None) -> str:
    """100.000 ₫ — dots between thousands, as Vietnamese write it."""
    return f"{vnd or 0:,}".replace(",", ".") + " ₫"


_SEPARATED = re.compile(r"(\d{1,2})[/.\-\s]+(\d{1,2})[/.\-\s]+(\d{2}|\d{4})")
_RUN = re.compile(r"(\d{2})(\d{2})(\d{2}|\d{4})")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str, *, past: bool = False, today: date | None = None) -> date:
    """A date as a person types it, day first whatever the browser's language: ``15/03/1980``,
    ``15-3-1980``, ``15.03.80``, ``15031980``, ``150380``; ISO ``yyyy-mm-dd`` too (the API,
    links made before the pages used text fields). Raises ValueError for anything else.

    A two-digit year is the century's unless that lands in the future for a ``past`` date (a
    birth date): ``46`` is 1946 in a date of birth and 2046 in an appointment date."""
    text = text.strip()
    if _ISO.fullmatch(text):
        return date.fromisoformat(text)
    found = _SEPARATED.fullmatch(text) or _RUN.fullmatch(text)
    if found is None:
        raise ValueError(f"not a dd/mm/yyyy date: {text[:40]!r}")
    day, month, year = (int(part) for part in found.groups())
    if len(found.group(3)) == 2:
        now = today or datetime.now(TIMEZONE).date()
        year += 2000
        if past and year > now.year:
            year -= 100
    return date(year, month, day)
