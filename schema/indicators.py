"""Decision 766 indicators: one written definition of each, one query for the box and the city.

The commune's box and the city's dashboard both call :func:`indicators`, so the figures of a
unit are the same wherever they are read, once the box has synced.

Which unit a dossier counts for, the *basis* (the pages say which one they show):

``received``  **received at** the unit: its receiving unit (tiếp nhận tại). A dossier received
              at Ninh Kiều and routed to Cái Khế counts for Ninh Kiều only.
``handled``   **handled by** the unit: its handling unit (giải quyết bởi). The same dossier
              counts for Cái Khế only.

A box holds its unit's dossiers *and* those routed to it, so "every dossier on the box" is
neither basis: it counted the routed ones twice across the province (174 "received" at a ward
that had received 159).

Over the dossiers received in the period (by their day of receipt, Vietnam time):

``received``   all of them.
``on_time``    processed (result ready) on or before the due date.
``overdue``    processed after the due date, or still open past it today.
``digitised``  with scans attached, or marked digitised.
``online``     received online (filed on the national public service portal); the portal
               reports these itself too.

A dossier with neither outcome yet (not yet due, or closed without a result: refused,
withdrawn) is in ``received`` only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from schema.status import DEADLINE_RUNNING

BASES = {"received": "receiving_unit", "handled": "handling_unit"}
"""The basis and the dossier column that names the unit a dossier counts for."""

GROUPS = {
    "unit": "d.{unit}",
    "procedure": "d.procedure_code",
    "month": "strftime('%Y-%m', d.received_at / 1000, 'unixepoch', '+7 hours')",
}
"""What the figures may be grouped by: the unit (of the basis), the procedure, the month received."""

_TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
_RUNNING = tuple(sorted(int(s) for s in DEADLINE_RUNNING))


@dataclass(frozen=True)
class Counts:
    received: int
    on_time: int
    overdue: int
    digitised: int
    online: int

    def share(self, part: int) -> float | None:
        return part / self.received if self.received else None

    @property
    def unfinished(self) -> int:
        """Neither on time nor overdue: not yet due, or closed without a result."""
        return self.received - self.on_time - self.overdue

    @classmethod
    def total(cls, many: Iterable[Counts]) -> Counts:
        """The sum of ``many`` (zeros when there are none): a region's figures from its units'."""
        sums = [0, 0, 0, 0, 0]
        for counts in many:
            for i, value in enumerate(astuple(counts)):
                sums[i] += value
        return cls(*sums)


def _ms(day: date, end: bool = False) -> int:
    return int(datetime.combine(day, time.max if end else time.min, _TIMEZONE).timestamp() * 1000)


def indicators(
    conn: sqlite3.Connection,
    first: date,
    last: date,
    today: date,
    basis: str,
    group: Sequence[str],
    units: Sequence[str] | None = None,
) -> list[tuple[tuple[str, ...], Counts]]:
    """The indicators of the dossiers received from ``first`` to ``last`` (inclusive), for
    ``units`` on ``basis`` (None: every unit), grouped by ``group`` (keys of :data:`GROUPS`),
    ordered by the group's keys. Overdue is judged as of ``today``."""
    column = BASES[basis]
    keys = [GROUPS[g].format(unit=column) for g in group]
    done = "date(d.processed_at / 1000, 'unixepoch', '+7 hours')"  # the day processed, in Vietnam
    marks = ",".join("?" * len(_RUNNING))
    where = ["d.received_at BETWEEN ? AND ?"]
    params: list[object] = [_ms(first), _ms(last, end=True)]
    if units is not None:
        where.append(f"d.{column} IN ({','.join('?' * len(units))})")
        params.extend(units)
    select = ", ".join([*keys, ""]) if keys else ""
    rows = conn.execute(
        f"""SELECT {select}count(*),
               sum(d.processed_at IS NOT NULL AND d.due_date IS NOT NULL AND {done} <= d.due_date),
               sum((d.processed_at IS NOT NULL AND {done} > d.due_date)
                   OR (d.processed_at IS NULL AND d.status IN ({marks}) AND d.due_date < ?)),
               sum(d.digitised OR d.attachment_count > 0),
               sum(d.channel = 'online')
        FROM dossiers AS d
        WHERE {" AND ".join(where)}
        {"GROUP BY " + ", ".join(str(i + 1) for i in range(len(keys))) if keys else ""}
        {"ORDER BY " + ", ".join(str(i + 1) for i in range(len(keys))) if keys else ""}""",
        [*_RUNNING, today.isoformat(), *params],
    ).fetchall()
    n = len(keys)
    return [
        (tuple(str(v) for v in row[:n]), Counts(*(int(v or 0) for v in row[n:])))
        for row in rows
        if row[n]  # no group and no dossier: SQLite still answers one row of zeros
    ]
