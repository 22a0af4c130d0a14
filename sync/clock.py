"""Hybrid logical clock.

A stamp is (wall milliseconds, counter); ops order by (stamp, origin node). The pure functions
:func:`tick` and :func:`observe` are the whole algorithm; :class:`Clock` wraps them with a wall
source, a calibration offset and the drift it has seen.

Old boxes lose their CMOS battery and wake up in the year 2000. The HLC keeps causality anyway:
its stamps never go backwards, whatever the wall clock says, because a node's last stamp is
persisted with its ops and reloaded at start. A remote stamp further ahead than ``max_drift_ms``
of what this node knows the time to be is refused (:class:`ClockDriftError`) so that one broken
peer cannot drag every clock into the future.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from sync.errors import ClockDriftError

COUNTER_BITS = 16
MAX_COUNTER = (1 << COUNTER_BITS) - 1
DEFAULT_MAX_DRIFT_MS = 10 * 60 * 1000


class Stamp(NamedTuple):
    wall: int
    counter: int

    def pack(self) -> int:
        """One sortable integer (fits SQLite's signed 64-bit INTEGER until year 6429)."""
        return (self.wall << COUNTER_BITS) | self.counter

    @classmethod
    def unpack(cls, packed: int) -> Stamp:
        return cls(packed >> COUNTER_BITS, packed & MAX_COUNTER)


ZERO = Stamp(0, 0)


def tick(last: Stamp, wall_ms: int) -> Stamp:
    """The stamp for a local event: strictly after ``last``, as close to ``wall_ms`` as allowed."""
    if wall_ms > last.wall:
        return Stamp(wall_ms, 0)
    if last.counter < MAX_COUNTER:
        return Stamp(last.wall, last.counter + 1)
    # 65,536 events in one millisecond: borrow the next millisecond rather than wrap.
    return Stamp(last.wall + 1, 0)


def observe(last: Stamp, remote: Stamp, wall_ms: int, max_drift_ms: int) -> Stamp:
    """The stamp after receiving ``remote``: after both ``last`` and ``remote``.

    Raises :class:`ClockDriftError` if ``remote`` is more than ``max_drift_ms`` ahead of the
    best time this node knows (its wall clock, or its last stamp if the wall clock is behind).
    """
    known = max(wall_ms, last.wall)
    drift = remote.wall - known
    if drift > max_drift_ms:
        raise ClockDriftError(
            f"remote clock is {drift / 1000:.0f} s ahead of this node (allowed {max_drift_ms // 1000} s)",
            drift_ms=drift,
        )
    top = max(last, remote)
    return tick(top, wall_ms)


def system_wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock:
    """A node's HLC: a wall source plus calibration offset, the last stamp, the drift seen."""

    def __init__(
        self,
        last: Stamp = ZERO,
        *,
        wall: Callable[[], int] = system_wall_ms,
        offset_ms: int = 0,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
    ) -> None:
        self.last = last
        self._wall = wall
        self.offset_ms = offset_ms
        self.max_drift_ms = max_drift_ms
        self.observed_drift_ms = 0
        self._calibration: tuple[int, float] | None = None
        """(reference ms, monotonic s) of the last calibration in this process."""

    def wall_ms(self) -> int:
        return self._wall() + self.offset_ms

    def now(self) -> Stamp:
        self.last = tick(self.last, self.wall_ms())
        return self.last

    def observe(self, remote: Stamp) -> Stamp:
        wall = self.wall_ms()
        self.observed_drift_ms = remote.wall - wall
        self.last = observe(self.last, remote, wall, self.max_drift_ms)
        return self.last

    def advance_to(self, remote: Stamp) -> None:
        """Take ``remote`` into account without checking drift (for ops already verified)."""
        if remote > self.last:
            self.last = remote

    def rewind_to(self, stamp: Stamp) -> None:
        """Set the last stamp back to ``stamp``: only after the ops stamped above it were
        re-stamped (:meth:`sync.replica.Replica.restamp_tail`), so that no op held is above it."""
        self.last = stamp

    def calibrate(self, reference_ms: int) -> int:
        """Adopt a trusted reference time (the city's) and return the correction in ms."""
        self.offset_ms = reference_ms - self._wall()
        self._calibration = (reference_ms, time.monotonic())
        return self.offset_ms

    @property
    def calibrated(self) -> bool:
        """Whether a trusted reference set the offset since this clock was made (this process)."""
        return self._calibration is not None

    def moved_since_calibration_ms(self) -> int:
        """How far the wall clock moved since the last calibration beyond the time that really
        passed (the monotonic clock): someone set it forward (positive) or back. 0 if never
        calibrated."""
        if self._calibration is None:
            return 0
        reference_ms, at = self._calibration
        return self.wall_ms() - reference_ms - int((time.monotonic() - at) * 1000)

    def skew_ms(self, reference_ms: int) -> int:
        """How far this node's uncorrected wall clock is from a reference (positive: behind)."""
        return reference_ms - self._wall()
