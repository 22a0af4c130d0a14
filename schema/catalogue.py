"""Procedure catalogues from CSV or JSON files: parsed and checked, all errors at once.

A city loads its 2,000+ procedures from a file; this module turns the file into
:class:`~schema.procedures.ProcedureRecord`\\ s, or into the list of *every* problem found,
each with the line (CSV) or item (JSON) where it is, so a technician fixes the file in one pass.
Pure: bytes in, records or :class:`InvalidCatalogue` out; :mod:`ops.catalogue` applies them.

CSV (UTF-8, with or without a byte-order mark; lines starting with ``#`` before the header are
comments)::

    code,name,sector,handling_level,processing_days,fee,fee_online,result,legal_basis,documents
    1.004194,Đăng ký thường trú,"Đăng ký, quản lý cư trú",commune,7,20000,10000,…,…,"Tờ khai|original|1;…"

- ``code``: the national procedure code, ``d.dddddd`` (``1.004194``); unique in the file.
- ``name``, ``sector``: text, required. ``result``, ``legal_basis``: text, may be empty.
- ``handling_level``: ``commune`` or ``province``.
- ``processing_days``: a whole number of working days, 0 (same day) to 365.
- ``fee``, ``fee_online``: whole VND, ``100000`` or ``100.000``; an empty ``fee_online`` is the
  paper fee.
- ``documents``: items separated by ``;``, each ``name|forms|count[|optional][|form]``: the
  forms accepted, ``+``-joined from ``original``, ``copy``, ``electronic``; the number of
  copies (empty: 1); ``optional`` when the item is needed only in some cases (or ``required``,
  the default); the official form, e.g. ``Mẫu CT01``. A name cannot contain ``;`` or ``|``.

JSON: a list of objects with the same fields, numbers as JSON numbers, and ``documents`` as a
list of objects ``{"name", "forms": ["original", …], "count"?, "required"?, "form"?}``.
Items are counted from 1 in error messages.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schema.dossier import DOCUMENT_FORMS
from schema.errors import SchemaError
from schema.procedures import COMMUNE_LEVEL, PROVINCE_LEVEL, DocumentComponent, ProcedureRecord

COLUMNS = (
    "code",
    "name",
    "sector",
    "handling_level",
    "processing_days",
    "fee",
    "fee_online",
    "result",
    "legal_basis",
    "documents",
)
REQUIRED_FIELDS = ("code", "name", "sector", "handling_level", "processing_days", "fee")
HANDLING_LEVELS = (COMMUNE_LEVEL, PROVINCE_LEVEL)
FORMS = DOCUMENT_FORMS
MAX_DAYS = 365
MAX_TEXT = 2000
MAX_DOCUMENT_COUNT = 99
MAX_MONEY = 10**12
"""A fee above a trillion dong is a typo (and a number that large would not fit the log)."""
MAX_DIGITS = 13
"""A whole number in a CSV cell has at most this many digits; more is refused before int()."""

CODE = re.compile(r"\d\.\d{6}")
_MONEY = re.compile(r"\d+|\d{1,3}(?:\.\d{3})+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a catalogue file, and where: ``line 7`` or ``item 3``."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class InvalidCatalogue(SchemaError):
    """The file has problems; nothing of it may be applied. ``problems`` lists all of them."""

    code = "invalid_catalogue"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the catalogue has {len(self.problems)} error(s); nothing was imported:\n{lines}")


class _Bad(Exception):
    """A field's problem, raised by a field parser and collected by the row parser."""


# --- fields: each takes the raw value (str from CSV, anything from JSON) -------------------------


def _text(value: Any, name: str, *, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _Bad(f"{name} must be text")
    text = " ".join(value.split())
    if required and not text:
        raise _Bad(f"{name} is required")
    if len(text) > MAX_TEXT:
        raise _Bad(f"{name} is longer than {MAX_TEXT} characters")
    return text


def _code(value: Any) -> str:
    code = value.strip() if isinstance(value, str) else value
    if not isinstance(code, str) or not CODE.fullmatch(code):
        raise _Bad(f"code {value!r} is not a national procedure code like 1.004194")
    return code


def _level(value: Any) -> str:
    level = value.strip().lower() if isinstance(value, str) else value
    if level not in HANDLING_LEVELS:
        raise _Bad(f"handling_level must be one of: {', '.join(HANDLING_LEVELS)}")
    return str(level)


def _whole(value: Any, *, from_text: bool) -> int | None:
    """An int from a JSON number or a CSV digit string; None if it is not one."""
    if from_text:
        return _digits(value.strip()) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _digits(text: str) -> int | None:
    # ASCII only: str.isdigit() also takes "²", which int() refuses; and int() refuses more
    # than 4,300 digits, so the length is bounded first.
    if text and len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def _days(value: Any, from_text: bool) -> int:
    days = _whole(value, from_text=from_text)
    if days is None:
        raise _Bad("processing_days must be a whole number of working days")
    if days > MAX_DAYS:
        raise _Bad(f"processing_days must be at most {MAX_DAYS} working days")
    return days


def _money(value: Any, name: str, from_text: bool) -> int:
    if from_text and isinstance(value, str) and _MONEY.fullmatch(value.strip()):
        amount = _digits(value.strip().replace(".", ""))
    else:
        amount = None if from_text else _whole(value, from_text=False)
    if amount is None:
        raise _Bad(f"{name} must be a whole number of dong (e.g. 100000 or 100.000)")
    if amount > MAX_MONEY:
        raise _Bad(f"{name} must be at most {MAX_MONEY:,} dong".replace(",", "."))
    return amount


def _forms(values: Sequence[Any], where: str) -> dict[str, bool]:
    chosen = [v.strip() if isinstance(v, str) else v for v in values]
    unknown = [str(v) for v in chosen if v not in FORMS]
    if unknown or not chosen:
        raise _Bad(f"{where}: forms must be one or more of {'+'.join(FORMS)}")
    return {form: form in chosen for form in FORMS}


def _component(name: Any, forms: dict[str, bool], count: int, required: bool, form: Any) -> DocumentComponent:
    return DocumentComponent(
        name=name,
        original=forms["original"],
        copy=forms["copy"],
        electronic=forms["electronic"],
        count=count,
        required=required,
        form=form or None,
    )


def _csv_documents(value: Any) -> tuple[DocumentComponent, ...]:
    items = [item for item in (value or "").split(";") if item.strip()]
    out = []
    for number, item in enumerate(items, 1):
        where = f"document {number}"
        parts = [p.strip() for p in item.split("|")]
        if not 2 <= len(parts) <= 5:
            raise _Bad(f"{where} must be name|forms|count[|optional][|form], not {item.strip()!r}")
        parts += [""] * (5 - len(parts))
        name, forms, count_text, need, form = parts
        if not name:
            raise _Bad(f"{where} has no name")
        count = _digits(count_text) if count_text else 1
        if count is None or not 1 <= count <= MAX_DOCUMENT_COUNT:
            raise _Bad(f"{where}: count must be a whole number from 1 to {MAX_DOCUMENT_COUNT}")
        if need not in ("", "required", "optional"):
            raise _Bad(f"{where}: the fourth part must be 'required' or 'optional'")
        out.append(_component(name, _forms(forms.split("+"), where), count, need != "optional", form))
    return tuple(out)


_DOCUMENT_KEYS = frozenset({"name", "forms", "count", "required", "form"})


def _json_documents(value: Any) -> tuple[DocumentComponent, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad("documents must be a list of objects")
    out = []
    for number, item in enumerate(value, 1):
        where = f"document {number}"
        if not isinstance(item, dict):
            raise _Bad(f"{where} must be an object")
        unknown = sorted(set(item) - _DOCUMENT_KEYS)
        if unknown:
            raise _Bad(f"{where} has unknown field(s): {', '.join(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _Bad(f"{where} has no name")
        forms = item.get("forms")
        if not isinstance(forms, list):
            raise _Bad(f'{where}: forms must be a list such as ["original", "copy"]')
        count = item.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_DOCUMENT_COUNT:
            raise _Bad(f"{where}: count must be a whole number from 1 to {MAX_DOCUMENT_COUNT}")
        required = item.get("required", True)
        if not isinstance(required, bool):
            raise _Bad(f"{where}: required must be true or false")
        form = item.get("form")
        if form is not None and not isinstance(form, str):
            raise _Bad(f"{where}: form must be text")
        out.append(_component(" ".join(name.split()), _forms(forms, where), count, required, form))
    return tuple(out)


# --- records -------------------------------------------------------------------------------------


def _record(
    raw: Mapping[str, Any], from_text: bool, documents: Callable[[Any], tuple[DocumentComponent, ...]]
) -> tuple[ProcedureRecord | None, list[str]]:
    """A record from one row or item, or every problem of it (one per field)."""
    problems: list[str] = []

    def field(parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except _Bad as exc:
            problems.append(str(exc))
            return None

    missing = [name for name in REQUIRED_FIELDS if raw.get(name) is None]
    if missing:
        return None, [f"missing field(s): {', '.join(missing)}"]
    code = field(lambda: _code(raw["code"]))
    name = field(lambda: _text(raw["name"], "name", required=True))
    sector = field(lambda: _text(raw["sector"], "sector", required=True))
    level = field(lambda: _level(raw["handling_level"]))
    days = field(lambda: _days(raw["processing_days"], from_text))
    fee = field(lambda: _money(raw["fee"], "fee", from_text))
    online = raw.get("fee_online")
    fee_online = field(
        lambda: fee if online is None or online == "" else _money(online, "fee_online", from_text)
    )
    result = field(lambda: _text(raw.get("result"), "result", required=False))
    basis = field(lambda: _text(raw.get("legal_basis"), "legal_basis", required=False))
    docs = field(lambda: documents(raw.get("documents")))
    if docs:
        names = [d.name for d in docs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"document {repeated[0]!r} is listed twice")
    if problems:
        return None, problems
    record = ProcedureRecord(
        code=code,
        name=name,
        sector=sector,
        handling_level=level,
        processing_days=days,
        documents=docs,
        fee=fee,
        fee_online=fee_online if fee_online is not None else fee,
        result=result,
        legal_basis=basis,
    )
    return record, []


def _collect(rows: Iterator[tuple[str, Mapping[str, Any] | str]], from_text: bool) -> list[ProcedureRecord]:
    """Parse every row, then refuse the whole file if any had a problem or a repeated code."""
    documents = _csv_documents if from_text else _json_documents
    records: list[ProcedureRecord] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for where, raw in rows:
        if isinstance(raw, str):  # the row itself is malformed
            problems.append(Problem(where, raw))
            continue
        record, found = _record(raw, from_text, documents)
        problems.extend(Problem(where, message) for message in found)
        if record is None:
            continue
        if record.code in seen:
            problems.append(Problem(where, f"code {record.code} is already on {seen[record.code]}"))
            continue
        seen[record.code] = where
        records.append(record)
    if problems:
        raise InvalidCatalogue(problems)
    return records


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidCatalogue(
            [Problem(f"line {line}", "the file is not UTF-8 text (save it as CSV UTF-8 or JSON UTF-8)")]
        ) from exc


def parse_csv(data: bytes) -> list[ProcedureRecord]:
    """Records from a CSV catalogue (see the module docstring); InvalidCatalogue otherwise."""
    lines = _decode(data).splitlines(keepends=True)
    skipped = 0
    while skipped < len(lines) and (lines[skipped].lstrip().startswith("#") or not lines[skipped].strip()):
        skipped += 1
    reader = csv.reader(io.StringIO("".join(lines[skipped:]), newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise InvalidCatalogue([Problem(f"line {skipped + 1}", "the file has no header line")]) from None
    except csv.Error as exc:
        raise InvalidCatalogue([Problem(f"line {skipped + 1}", f"not a CSV header: {exc}")]) from None
    where = f"line {skipped + 1}"
    missing = [c for c in COLUMNS if c not in header and c not in ("result", "legal_basis", "fee_online")]
    unknown = [c for c in header if c not in COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append(Problem(where, f"missing column(s): {', '.join(missing)}"))
    if unknown:
        problems.append(Problem(where, f"unknown column(s): {', '.join(unknown)}"))
    if repeated:
        problems.append(Problem(where, f"repeated column(s): {', '.join(repeated)}"))
    if problems:
        problems.append(Problem(where, f"the header must be: {','.join(COLUMNS)}"))
        raise InvalidCatalogue(problems)
    return _collect(_csv_rows(reader, header, skipped), from_text=True)


def _csv_rows(reader: Any, header: list[str], skipped: int) -> Iterator[tuple[str, Mapping[str, Any] | str]]:
    end = reader.line_num  # physical lines read so far (a quoted field may span several)
    while True:
        start = skipped + end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield f"line {start}", f"not valid CSV: {exc}"
            return  # the reader cannot resynchronise after a broken quote
        end = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield f"line {start}", f"has {len(row)} fields, the header has {len(header)}"
            continue
        yield f"line {start}", dict(zip(header, row, strict=True))


def parse_json(data: bytes) -> list[ProcedureRecord]:
    """Records from a JSON catalogue (see the module docstring); InvalidCatalogue otherwise."""
    try:
        items = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise InvalidCatalogue(
            [Problem(f"line {exc.lineno}", f"not valid JSON: {exc.msg} (column {exc.colno})")]
        ) from None
    except (ValueError, RecursionError):
        # json.loads raises these, not JSONDecodeError, for a number of over 4,300 digits and
        # for nesting deeper than Python's recursion limit.
        raise InvalidCatalogue(
            [Problem("file", "not a catalogue: a number is far too long or the nesting far too deep")]
        ) from None
    if not isinstance(items, list):
        raise InvalidCatalogue([Problem("file", "must hold a JSON list of procedures")])

    def rows() -> Iterator[tuple[str, Mapping[str, Any] | str]]:
        for number, item in enumerate(items, 1):
            where = f"item {number}"
            if not isinstance(item, dict):
                yield where, "must be an object"
                continue
            unknown = sorted(set(item) - set(COLUMNS))
            if unknown:
                yield where, f"unknown field(s): {', '.join(unknown)}"
                continue
            try:
                json.dumps(item, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                yield where, "holds a \\u escape that is not a character (half of a surrogate pair)"
                continue
            except RecursionError:
                yield where, "is nested too deeply"
                continue
            yield where, item

    return _collect(rows(), from_text=False)


FORMATS: dict[str, Callable[[bytes], list[ProcedureRecord]]] = {"csv": parse_csv, "json": parse_json}


def parse_catalogue(data: bytes, fmt: str) -> list[ProcedureRecord]:
    """Records from a catalogue in ``fmt`` (``csv`` or ``json``)."""
    parser = FORMATS.get(fmt.lower())
    if parser is None:
        raise SchemaError(f"unknown catalogue format {fmt!r}: use csv or json")
    return parser(data)
