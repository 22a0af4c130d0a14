"""Is this box's clock to be trusted for a due date? (DESIGN.md: clocks lie on old boxes.)

A clock is suspect when it reads a year before motcua existed (a dead CMOS battery boots in
2000), when it is behind the newest stamp this node has already seen by more than the
threshold (time went backwards), when it read days past the box's last sign of life at start and
the city has not confirmed it since (a clock set ahead while the box was off: ``edge.node``), or
when the city's time, learned at the last sync, says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge.i18n import N_, gettext_
from edge.node import Node
from edge.syncclient import reference_skew_ms
from edge.syncstate import SyncState
from sync.clock import Clock

EARLIEST_PLAUSIBLE_MS = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class ClockStatus:
    suspect: bool
    skew_ms: int
    """How far the wall clock is behind the best known time (negative: ahead)."""
    reason: str | None
    """Why, as an English msgid with ``{placeholders}``; :attr:`text` is it translated."""
    params: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str | None:
        return None if self.reason is None else gettext_(self.reason, **self.params)


def check(
    clock: Clock, threshold_ms: int, reference_skew_ms: int | None = None, forward_jump_ms: int = 0
) -> ClockStatus:
    wall = clock.wall_ms()
    if wall < EARLIEST_PLAUSIBLE_MS:
        date = datetime.fromtimestamp(max(wall, 0) / 1000, UTC).strftime("%d/%m/%Y")
        return ClockStatus(True, clock.last.wall - wall, N_("it reads {date}"), {"date": date})
    moved = clock.moved_since_calibration_ms()
    if abs(moved) > threshold_ms:
        return ClockStatus(
            True,
            -moved,
            N_("it was changed by {minutes} min since the city's time set it"),
            {"minutes": round(abs(moved) / 60000)},
        )
    behind = clock.last.wall - wall
    # Once the city's time has set the clock (and it has not been changed since: above), being
    # behind the log says the log's newest stamps came from a clock that was ahead (they stay
    # until real time passes them), not that this clock is wrong now.
    if behind > threshold_ms and not clock.calibrated:
        return ClockStatus(
            True, behind, N_("it is {minutes} min behind changes already made"), {"minutes": behind // 60000}
        )
    if forward_jump_ms > 0:
        return ClockStatus(
            True,
            -forward_jump_ms,
            N_("it jumped {days} days ahead while the box was off, and the city has not confirmed it yet"),
            {"days": forward_jump_ms // 86_400_000},
        )
    if reference_skew_ms is not None and abs(reference_skew_ms) > threshold_ms:
        return ClockStatus(
            True,
            reference_skew_ms,
            N_("it differs from the city's clock by {minutes} min"),
            {"minutes": abs(reference_skew_ms) // 60000},
        )
    # A trusted clock: report what the city's clock said (net of calibration), not how long ago
    # the newest change was made, which only grows while the box sits idle.
    return ClockStatus(False, reference_skew_ms or 0, None)


def for_node(node: Node, threshold_ms: int) -> ClockStatus:
    """The node's clock status, with what the city's clock said at the last sync: the part of
    the measured drift that calibration has not corrected (none after a successful round; all of
    it after a restart, until the next round)."""
    drift = reference_skew_ms(node)
    residual = None if drift is None else drift - node.clock.offset_ms
    return check(node.clock, threshold_ms, residual, SyncState.load(node.replica).forward_jump_ms)
