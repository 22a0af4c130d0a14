"""Hybrid logical clock: stamps never go backwards, whatever the wall clock does."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from toydoc import FakeWall, open_replica, write

from sync.clock import MAX_COUNTER, ZERO, Clock, Stamp, observe, tick
from sync.errors import ClockDriftError
from sync.identity import Identity

WALL = st.integers(min_value=0, max_value=1 << 46)
STAMPS = st.builds(Stamp, WALL, st.integers(min_value=0, max_value=MAX_COUNTER))
YEAR_2000_MS = int(dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
NOW_MS = int(dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)


@given(STAMPS)
def test_stamp_pack_unpack_round_trip(stamp: Stamp) -> None:
    packed = stamp.pack()
    assert Stamp.unpack(packed) == stamp
    assert 0 <= packed < 1 << 63  # fits SQLite's signed INTEGER


@given(STAMPS, STAMPS)
def test_packed_order_is_stamp_order(a: Stamp, b: Stamp) -> None:
    assert (a < b) == (a.pack() < b.pack())


@given(st.lists(WALL, min_size=1, max_size=50), STAMPS)
def test_tick_is_strictly_increasing_under_any_wall_readings(walls: list[int], start: Stamp) -> None:
    last = start
    for wall in walls:
        nxt = tick(last, wall)
        assert nxt > last
        assert nxt.wall >= wall  # never behind the wall clock either
        assert nxt.counter <= MAX_COUNTER
        last = nxt


def test_tick_borrows_the_next_millisecond_when_the_counter_is_full() -> None:
    assert tick(Stamp(5, MAX_COUNTER), 5) == Stamp(6, 0)
    assert tick(Stamp(5, 3), 4) == Stamp(5, 4)
    assert tick(Stamp(5, 3), 9) == Stamp(9, 0)


@given(STAMPS, STAMPS, WALL)
def test_observe_is_after_both_inputs(last: Stamp, remote: Stamp, wall: int) -> None:
    got = observe(last, remote, wall, max_drift_ms=1 << 50)
    assert got > last
    assert got > remote


@given(STAMPS, WALL, st.integers(min_value=0, max_value=10**7), st.integers(min_value=1, max_value=10**7))
def test_observe_refuses_a_remote_too_far_ahead(last: Stamp, wall: int, max_drift: int, extra: int) -> None:
    known = max(wall, last.wall)
    remote = Stamp(known + max_drift + extra, 0)
    with pytest.raises(ClockDriftError) as info:
        observe(last, remote, wall, max_drift)
    assert info.value.drift_ms == max_drift + extra
    assert info.value.status == 409
    # exactly at the limit is still accepted
    assert observe(last, Stamp(known + max_drift, 0), wall, max_drift) > last


def test_clock_observe_records_drift_and_keeps_last_on_refusal() -> None:
    wall = FakeWall(NOW_MS)
    clock = Clock(wall=wall, max_drift_ms=1000)
    before = clock.now()
    with pytest.raises(ClockDriftError) as info:
        clock.observe(Stamp(NOW_MS + 5000, 0))
    assert info.value.drift_ms == 5000
    assert clock.observed_drift_ms == 5000
    assert clock.last == before
    assert clock.observe(Stamp(NOW_MS + 500, 7)) > Stamp(NOW_MS + 500, 7)


def test_clock_whose_wall_jumps_back_to_2000_keeps_increasing() -> None:
    wall = FakeWall(NOW_MS)
    clock = Clock(wall=wall)
    stamps = [clock.now() for _ in range(3)]
    wall.ms = YEAR_2000_MS  # CMOS battery died
    stamps += [clock.now() for _ in range(MAX_COUNTER + 10)]  # more than one counter's worth
    wall.ms = NOW_MS + 10
    stamps.append(clock.now())
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert stamps[-1].wall >= NOW_MS + 10


def test_calibrate_adopts_the_reference_time() -> None:
    wall = FakeWall(YEAR_2000_MS)
    clock = Clock(wall=wall)
    assert clock.skew_ms(NOW_MS) == NOW_MS - YEAR_2000_MS
    assert clock.calibrate(NOW_MS) == NOW_MS - YEAR_2000_MS
    assert clock.wall_ms() == NOW_MS
    assert clock.now().wall == NOW_MS
    # with the correction the drift check uses the city's time, not the broken one
    assert clock.observe(Stamp(NOW_MS + 1000, 0)) > Stamp(NOW_MS + 1000, 0)


def test_advance_to_never_moves_backwards() -> None:
    clock = Clock(Stamp(100, 5), wall=FakeWall(0))
    clock.advance_to(Stamp(50, 0))
    assert clock.last == Stamp(100, 5)
    clock.advance_to(Stamp(10**12, 0))  # no drift check for ops already verified
    assert clock.last == Stamp(10**12, 0)


def test_replica_reopened_after_backward_jump_issues_later_stamps(tmp_path) -> None:
    ident = Identity.generate("u1")
    wall = FakeWall(NOW_MS)
    r = open_replica(tmp_path / "r.db", ident, wall)
    ops = [write(r, "d1", "create", {"title": "a"}), write(r, "d1", "set", {"title": "b"})]
    r.close()
    wall.ms = YEAR_2000_MS  # power cut, then the box boots in the year 2000
    r = open_replica(tmp_path / "r.db", ident, FakeWall(YEAR_2000_MS))
    try:
        later = write(r, "d1", "set", {"title": "c"})
        assert later.stamp > ops[-1].stamp
        assert r.state("doc", "d1")["title"] == "c"  # the new write wins, not the older one
    finally:
        r.close()


def test_zero_is_before_every_tick() -> None:
    assert tick(ZERO, 0) > ZERO
