"""The working-day calendar that legal deadlines are counted in.

A working day is a Monday to Friday that is not a Vietnamese public holiday, or a Saturday or
Sunday that the government declared a make-up working day (``holidays`` lists them, e.g.
Saturday 22 Aug 2026, worked in exchange for Monday 31 Aug). Public holidays come from the
``holidays`` package, lunar New Year (Tết) and substituted days off included.

Counting rule (:func:`add_working_days`): the deadline of an ``n``-working-day procedure is the
``n``-th working day strictly after the day the dossier was received. A dossier received on a
non-working day (a Saturday desk, an online submission during Tết) is therefore counted from
the next working day, which is its day 1. So ``working_days_between(d, add_working_days(d, n))
== n`` for every day ``d``.

Pure: no clock. The holiday set of each year is computed once and cached.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

_DAY = timedelta(days=1)


@lru_cache(maxsize=256)
def _year(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off that fall on weekdays or weekends, weekend days that are worked) of ``year``."""
    calendar = holidays.country_holidays("VN", years=year)
    days_off = frozenset(day for day in calendar if day.year == year)
    worked = frozenset(day for day in calendar.weekend_workdays if day.year == year)
    return days_off, worked


def holidays_of(year: int) -> frozenset[date]:
    """Vietnam's public holidays (and substituted days off) in ``year``."""
    return _year(year)[0]


def is_working_day(day: date) -> bool:
    days_off, worked = _year(day.year)
    if day in worked:
        return True
    return day.weekday() < 5 and day not in days_off


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day strictly after ``start`` (``start`` itself if ``n`` is 0).

    Raises ValueError for a negative ``n``: deadlines only run forward.
    """
    if n < 0:
        raise ValueError(f"cannot add a negative number of working days ({n})")
    day = start
    while n:
        day += _DAY
        if is_working_day(day):
            n -= 1
    return day


def working_days_between(a: date, b: date) -> int:
    """How many working days fall in (a, b]; negative when ``b`` is before ``a``.

    A dossier due on ``a`` and returned on ``b`` is ``working_days_between(a, b)`` days late.
    """
    if b < a:
        return -working_days_between(b, a)
    count, day = 0, a
    while day < b:
        day += _DAY
        count += is_working_day(day)
    return count
