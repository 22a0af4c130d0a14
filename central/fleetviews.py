"""What the fleet dashboard says about each node, computed from fleet.db (:mod:`central.fleet`).

The pieces here are plain functions over plain data, so they test without a server:

- :func:`node_rows` turns the registry and the status table into one row per node, each with its
  alert, and sorts them worst first (:func:`severity`).
- :func:`staleness_by_day` turns the times of a node's successful syncs into "the longest it
  went without one" on each day: the lag-over-time chart of the node page.

What they read comes from :class:`central.fleet.FleetStore` (SQLite or PostgreSQL alike).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from central.fleet import FleetStore, Registration, Status
from edge.i18n import TIMEZONE

SILENT_HOURS = 6
"""Default of :attr:`FleetSettings.silent_hours`."""


@dataclass(frozen=True)
class FleetSettings:
    """The dashboard's settings (defaults; ``create_central_app`` takes another instance)."""

    silent_hours: int = SILENT_HOURS
    """A node not heard from for longer than this many hours is an alert (page and /metrics)."""
    attempts_per_page: int = 50
    """Rows of a node's attempt history per page."""
    chart_days: int = 14
    """Days shown by the node page's charts (ops per day, lag over time)."""
    routing_rows: int = 100
    """Dossiers listed on the routing queue page (the oldest; the rest are counted)."""
    backup_stale_hours: int = 24
    """A node whose last backup (as it reported it) is older than this is an alert."""

    @property
    def silent_ms(self) -> int:
        return self.silent_hours * 3_600_000


# --- the fleet table ---------------------------------------------------------------------------

BACKUP_STALE_S = FleetSettings.backup_stale_hours * 3600
"""Backups older than this (reported by the node) raise an alert: a dead disk would cost more
than a day of a commune's work."""

ALERT, ERRORING, REVOKED_KNOCKING, HEALTHY, REVOKED_QUIET = range(5)
"""Severity groups, worst first (see :func:`severity`)."""


@dataclass(frozen=True)
class NodeRow:
    node: str
    unit: str
    unit_name: str
    registered_ms: int
    revoked_ms: int | None
    status: Status
    alert: str | None
    """"never" (no authenticated request yet), "silent" (none for longer than the threshold),
    "no_backup" (never reported a backup), "backup" (its last backup is older than a day)."""
    error: str | None
    """The error worth showing: the city's latest refusal, else what the node reported."""
    error_ms: int | None
    error_by: str | None
    """"city" (central refused or failed a request) or "node" (the node's own last error)."""
    erroring: bool
    """The node's latest news is an error: a refusal after its last successful sync, or an
    error it reported at its last hello."""
    central_oldest_ms: int | None = None
    """When the oldest op waiting for the node at the city was written (None: none or unknown)."""

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None

    @property
    def lag_ops(self) -> int:
        return (self.status.edge_waiting or 0) + (self.status.central_waiting or 0)


def _error(status: Status) -> tuple[str | None, int | None, str | None, bool]:
    refused_since_ok = status.last_error_ms is not None and status.last_error_ms > (status.last_ok_ms or 0)
    if refused_since_ok or (status.last_error and not status.reported_error):
        return status.last_error, status.last_error_ms, "city", refused_since_ok
    if status.reported_error:
        return status.reported_error, status.last_contact_ms, "node", True
    return None, None, None, False


def node_row(
    registration: Registration,
    status: Status,
    unit_name: str,
    now_ms: int,
    silent_ms: int,
    central_oldest_ms: int | None = None,
) -> NodeRow:
    alert = None
    if not registration.revoked:
        if status.last_contact_ms is None:
            alert = "never"
        elif now_ms - status.last_contact_ms > silent_ms:
            alert = "silent"
        elif status.backup_age_s is None:
            alert = "no_backup"  # a box that never said it backs up may lose everything with its disk
        elif status.backup_age_s > BACKUP_STALE_S:
            alert = "backup"
    error, error_ms, error_by, erroring = _error(status)
    return NodeRow(
        node=registration.node,
        unit=registration.unit,
        unit_name=unit_name,
        registered_ms=registration.registered_ms,
        revoked_ms=registration.revoked_ms,
        status=status,
        alert=alert,
        error=error,
        error_ms=error_ms,
        error_by=error_by,
        erroring=erroring,
        central_oldest_ms=central_oldest_ms,
    )


def severity(row: NodeRow, now_ms: int, silent_ms: int) -> int:
    """The row's group, worst first: alerts (silent, never synced), erroring nodes, revoked nodes
    still knocking (refused within the silent window: a box that should be off is not), healthy
    nodes (ordered by lag), and last revoked nodes that went quiet, which need nothing more."""
    if row.revoked:
        knocking = row.status.last_error_ms is not None and now_ms - row.status.last_error_ms <= silent_ms
        return REVOKED_KNOCKING if knocking else REVOKED_QUIET
    if row.alert:
        return ALERT
    return ERRORING if row.erroring else HEALTHY


def sort_key(row: NodeRow, now_ms: int, silent_ms: int) -> tuple[int, int, int, str, str]:
    """Worst first: the group, then more ops waiting, then longer since the last success."""
    since_ok = now_ms - (row.status.last_ok_ms or row.registered_ms)
    return (severity(row, now_ms, silent_ms), -row.lag_ops, -since_ok, row.unit_name, row.node)


def node_rows(
    registrations: Iterable[Registration],
    statuses: Iterable[Status],
    unit_names: Mapping[str, str],
    now_ms: int,
    silent_ms: int,
    central_oldest: Mapping[str, int | None] | None = None,
) -> list[NodeRow]:
    """One row per registered node, worst first."""
    by_node = {status.node: status for status in statuses}
    oldest = central_oldest or {}
    rows = [
        node_row(
            r,
            by_node.get(r.node) or Status(r.node),
            unit_names.get(r.unit, r.unit),
            now_ms,
            silent_ms,
            oldest.get(r.node),
        )
        for r in registrations
    ]
    return sorted(rows, key=lambda row: sort_key(row, now_ms, silent_ms))


# --- what the node page reads of the fleet ------------------------------------------------------


def day_start_ms(day: date) -> int:
    return int(datetime.combine(day, time.min, TIMEZONE).timestamp() * 1000)


def days_ending(today: date, count: int) -> list[date]:
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def ops_per_day(fleet: FleetStore, node: str, days: Sequence[date]) -> list[tuple[int, int]]:
    """(ops received from the node, ops sent to it) on each of ``days`` (consecutive days of
    Vietnam, which keeps no daylight saving time: each is 24 hours long)."""
    if not days:
        return []
    return fleet.traffic(node, day_start_ms(days[0]), len(days))


def staleness_by_day(
    ok_ms: Sequence[int], baseline_ms: int | None, days: Sequence[tuple[int, int]], now_ms: int
) -> list[float | None]:
    """For each day ``[start, end)``: the longest time, in hours, that the node had gone without
    a successful sync at any moment of that day (up to ``now_ms``).

    ``ok_ms``: the sorted times of successful syncs; ``baseline_ms``: the last one before them,
    or when the node was registered if it never synced before. A day that ended before the
    baseline, or starts after now, has no value (None)."""
    hours: list[float | None] = []
    for start, end in days:
        stop = min(end, now_ms)
        if stop <= start or (baseline_ms is not None and stop <= baseline_ms):
            hours.append(None)
            continue
        first = bisect.bisect_left(ok_ms, start)
        last = bisect.bisect_left(ok_ms, stop)
        inside = ok_ms[first:last]
        previous = ok_ms[first - 1] if first > 0 else baseline_ms
        worst = 0
        # Staleness grows until each success: the worst moments are just before each success
        # of the day, and the end of the day.
        for at in inside:
            if previous is not None:
                worst = max(worst, at - previous)
            previous = at
        if previous is not None:
            worst = max(worst, stop - previous)
        else:
            hours.append(None)
            continue
        hours.append(round(worst / 3_600_000, 2))
    return hours
