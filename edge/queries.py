"""What a clerk reads: lists, search, a dossier with its timeline, the home counts, reports.

Reads run on read-only connections to the projection tables (WAL: they never block a write).
Every query is scoped by :meth:`Actor.may_see`'s rule in SQL, so a clerk of one unit cannot
reach another unit's dossier by id, by list or by search.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from edge.auth import Actor
from edge.errors import NotFound
from edge.i18n import TIMEZONE
from schema.calendar import add_working_days
from schema.codes import fold_text, is_dossier_code
from schema.dossier import APPLICANT
from schema.indicators import indicators
from schema.procedures import short_name
from schema.search import fts_query
from schema.status import DEADLINE_RUNNING

COUNT_CAP = 1_000
"""Lists count matches up to this many ("at least 1,000"; 40 pages of 25) and page on past it
without counting: counting a ward's whole history was a third of a list page's cost."""

RUNNING_CODES = tuple(sorted(int(s) for s in DEADLINE_RUNNING))
"""schema.status.DEADLINE_RUNNING as SQL parameters: the statuses a dossier can be overdue in."""

_COLUMNS = ", ".join(
    (
        "id, code, portal_code, procedure_code, receiving_unit, handling_unit, channel",
        *APPLICANT,  # schema.dossier.Registers' applicant_* fields
        "status, received_at, due_date, processed_at, closed_at, fee, documents, digitised",
        "attachment_count, conflict_count",
    )
)


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _scope(actor: Actor) -> tuple[str, list[Any]]:
    if actor.role == "admin":
        return "1", []
    # The unary + keeps SQLite from answering the OR with two index scans and a sort of the
    # whole unit: on an edge nearly every dossier is in scope, so walking the index that the
    # ORDER BY wants and filtering is what stays fast at 100,000 dossiers.
    return "(+d.handling_unit = ? OR +d.receiving_unit = ?)", [actor.unit, actor.unit]


@dataclass
class Filters:
    status: int | None = None
    procedure: str | None = None
    received_from: date | None = None
    received_to: date | None = None
    due: str | None = None
    """"overdue", "soon" (due within 2 working days) or None."""
    q: str = ""
    conflicts: bool = False
    """Only dossiers with a change sync kept but could not apply."""


@dataclass
class Page:
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int
    filters: Filters = field(default_factory=Filters)
    more: bool = False
    """Another page follows this one."""

    @property
    def pages(self) -> int:
        """How many pages there are, or at least (:attr:`capped`)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def capped(self) -> bool:
        """The count stopped at :data:`COUNT_CAP`: ``total`` is a lower bound."""
        return self.total >= COUNT_CAP


def _ms(day: date, end: bool = False) -> int:
    moment = datetime.combine(day, time.max if end else time.min, TIMEZONE)
    return int(moment.timestamp() * 1000)


def list_dossiers(
    conn: sqlite3.Connection, actor: Actor, filters: Filters, today: date, page: int = 1, page_size: int = 25
) -> Page:
    where, params = _scope(actor)
    clauses = [where]
    if filters.status is not None:
        clauses.append("d.status = ?")
        params.append(filters.status)
    if filters.procedure:
        clauses.append("d.procedure_code = ?")
        params.append(filters.procedure)
    if filters.received_from:
        clauses.append("d.received_at >= ?")
        params.append(_ms(filters.received_from))
    if filters.received_to:
        clauses.append("d.received_at <= ?")
        params.append(_ms(filters.received_to, end=True))
    if filters.conflicts:
        # No index: the filter is rare, and the count and the page stop early (COUNT_CAP).
        clauses.append("d.conflict_count > 0")
    if filters.due in ("overdue", "soon"):
        clauses.append(f"d.status IN ({','.join('?' * len(RUNNING_CODES))})")
        params.extend(RUNNING_CODES)
        if filters.due == "overdue":
            clauses.append("d.due_date < ?")
            params.append(today.isoformat())
        else:
            clauses.append("d.due_date BETWEEN ? AND ?")
            params.extend([today.isoformat(), add_working_days(today, 2).isoformat()])
    match = fts_query(filters.q) if filters.q else None
    source = "dossiers AS d"
    if filters.q and match is None:
        return Page([], 0, 1, page_size, filters)
    if match is not None:
        source = "dossier_fts JOIN dossiers AS d ON d.rid = dossier_fts.rowid"
        clauses.append("dossier_fts MATCH ?")
        params.append(match)
    sql_where = " AND ".join(clauses)
    # Counting a whole unit's dossiers costs more than the page itself: count up to a cap.
    total = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {sql_where} LIMIT {COUNT_CAP})", params
    ).fetchone()[0]
    if total < COUNT_CAP:  # a page past the end is the last one; past the cap, nobody knows the end
        page = min(page, max(1, -(-total // page_size)))
    page = max(1, page)
    order = "d.received_at DESC" if filters.due is None else "d.due_date ASC, d.received_at ASC"
    cur = conn.execute(
        f"SELECT {', '.join('d.' + c.strip() for c in _COLUMNS.split(','))} FROM {source} "
        f"WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, page_size + 1, (page - 1) * page_size],
    )
    rows = _rows(cur)
    return Page(rows[:page_size], total, page, page_size, filters, more=len(rows) > page_size)


def clock_confirmed(conn: sqlite3.Connection, dossier_id: str) -> str | None:
    """Why the box's clock was in doubt when the dossier was received and the clerk confirmed
    the date anyway (the create op records it), or None. Call after :func:`dossier` checked the
    actor may see it."""
    row = conn.execute(
        "SELECT json_extract(CAST(state AS TEXT), '$.clock_confirmed') FROM sync_entity "
        "WHERE kind = 'dossier' AND entity = ?",
        (dossier_id,),
    ).fetchone()
    return None if row is None or not row[0] else str(row[0])


def dossiers_of_citizen(conn: sqlite3.Connection, actor: Actor, citizen_id: str) -> list[dict[str, Any]]:
    """The id, code and applicant's name of every dossier the actor may see whose applicant has
    ``citizen_id``, oldest first: what a data-subject export and the read log's filter cover."""
    where, params = _scope(actor)
    return _rows(
        conn.execute(
            f"SELECT d.id, d.code, d.applicant_name FROM dossiers AS d "
            f"WHERE d.applicant_citizen_id = ? AND {where} ORDER BY d.received_at, d.id",
            [citizen_id, *params],
        )
    )


def dossier_labels(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Code and applicant (name, citizen id) of each dossier among ``ids`` this box holds."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = _rows(
        conn.execute(
            f"SELECT id, code, applicant_name, applicant_citizen_id FROM dossiers WHERE id IN ({marks})",
            wanted,
        )
    )
    return {row["id"]: row for row in rows}


def dossier(conn: sqlite3.Connection, actor: Actor, dossier_id: str) -> dict[str, Any]:
    """One dossier with its steps and attachments; NotFound if absent *or* not visible."""
    where, params = _scope(actor)
    rows = _rows(
        conn.execute(
            f"SELECT {_COLUMNS} FROM dossiers AS d WHERE d.id = ? AND {where}", [dossier_id, *params]
        )
    )
    if not rows:
        raise _absent_or_hidden(conn, "id", dossier_id)
    found = rows[0]
    found["steps"] = _rows(
        conn.execute(
            "SELECT position, stamp, node, seq, at, actor, role, action, from_status, to_status, note, "
            "handling_unit FROM dossier_steps WHERE dossier_id = ? ORDER BY position",
            (dossier_id,),
        )
    )
    found["attachments"] = _rows(
        conn.execute(
            "SELECT sha256, name, mime, size, added_by, added_at FROM attachments WHERE dossier_id = ? "
            "ORDER BY added_at, name",
            (dossier_id,),
        )
    )
    return found


def dossier_codes(conn: sqlite3.Connection, actor: Actor, ids: Sequence[str]) -> dict[str, str]:
    """id -> code of those of ``ids`` the actor may see (the others are left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    where, params = _scope(actor)
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT d.id, d.code FROM dossiers AS d WHERE d.id IN ({marks}) AND {where}", [*wanted, *params]
    )
    return {str(i): str(c) for i, c in rows.fetchall()}


def dossier_by_code(conn: sqlite3.Connection, actor: Actor, code: str) -> str:
    where, params = _scope(actor)
    row = conn.execute(
        f"SELECT d.id FROM dossiers AS d WHERE d.code = ? AND {where}", [code, *params]
    ).fetchone()
    if row is None:
        raise _absent_or_hidden(conn, "code", code)
    return str(row[0])


def hidden_code(conn: sqlite3.Connection, actor: Actor, q: str) -> NotFound | None:
    """When a search that found nothing is the whole code of a dossier the actor may not see,
    the refusal for the audit log (the list stays empty, as for an absent code). A search by
    name is not a reach: names are shared between units."""
    if not is_dossier_code(q):
        return None
    try:
        dossier_by_code(conn, actor, q)
    except NotFound as exc:
        return exc if exc.audit else None
    return None


def _absent_or_hidden(conn: sqlite3.Connection, column: str, value: str) -> NotFound:
    """The same 404 for an absent dossier and another unit's, so ids cannot be probed; the
    second is a reach across units and is marked for the audit log."""
    exists = conn.execute(f"SELECT 1 FROM dossiers WHERE {column} = ?", (value,)).fetchone()
    if exists is None:
        return NotFound("No such dossier.")
    return NotFound("No such dossier.", audit="cross_unit", dossier=value)


def home_counts(conn: sqlite3.Connection, actor: Actor, today: date) -> dict[str, int]:
    where, params = _scope(actor)
    marks = ",".join("?" * len(RUNNING_CODES))
    row = conn.execute(
        f"""SELECT
            sum(d.received_at BETWEEN ? AND ?),
            sum(d.status IN ({marks}) AND d.due_date BETWEEN ? AND ?),
            sum(d.status IN ({marks}) AND d.due_date < ?),
            sum(d.status = 5),
            sum(d.conflict_count > 0)
        FROM dossiers AS d WHERE {where}""",
        [
            _ms(today),
            _ms(today, end=True),
            *RUNNING_CODES,
            today.isoformat(),
            add_working_days(today, 2).isoformat(),
            *RUNNING_CODES,
            today.isoformat(),
            *params,
        ],
    ).fetchone()
    keys = ("received_today", "due_soon", "overdue", "awaiting_supplement", "with_conflicts")
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def procedures(conn: sqlite3.Connection, q: str = "") -> list[dict[str, Any]]:
    """Active procedures whose code or name matches ``q`` without accents ("ho kinh doanh")."""
    rows = _rows(
        conn.execute(
            "SELECT code, name, sector, handling_level, processing_days, documents, fee, fee_online "
            "FROM procedures WHERE active ORDER BY code"
        )
    )
    words = fold_text(q).split()
    if not words:
        return rows
    return [r for r in rows if all(w in fold_text(f"{r['code']} {r['name']} {r['sector']}") for w in words)]


def procedure(conn: sqlite3.Connection, code: str) -> dict[str, Any]:
    rows = _rows(
        conn.execute(
            "SELECT code, name, sector, handling_level, processing_days, documents, fee, fee_online, result, "
            "legal_basis FROM procedures WHERE code = ?",
            (code,),
        )
    )
    if not rows:
        raise NotFound("Unknown procedure {code}.", code=code)
    return rows[0]


def units(conn: sqlite3.Connection, province: str) -> list[dict[str, Any]]:
    return _rows(
        conn.execute(
            "SELECT code, name, kind FROM units WHERE province_code = ? AND kind != 'province' AND active "
            "ORDER BY kind = 'department', name",
            (province,),
        )
    )


def unit_names(conn: sqlite3.Connection, codes: Sequence[str]) -> dict[str, str]:
    if not codes:
        return {}
    marks = ",".join("?" * len(codes))
    return dict(conn.execute(f"SELECT code, name FROM units WHERE code IN ({marks})", list(codes)).fetchall())


def procedure_short_names(conn: sqlite3.Connection, codes: Iterable[str]) -> dict[str, str]:
    """The short name (:func:`schema.procedures.short_name`) of each known code among ``codes``."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(f"SELECT code, name FROM procedures WHERE code IN ({marks})", wanted)
    return {code: short_name(name) for code, name in rows}


@dataclass(frozen=True)
class ReportRow:
    procedure: str
    month: str
    received: int
    on_time: int
    overdue: int
    digitised: int
    online: int

    def share(self, part: int) -> float:
        return part / self.received if self.received else 0.0


def report(
    conn: sqlite3.Connection,
    actor: Actor,
    year: int,
    today: date,
    basis: str = "received",
    city_wide: bool = False,
) -> list[ReportRow]:
    """Decision 766 indicators per procedure and month received, for the actor's unit on
    ``basis`` ("received" at it or "handled" by it), or every unit when ``city_wide`` (an admin
    at the city), with the definitions and the query the city uses too (:mod:`schema.indicators`)."""
    units = None if city_wide and actor.role == "admin" else [actor.unit]
    year_ = (date(year, 1, 1), date(year, 12, 31))
    found = indicators(conn, *year_, today, basis, ("procedure", "month"), units)
    return [
        ReportRow(procedure, month, c.received, c.on_time, c.overdue, c.digitised, c.online)
        for (procedure, month), c in found
    ]


def account_names(conn: sqlite3.Connection, usernames: Sequence[str]) -> dict[str, str]:
    """Full names of accounts (a timeline shows who acted); unknown usernames are left out."""
    wanted = sorted(set(usernames))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(f"SELECT username, full_name FROM accounts WHERE username IN ({marks})", wanted)
    return dict(rows.fetchall())


def procedure_names(conn: sqlite3.Connection, limit: int) -> list[tuple[str, str]]:
    """(code, name) of up to ``limit`` active procedures, for a short select list."""
    rows = conn.execute("SELECT code, name FROM procedures WHERE active ORDER BY code LIMIT ?", (limit,))
    return [(str(code), str(name)) for code, name in rows.fetchall()]
