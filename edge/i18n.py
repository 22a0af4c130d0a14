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


def format_money(vnd: int | None) -> str:
    """100.000 ₫ — dots between thousands, as Vietnamese write it."""
    return f"{vnd or 0:,}".replace(",", ".") + " ₫"


def parse_date(text: str) -> date:
    """A date typed as dd/mm/yyyy (or ISO yyyy-mm-dd, what <input type=date> sends)."""
    text = text.strip()
    if "/" in text:
        return datetime.strptime(text, "%d/%m/%Y").date()
    return date.fromisoformat(text)
