"""The units a clerk picks from: the handling unit, the applicant's commune, a transfer's target.

A province has about a hundred units and every commune's name starts with "Phường" or "Xã", so
a native select sorted by code point jumps nowhere when one types. The choices are labelled by
the proper name first ("Cái Khế (phường)"), sorted in Vietnamese alphabetical order (a ă â b c
d đ e ê …, then the tones), communes before the city's departments, and each carries its folded
name for the page's optional filter box (accents optional, prefix not needed).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schema.codes import fold_text

COMMUNE_KINDS = {"commune": "xã", "ward": "phường", "special_zone": "đặc khu"}
"""Kinds of unit that are communes, with the word their names start with."""
_ALPHABET = {letter: rank for rank, letter in enumerate(" aăâbcdđeêfghijklmnoôơpqrstuưvwxyz")}
# Dictionary order of the tones: level, huyền, hỏi, ngã, sắc, nặng.
_TONES = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}


def collation_key(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sorts Vietnamese words as a dictionary does: letters first (``đ`` after ``d``, ``ơ``
    after ``ô``), the tones only between words spelled alike (``Cai`` < ``Cái`` < ``Cam``)."""
    letters: list[int] = []
    tones: list[int] = []
    for ch in unicodedata.normalize("NFD", text.lower()):
        if ch in _TONES:
            if tones:
                tones[-1] = _TONES[ch]
        elif unicodedata.combining(ch):
            # breve, circumflex, horn: they make another letter of the one before
            if letters:
                base = _LETTER_OF.get(letters[-1], "")
                letters[-1] = _ALPHABET.get(unicodedata.normalize("NFC", base + ch), letters[-1])
        else:
            letters.append(_ALPHABET.get(ch, 100 + ord(ch)))
            tones.append(0)
    return tuple(letters), tuple(tones)


_LETTER_OF = {rank: letter for letter, rank in _ALPHABET.items()}


def clean_name(name: str) -> str:
    """One space between words (the national list has "Xã  Phú Hữu")."""
    return " ".join(name.split())


@dataclass(frozen=True)
class UnitChoice:
    code: str
    name: str
    """The official name, cleaned: "Phường Cái Khế"."""
    label: str
    """What the option shows, proper name first: "Cái Khế (phường)"."""
    fold: str
    """Lowercase, unaccented: what the filter box matches."""
    commune: bool


def _choice(unit: Mapping[str, Any]) -> UnitChoice:
    name = clean_name(str(unit["name"]))
    division = COMMUNE_KINDS.get(str(unit.get("kind")), "")
    commune = bool(division)
    label = name
    if commune and division and name.lower().startswith(division.lower() + " "):
        label = f"{name[len(division) + 1 :]} ({division.lower()})"
    return UnitChoice(str(unit["code"]), name, label, fold_text(f"{label} {name} {unit['code']}"), commune)


def unit_choices(
    units: Iterable[Mapping[str, Any]], *, communes_only: bool = False, exclude: Iterable[str] = ()
) -> list[UnitChoice]:
    """The units to offer, communes first then departments, each group in Vietnamese order.

    ``communes_only``: where a commune is meant (a place of residence), no city department.
    ``exclude``: codes never to offer (a transfer's current handling unit)."""
    left_out = set(exclude)
    choices = [_choice(u) for u in units if str(u["code"]) not in left_out]
    if communes_only:
        choices = [c for c in choices if c.commune]
    return sorted(choices, key=lambda c: (not c.commune, collation_key(c.label), c.code))
