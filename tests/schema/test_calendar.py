from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.calendar import add_working_days, holidays_of, is_working_day, working_days_between

days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))


def test_tet_2026_is_off():
    # Lunar New Year 2026 is Tuesday 17 February; the holiday runs Monday 16 to Friday 20.
    assert date(2026, 2, 17) in holidays_of(2026)
    for day in range(16, 21):
        assert not is_working_day(date(2026, 2, day))
    assert is_working_day(date(2026, 2, 13))  # Friday before
    assert is_working_day(date(2026, 2, 23))  # Monday after


def test_weekends_and_fixed_holidays_are_off():
    assert not is_working_day(date(2025, 10, 4))  # Saturday
    assert not is_working_day(date(2025, 10, 5))  # Sunday
    assert is_working_day(date(2025, 10, 6))  # Monday
    assert not is_working_day(date(2025, 9, 2))  # National Day
    assert not is_working_day(date(2026, 4, 30))  # Reunification Day
    assert not is_working_day(date(2026, 5, 1))  # Labour Day


def test_a_declared_make_up_saturday_is_worked():
    # 2026: Monday 31 Aug is off, worked on Saturday 22 Aug instead.
    assert is_working_day(date(2026, 8, 22))
    assert not is_working_day(date(2026, 8, 31))
    assert add_working_days(date(2026, 8, 21), 1) == date(2026, 8, 22)


def test_across_a_weekend():
    assert add_working_days(date(2025, 10, 3), 1) == date(2025, 10, 6)  # Fri -> Mon
    assert add_working_days(date(2025, 10, 3), 5) == date(2025, 10, 10)
    assert add_working_days(date(2025, 10, 6), 3) == date(2025, 10, 9)


def test_across_tet():
    assert add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)
    # Residence registration (7 working days) received Thursday 12 Feb 2026:
    # Fri 13, Mon 23, Tue 24, Wed 25, Thu 26, Fri 27, Mon 2 Mar.
    assert add_working_days(date(2026, 2, 12), 7) == date(2026, 3, 2)


def test_across_national_day_2025():
    # Mon 1 and Tue 2 Sep 2025 are off.
    assert add_working_days(date(2025, 8, 29), 1) == date(2025, 9, 3)


def test_received_on_a_non_working_day_counts_from_the_next_working_day():
    assert add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 23)  # Saturday in Tết
    assert add_working_days(date(2025, 10, 4), 2) == date(2025, 10, 7)  # Saturday
    assert add_working_days(date(2025, 10, 4), 0) == date(2025, 10, 4)


def test_negative_days_are_refused():
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2025, 10, 3), -1)


def test_working_days_between():
    assert working_days_between(date(2026, 2, 13), date(2026, 2, 23)) == 1
    assert working_days_between(date(2026, 2, 23), date(2026, 2, 13)) == -1
    assert working_days_between(date(2026, 2, 13), date(2026, 2, 13)) == 0
    assert working_days_between(date(2025, 10, 3), date(2025, 10, 10)) == 5


@given(days, st.integers(min_value=1, max_value=60))
def test_add_working_days_lands_on_a_working_day_n_days_on(day, n):
    due = add_working_days(day, n)
    assert is_working_day(due)
    assert due > day
    assert working_days_between(day, due) == n
    assert working_days_between(due, day) == -n
    # ... and it is the first such day: the day before has one working day fewer.
    assert working_days_between(day, due - timedelta(days=1)) == n - 1


@given(days)
def test_zero_days_is_the_start(day):
    assert add_working_days(day, 0) == day
