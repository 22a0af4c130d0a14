"""The portal's codes of our units and sectors, from CSV files: parsed and checked, all errors
at once (as the procedure catalogue is, schema/catalogue.py).

Units (``--unit-code-file``), UTF-8, a header, ``#`` comment lines before it::

    unit,electronic_id
    31135,000.31.35.H13

Sectors (``--sector-code-file``): ``sector,code``, the sector's name exactly as the procedure
catalogue writes it (``Đất đai``) and its code on the portal.

``unit`` must be a unit the city knows; an electronic identifier code is letters, digits and
dots (Circular 10/2016/TT-BTTTT writes them ``000.00.00.H13``), at most 40 characters, and no two
units share one (the portal's dossier codes begin with it).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection

from edge.errors import ConfigError

_CODE = re.compile(r"[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*")
MAX_CODE = 40


def _rows(text: str, header: tuple[str, str], where: str) -> list[tuple[int, str, str]]:
    lines = text.lstrip("\ufeff").splitlines()
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].lstrip().startswith("#")):
        start += 1
    reader = csv.reader(io.StringIO("\n".join(lines[start:])))
    first = next(reader, None)
    if first is None or tuple(cell.strip() for cell in first) != header:
        raise ConfigError(f"{where}: the first line must be the header {','.join(header)}")
    out = []
    for number, row in enumerate(reader, start=start + 2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            out.append((number, "", ""))
            continue
        out.append((number, row[0].strip(), row[1].strip()))
    return out


def parse_unit_codes(text: str, known_units: Collection[str], where: str = "unit codes") -> dict[str, str]:
    problems: list[str] = []
    codes: dict[str, str] = {}
    owner: dict[str, str] = {}
    for line, unit, code in _rows(text, ("unit", "electronic_id"), where):
        if not unit and not code:
            problems.append(f"line {line}: two columns expected (unit,electronic_id)")
            continue
        if unit not in known_units:
            problems.append(f"line {line}: unit {unit!r} is not a unit of the city")
        if not _CODE.fullmatch(code) or len(code) > MAX_CODE:
            problems.append(
                f"line {line}: {code!r} is not an electronic identifier code (letters, digits, dots)"
            )
        if unit in codes:
            problems.append(f"line {line}: unit {unit} appears twice")
        if code in owner and owner[code] != unit:
            problems.append(f"line {line}: {code} is already the code of unit {owner[code]}")
        codes[unit] = code
        owner.setdefault(code, unit)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return codes


def parse_sector_codes(text: str, where: str = "sector codes") -> dict[str, str]:
    problems: list[str] = []
    codes: dict[str, str] = {}
    for line, sector, code in _rows(text, ("sector", "code"), where):
        if not sector or not code:
            problems.append(f"line {line}: a sector's name and its code are both needed")
            continue
        if not _CODE.fullmatch(code) or len(code) > MAX_CODE:
            problems.append(f"line {line}: {code!r} is not a code (letters, digits, dots)")
        if sector in codes:
            problems.append(f"line {line}: sector {sector!r} appears twice")
        codes[sector] = code
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return codes
