"""Questions the dashboard asks the city replica (``motcua.db``) on a read-only connection.

- :func:`routing_queue`: non-territorial dossiers whose ops have not yet reached the handling
  unit's node.
- :func:`oldest_waiting_ms`: when the oldest op waiting at the city for a node was written.
- :func:`unit_indicators`: the Decision 766 indicators per unit.

The first two ask the city replica through sync's API (``Replica.delivery_positions``,
``Replica.first_waiting``); only the domain's ``dossiers`` table is read here directly.

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
from datetime import date

from edge.queries import unit_names
from schema.indicators import Counts, indicators
from sync.feed import EVERYWHERE
from sync.replica import Replica


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
    conn: sqlite3.Connection, replica: Replica, targets: Sequence[Target], limit: int
) -> tuple[list[RoutedDossier], int]:
    """Undelivered non-territorial dossiers, oldest received first (at most ``limit``) and how
    many there are in all. A handling unit without a live node works on the city's own pages:
    nothing waits to be delivered there, so its dossiers are not listed."""
    by_unit = {t.unit: t for t in targets}
    if not by_unit:
        return [], 0
    marks = ",".join("?" * len(by_unit))
    candidates = conn.execute(
        f"""SELECT id, code, procedure_code, receiving_unit, handling_unit, status, received_at
            FROM dossiers WHERE handling_unit != receiving_unit AND handling_unit IN ({marks})
            ORDER BY received_at, id""",
        sorted(by_unit),
    ).fetchall()
    positions = replica.delivery_positions(
        "dossier", [(row[0], row[4], by_unit[row[4]].node) for row in candidates]
    )
    waiting = []
    for row in candidates:
        target = by_unit[row[4]]
        position = positions.get((row[0], row[4], target.node), 0)
        if position > target.cursor:
            waiting.append(
                RoutedDossier(
                    id=row[0],
                    code=row[1],
                    procedure_code=row[2],
                    receiving_unit=row[3],
                    handling_unit=row[4],
                    status=int(row[5]),
                    received_at=int(row[6]),
                    node=target.node,
                    cursor=target.cursor,
                    sent=target.served_cursor >= position,
                    position=position,
                )
            )
    return waiting[:limit], len(waiting)


def oldest_waiting_ms(replica: Replica, unit: str, cursor: int, node: str) -> int | None:
    """The HLC wall time of the first op after ``cursor`` in the scope of ``unit`` that ``node``
    did not write: how long the oldest change waiting for the node has existed (None: none)."""
    op = replica.first_waiting({unit, EVERYWHERE}, cursor, exclude=node)
    return None if op is None else op.hlc.wall


# --- Decision 766 indicators per unit ----------------------------------------------------------

BY_UNIT = {"receiving": "received", "handling": "handled"}
"""The page's ``by`` and the basis it means (:data:`schema.indicators.BASES`)."""


@dataclass(frozen=True)
class UnitIndicators:
    """A unit's name and its figures (the box's own report's :class:`~schema.indicators.Counts`)."""

    unit: str
    name: str
    counts: Counts


def unit_indicators(conn: sqlite3.Connection, year: int, today: date, by: str) -> list[UnitIndicators]:
    """Per unit, the Decision 766 indicators of the dossiers received in ``year``: the same
    definitions and query as the unit's own report (:mod:`schema.indicators`), on the basis
    ``by`` ("receiving": received at the unit, "handling": handled by it). Units in name order."""
    found = indicators(conn, date(year, 1, 1), date(year, 12, 31), today, BY_UNIT[by], ("unit",))
    names = unit_names(conn, [unit for (unit,), _ in found])
    rows = [UnitIndicators(unit, names.get(unit, unit), counts) for (unit,), counts in found]
    return sorted(rows, key=lambda u: (u.name, u.unit))
