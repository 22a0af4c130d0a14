"""Projectors: folded entity states -> the domain's query tables.

sync calls a kind's projector inside its write transaction with every entity of that kind the
merge changed, so these run on the hot path (a merge of 100,000 ops projects ~10,000 dossiers
at once): one ``executemany`` per statement, upserts that skip rows whose content did not
change, and never ``INSERT OR REPLACE`` (a replace deletes the row first, which would cascade
to a dossier's steps and attachments and churn its FTS rowid).

An entity whose create has not been folded yet (its ops arrived first) has no row: there is
nothing to show but its conflicts, which sync keeps.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from schema.codes import fold_text
from schema.dossier import APPLICANT

Changed = Sequence[tuple[str, dict[str, Any]]]


def _upsert(table: str, key: Sequence[str], columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _created(changed: Changed) -> list[tuple[str, dict[str, Any]]]:
    return [(entity, state) for entity, state in changed if state.get("_created")]


# --- reference data -----------------------------------------------------------------------------

_UNIT_SQL = _upsert(
    "units",
    ["code"],
    ["code", "name", "division_type", "kind", "province_code", "parent_code", "active", "updated_stamp"],
)


def project_units(conn: sqlite3.Connection, changed: Changed) -> None:
    conn.executemany(
        _UNIT_SQL,
        [
            (
                code,
                s["name"],
                s.get("division_type", ""),
                s["kind"],
                s["province_code"],
                s.get("parent_code"),
                s.get("active", True),
                s["_stamp"],
            )
            for code, s in _created(changed)
        ],
    )


_PROCEDURE_SQL = _upsert(
    "procedures",
    ["code"],
    [
        "code",
        "name",
        "sector",
        "handling_level",
        "processing_days",
        "documents",
        "fee",
        "fee_online",
        "result",
        "legal_basis",
        "active",
        "updated_stamp",
    ],
)


def project_procedures(conn: sqlite3.Connection, changed: Changed) -> None:
    conn.executemany(
        _PROCEDURE_SQL,
        [
            (
                code,
                s["name"],
                s.get("sector", ""),
                s.get("handling_level", ""),
                s.get("processing_days"),
                _json(s.get("documents", [])),
                s.get("fee", 0),
                s.get("fee_online", 0),
                s.get("result", ""),
                s.get("legal_basis", ""),
                s.get("active", True),
                s["_stamp"],
            )
            for code, s in _created(changed)
        ],
    )


_ACCOUNT_SQL = _upsert(
    "accounts",
    ["id"],
    ["id", "username", "full_name", "unit_code", "role", "password_hash", "active", "updated_stamp"],
)


def project_accounts(conn: sqlite3.Connection, changed: Changed) -> None:
    conn.executemany(
        _ACCOUNT_SQL,
        [
            (
                entity,
                s["username"],
                s["full_name"],
                s["unit"],
                s["role"],
                s["password_hash"],
                s.get("active", True),
                s["_stamp"],
            )
            for entity, s in _created(changed)
        ],
    )


# --- dossiers -----------------------------------------------------------------------------------

_APPLICANT = APPLICANT  # schema.dossier.Registers' applicant_* fields
_DOSSIER_COLUMNS = (
    "id",
    "code",
    "portal_code",
    "procedure_code",
    "receiving_unit",
    "handling_unit",
    "channel",
    *_APPLICANT,
    "status",
    "received_at",
    "due_date",
    "processed_at",
    "closed_at",
    "fee",
    "documents",
    "digitised",
    "attachment_count",
    "conflict_count",
    "updated_stamp",
    "search",
)
_INSERT_DOSSIER_SQL = (
    f"INSERT INTO dossiers ({', '.join(_DOSSIER_COLUMNS)}) VALUES ({', '.join('?' * len(_DOSSIER_COLUMNS))})"
)
_STORED_DOSSIERS_SQL = (
    f"SELECT {', '.join(_DOSSIER_COLUMNS)} FROM dossiers WHERE id IN (SELECT value FROM json_each(?))"
)
_INDEXED = tuple(_DOSSIER_COLUMNS.index(c) for c in ("code", "applicant_name", "applicant_citizen_id"))
"""The columns the search index (dossier_fts) is made of."""
_ATTACHMENT_COUNT = _DOSSIER_COLUMNS.index("attachment_count")

_STEP_SQL = _upsert(
    "dossier_steps",
    ["dossier_id", "position"],
    [
        "dossier_id",
        "position",
        "stamp",
        "node",
        "seq",
        "at",
        "actor",
        "role",
        "action",
        "from_status",
        "to_status",
        "note",
        "handling_unit",
    ],
)
_STORED_STEPS_SQL = (
    "SELECT dossier_id, node, seq FROM dossier_steps "
    "WHERE dossier_id IN (SELECT value FROM json_each(?)) ORDER BY dossier_id, position"
)
_CHUNK = 500
# A late op can make a later step invalid, so a timeline may also get shorter.
_TRIM_STEPS_SQL = "DELETE FROM dossier_steps WHERE dossier_id = ? AND position >= ?"

_ATTACH_SQL = (
    "INSERT INTO attachments (dossier_id, sha256, name, mime, size, added_by, added_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dossier_id, sha256) DO UPDATE SET "
    "name = excluded.name, mime = excluded.mime, size = excluded.size, "
    "added_by = excluded.added_by, added_at = excluded.added_at "
    "WHERE (attachments.name, attachments.mime, attachments.size, attachments.added_by, "
    "attachments.added_at) IS NOT (excluded.name, excluded.mime, excluded.size, "
    "excluded.added_by, excluded.added_at)"
)
_PRUNE_ATTACHMENTS_SQL = (
    "DELETE FROM attachments WHERE dossier_id = ? AND sha256 NOT IN (SELECT value FROM json_each(?))"
)

# The trigger dossiers_indexed_changed dropped the index row of every dossier whose code, name
# or citizen id changed; this adds the missing ones (new dossiers included), leaves the rest.
_FTS_SQL = (
    "INSERT INTO dossier_fts (rowid, code, applicant_name, citizen_id) "
    "SELECT d.rid, ?, ?, ? FROM dossiers AS d WHERE d.id = ? "
    "AND NOT EXISTS (SELECT 1 FROM dossier_fts WHERE rowid = d.rid)"
)


def _search_columns(state: dict[str, Any]) -> tuple[str, str, str]:
    """(code, applicant name, citizen id) folded, as the FTS index holds them."""
    return (
        fold_text(state["code"]),
        fold_text(state["applicant_name"]),
        fold_text(state.get("applicant_citizen_id") or ""),
    )


def search_text(state: dict[str, Any], columns: tuple[str, str, str] | None = None) -> str:
    """The folded text a dossier is found by: code, applicant, citizen id, phone, portal code."""
    extra = (state.get("applicant_phone"), state.get("portal_code"))
    parts = (*(columns or _search_columns(state)), *(fold_text(p) for p in extra if p))
    return " ".join(part for part in parts if part)


def _dossier_row(entity: str, s: dict[str, Any], search: str) -> tuple[Any, ...]:
    return (
        entity,
        s["code"],
        s.get("portal_code"),
        s["procedure"],
        s["receiving_unit"],
        s["handling_unit"],
        s["channel"],
        *(s.get(name) for name in _APPLICANT),
        s["status"],
        s["received_at"],
        s.get("due_date"),
        s.get("processed_at"),
        s.get("closed_at"),
        s["fee"],
        _json(s["documents"]),
        s["digitised"],
        len(s["attachments"]),
        len(s.get("_conflicts") or ()),
        s["_stamp"],
        search,
    )


def _stored_steps(conn: sqlite3.Connection, ids: list[str]) -> dict[str, list[tuple[str, int]]]:
    stored: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for i in range(0, len(ids), _CHUNK):
        for dossier_id, node, seq in conn.execute(_STORED_STEPS_SQL, (_json(ids[i : i + _CHUNK]),)):
            stored[dossier_id].append((node, seq))
    return stored


def _project_steps(conn: sqlite3.Connection, dossiers: Changed) -> None:
    """Write each timeline from its first changed step on; usually that is only the new last one.

    A step is the fold of one op, so a stored step with the same (node, seq) at the same
    position is unchanged; reading those keys is much cheaper than rewriting every step.
    """
    stored = _stored_steps(conn, [entity for entity, _ in dossiers])
    writes: list[tuple[Any, ...]] = []
    trims: list[tuple[str, int]] = []
    for entity, s in dossiers:
        steps, old = s["steps"], stored.get(entity, [])
        first = 0
        for (node, seq), step in zip(old, steps, strict=False):
            if node != step["node"] or seq != step["seq"]:
                break
            first += 1
        writes.extend(
            (entity, position, step["stamp"], step["node"], step["seq"], step["at"], step["by"],
             step["role"], step["action"], step["from"], step["to"], step["note"],
             step["handling_unit"])
            for position, step in enumerate(steps[first:], start=first)
        )  # fmt: skip
        if len(old) > len(steps):
            trims.append((entity, len(steps)))
    conn.executemany(_STEP_SQL, writes)
    conn.executemany(_TRIM_STEPS_SQL, trims)


def _stored_dossiers(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    stored: dict[str, tuple[Any, ...]] = {}
    for i in range(0, len(ids), _CHUNK):
        for row in conn.execute(_STORED_DOSSIERS_SQL, (_json(ids[i : i + _CHUNK]),)):
            stored[row[0]] = row
    return stored


def _update_sql(columns: tuple[int, ...]) -> str:
    sets = ", ".join(f"{_DOSSIER_COLUMNS[c]} = ?" for c in columns)
    return f"UPDATE dossiers SET {sets} WHERE id = ?"


def project_dossiers(conn: sqlite3.Connection, changed: Changed) -> None:
    """Write each dossier's row, timeline, attachments and search entry.

    A row is compared with the one stored and only the columns that differ are written, grouped
    by which columns those are: SQLite rewrites an index only when its columns are in the
    UPDATE's SET list, and most ops change a column no index holds (an address, a fee) or the
    status (three of seven indexes). Rewriting every column of every touched dossier, as an
    upsert does, cost the city most of its merge time (docs/BENCHMARKS.md, issue 10)."""
    dossiers = _created(changed)
    if not dossiers:
        return
    stored = _stored_dossiers(conn, [entity for entity, _ in dossiers])
    inserts: list[tuple[Any, ...]] = []
    updates: dict[tuple[int, ...], list[tuple[Any, ...]]] = defaultdict(list)
    index: list[tuple[str, str, str, str]] = []
    attachments: list[tuple[str, dict[str, Any]]] = []
    for entity, s in dossiers:
        columns = _search_columns(s)
        row = _dossier_row(entity, s, search_text(s, columns))
        old = stored.get(entity)
        if old is None:
            inserts.append(row)
        else:
            differ = tuple(i for i, (new, was) in enumerate(zip(row, old, strict=True)) if new != was)
            if differ:
                updates[differ].append((*(row[i] for i in differ), entity))
        if old is None or any(old[i] != row[i] for i in _INDEXED):
            # New, or the trigger dossiers_indexed_changed just dropped its index row.
            index.append((*columns, entity))
        if s["attachments"] or (old is not None and old[_ATTACHMENT_COUNT]):
            attachments.append((entity, s))
    conn.executemany(_INSERT_DOSSIER_SQL, inserts)
    for differ, params in updates.items():
        conn.executemany(_update_sql(differ), params)
    _project_steps(conn, dossiers)
    conn.executemany(
        _ATTACH_SQL,
        [
            (entity, digest, a["name"], a["mime"], a["size"], a["by"], a["at"])
            for entity, s in attachments
            for digest, a in s["attachments"].items()
        ],
    )
    conn.executemany(
        _PRUNE_ATTACHMENTS_SQL, [(entity, _json(list(s["attachments"]))) for entity, s in attachments]
    )
    conn.executemany(_FTS_SQL, index)
