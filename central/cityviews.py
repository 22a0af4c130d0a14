"""Questions the dashboard asks the city replica (``motcua.db``) on a read-only connection.

- :func:`routing_queue`: non-territorial dossiers whose ops have not yet reached the handling
  unit's node.
- :func:`oldest_waiting_ms`: when the oldest op waiting at the city for a node was written.
- :func:`unit_indicators`: the Decision 766 indicators per unit.

The first two read the hub's feed tables (``sync_feed``, ``sync_scope``, ``sync_node``,
``sync_op``), which DESIGN.md keeps behind sync's API. They are read-only, live only here, and
belong in :mod:`sync.feed` as ``Replica`` methods ("highest feed position of an entity's ops
not authored by node N", "the first op of a scope after a cursor"); until then this module is
the one place to change if those tables change.

A dossier is *delivered* to a node when the node's cursor, as it reported it at its last hello
(``node_status.cursor``), is at or past both the highest feed position of the dossier's ops
that the node did not write itself and the position at which the dossier entered the handling
unit's scope (from there the node's pull brings the dossier's whole history). A dossier that
the node's last pull handed out (``served_cursor``) but whose receipt the node has not yet
confirmed with a hello stays listed, marked as sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from edge.i18n import TIMEZONE
from edge.queries import OPEN_STATUSES
from sync import ops as opcodec
from sync.feed import EVERYWHERE


@dataclass(frozen=True)
class Target:
    """A live (not revoked) node that dossiers are delivered to."""

    node: str
    unit: str
    cursor: int
    served_cursor: int


@dataclass(frozen=True)
class RoutedDossier:
    id: str
    code: str
    procedure_code: str
    receiving_unit: str
    handling_unit: str
    status: int
    received_at: int
    node: str
    """The handling unit's node that has not got it yet."""
    position: int
    """The feed position the node's cursor must reach."""
    cursor: int
    sent: bool
    """The node's last pull handed it out; its next hello will confirm it."""


def routing_queue(
    conn: sqlite3.Connection, targets: Sequence[Target], limit: int
) -> tuple[list[RoutedDossier], int]:
    """Undelivered non-territorial dossiers, oldest received first (at most ``limit``) and how
    many there are in all. A handling unit without a live node works on the city's own pages:
    nothing waits to be delivered there, so its dossiers are not listed."""
    if not targets:
        return [], 0
    values = ",".join("(?,?,?,?)" for _ in targets)
    params: list[object] = []
    for t in targets:
        params.extend((t.node, t.unit, t.cursor, t.served_cursor))
    query = f"""
        WITH target (node, unit, cursor, served) AS (VALUES {values}),
        waiting AS (
            SELECT d.id, d.code, d.procedure_code, d.receiving_unit, d.handling_unit, d.status,
                   d.received_at, t.node, t.cursor, t.served,
                   max(
                       coalesce((SELECT max(f.pos) FROM sync_feed AS f
                                 WHERE f.kind = 'dossier' AND f.entity = d.id
                                   AND f.node != coalesce(
                                       (SELECT n.id FROM sync_node AS n WHERE n.node = t.node), -1)), 0),
                       coalesce((SELECT s.since_pos FROM sync_scope AS s
                                 WHERE s.kind = 'dossier' AND s.entity = d.id
                                   AND s.key = d.handling_unit), 0)
                   ) AS position
            FROM dossiers AS d JOIN target AS t ON t.unit = d.handling_unit
            WHERE d.handling_unit != d.receiving_unit
        )
        SELECT * FROM waiting WHERE position > cursor"""
    total = int(conn.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0])
    rows = conn.execute(query + " ORDER BY received_at, id LIMIT ?", [*params, limit]).fetchall()
    items = [
        RoutedDossier(
            id=row[0],
            code=row[1],
            procedure_code=row[2],
            receiving_unit=row[3],
            handling_unit=row[4],
            status=int(row[5]),
            received_at=int(row[6]),
            node=row[7],
            cursor=int(row[8]),
            sent=int(row[9]) >= int(row[10]),
            position=int(row[10]),
        )
        for row in rows
    ]
    return items, total


def oldest_waiting_ms(conn: sqlite3.Connection, unit: str, cursor: int, node: str) -> int | None:
    """The HLC wall time of the first op after ``cursor`` in the scope of ``unit`` that ``node``
    did not write: how long the oldest change waiting for the node has existed (None: none)."""
    row = conn.execute(
        """SELECT o.body FROM sync_feed AS f
           JOIN sync_op AS o ON o.node = f.node AND o.seq = f.seq
           WHERE f.pos > ?
             AND f.node != coalesce((SELECT id FROM sync_node WHERE node = ?), -1)
             AND EXISTS (SELECT 1 FROM sync_scope AS s
                         WHERE s.kind = f.kind AND s.entity = f.entity AND s.key IN (?, ?))
           ORDER BY f.pos LIMIT 1""",
        (max(0, cursor), node, unit, EVERYWHERE),
    ).fetchone()
    if row is None:
        return None
    return opcodec.decode(row[0]).hlc.wall


# --- Decision 766 indicators per unit ----------------------------------------------------------

BY_UNIT = {"receiving": "receiving_unit", "handling": "handling_unit"}
"""Which unit a dossier counts for: the one that received it, or the one that handles it."""


@dataclass(frozen=True)
class UnitIndicators:
    unit: str
    name: str
    received: int
    on_time: int
    overdue: int
    digitised: int
    online: int

    def share(self, part: int) -> float | None:
        return part / self.received if self.received else None


def _ms(day: date, end: bool = False) -> int:
    moment = datetime.combine(day, time.max if end else time.min, TIMEZONE)
    return int(moment.timestamp() * 1000)


def unit_indicators(conn: sqlite3.Connection, year: int, today: date, by: str) -> list[UnitIndicators]:
    """Per unit, the dossiers received in ``year`` with the same rules as the unit's own report
    (:func:`edge.queries.report`): on time, overdue (processed late, or open past due today),
    digitised (scans attached), received online. Units in name order."""
    column = BY_UNIT[by]
    marks = ",".join("?" * len(OPEN_STATUSES))
    done = "date(d.processed_at / 1000, 'unixepoch', '+7 hours')"
    rows = conn.execute(
        f"""SELECT d.{column}, coalesce(u.name, d.{column}), count(*),
               sum(d.processed_at IS NOT NULL AND d.due_date IS NOT NULL AND {done} <= d.due_date),
               sum((d.processed_at IS NOT NULL AND {done} > d.due_date)
                   OR (d.processed_at IS NULL AND d.status IN ({marks}) AND d.due_date < ?)),
               sum(d.digitised OR d.attachment_count > 0),
               sum(d.channel = 'online')
        FROM dossiers AS d LEFT JOIN units AS u ON u.code = d.{column}
        WHERE d.received_at BETWEEN ? AND ?
        GROUP BY 1 ORDER BY 2, 1""",
        [*OPEN_STATUSES, today.isoformat(), _ms(date(year, 1, 1)), _ms(date(year, 12, 31), end=True)],
    ).fetchall()
    return [UnitIndicators(str(r[0]), str(r[1]), *(int(v or 0) for v in r[2:])) for r in rows]
