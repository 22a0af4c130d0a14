"""Fault schedules for the property tests of tests/integration/test_fault_schedules.py.

A schedule is a short list of steps that hypothesis draws and shrinks: clerks write, the link of
a commune misbehaves for one round (cut at a byte offset either way, stall, delay, reset,
duplicated connection, a request withheld and delivered after later ones, link down), the city
server restarts (SIGTERM or SIGKILL, maybe with its wall clock far off), and a commune's box
restarts with its wall clock jumped (a dead CMOS battery boots in 2000; a bad NTP answer years
ahead). The steps are plain frozen dataclasses so a failing example prints readably.

Clock offsets are spelled as libfaketime's ``FAKETIME`` spells them (``"-26y"``: a year is 365
days there) so that one name serves a process started with its wall clock off
(:func:`skewed_env`) and a clock driven in this process (:func:`offset_ms`).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

DAY_MS = 86_400_000
UNITS_MS = {"y": 365 * DAY_MS, "d": DAY_MS, "h": 3_600_000, "m": 60_000}

CLOCKS = ("", "-26y", "+2y", "+3d", "-2h")
"""Wall clock offsets of a box after a restart ("" = right)."""
CLOCKS_AHEAD = ("+3h", "+3d", "+2y")
"""Of a box that boots ahead while offline (decision 0008): hours (no sign of it at the box),
days (a jump past its last sign of life: suspect), years (a bad NTP answer, a BIOS default)."""
CITY_CLOCKS = ("", "", "-26y", "-2h")
"""Of the city server after a restart. Not ahead: its boxes calibrate against it, and a city
clock years ahead is a misconfigured server, not a symptom the boxes could recognise."""

LINK_FAULTS = ("cut_up", "cut_down", "stall", "delay", "reset", "duplicate", "reorder", "down")
ROUND_BYTES = 4500
"""About what a round of a few dossiers moves each way (as in test_link_faults.py)."""

SKEWCLOCK = Path(__file__).resolve().parent / "skewclock"
"""Holds the sitecustomize that makes a server process read its wall clock wrong."""


def soak() -> bool:
    return os.environ.get("MOTCUA_SOAK") == "1"


def offset_ms(clock: str) -> int:
    """``"-26y"`` -> milliseconds (a year of 365 days)."""
    if not clock:
        return 0
    return int(float(clock[:-1]) * UNITS_MS[clock[-1]])


def skewed_env(clock: str) -> dict[str, str]:
    """The environment that starts a server process with its wall clock ``clock`` off (see
    skewclock/sitecustomize.py: why not libfaketime)."""
    if not clock:
        return {}
    path = os.pathsep.join(p for p in (str(SKEWCLOCK), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "MOTCUA_TEST_SKEW_MS": str(offset_ms(clock))}


# --- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """A clerk at ``unit`` receives ``count`` dossiers (one handled by the other commune if
    ``routed``), accepts them if ``accept``; ticks "the date is right" if ``confirm``."""

    unit: int
    count: int
    routed: bool
    accept: bool
    confirm: bool


@dataclass(frozen=True)
class Fault:
    """One round (or, for a box served as a process, a while) of ``unit`` through a link with
    ``fault``; ``at`` is the byte offset of a cut or the index of the withheld request."""

    unit: int
    fault: str
    at: int


@dataclass(frozen=True)
class Round:
    """A round through a healthy link."""

    unit: int


@dataclass(frozen=True)
class RestartCity:
    kill: bool
    clock: str


@dataclass(frozen=True)
class RestartBox:
    """The commune's box restarts (power cut if ``kill``) with its wall clock ``clock`` off."""

    unit: int
    kill: bool
    clock: str


@dataclass(frozen=True)
class BootAheadOffline:
    """The commune's box restarts with its wall clock ``clock`` ahead while its link is down;
    the link stays down until the commune's next round."""

    unit: int
    clock: str


Step = Write | Fault | Round | RestartCity | RestartBox | BootAheadOffline


def faults() -> st.SearchStrategy[Fault]:
    def at(fault: str) -> st.SearchStrategy[int]:
        if fault in ("cut_up", "cut_down"):
            return st.integers(1, ROUND_BYTES)
        if fault == "reorder":
            return st.integers(0, 4)  # time, hello, then pushes, pulls, digest
        return st.just(0)

    return st.sampled_from(LINK_FAULTS).flatmap(
        lambda fault: st.builds(Fault, unit=st.integers(0, 1), fault=st.just(fault), at=at(fault))
    )


def steps(box_clocks: Iterable[str] = CLOCKS) -> st.SearchStrategy[Step]:
    writes = st.builds(
        Write,
        unit=st.integers(0, 1),
        count=st.integers(1, 3),
        routed=st.booleans(),
        accept=st.booleans(),
        confirm=st.booleans(),
    )
    return st.one_of(
        writes,
        writes,
        faults(),
        faults(),
        st.builds(Round, unit=st.integers(0, 1)),
        st.builds(RestartCity, kill=st.booleans(), clock=st.sampled_from(CITY_CLOCKS)),
        st.builds(
            RestartBox, unit=st.integers(0, 1), kill=st.booleans(), clock=st.sampled_from(tuple(box_clocks))
        ),
    )


def schedules(
    min_size: int, max_size: int, box_clocks: Iterable[str] = CLOCKS
) -> st.SearchStrategy[list[Step]]:
    return st.lists(steps(box_clocks), min_size=min_size, max_size=max_size)


def ahead_schedules(min_size: int, max_size: int) -> st.SearchStrategy[list[Step]]:
    """Boxes booting ahead while offline, clerks writing there, links returning (with faults)."""
    writes = st.builds(
        Write,
        unit=st.integers(0, 1),
        count=st.integers(1, 2),
        routed=st.booleans(),
        accept=st.booleans(),
        confirm=st.booleans(),
    )
    step = st.one_of(
        st.builds(BootAheadOffline, unit=st.integers(0, 1), clock=st.sampled_from(CLOCKS_AHEAD)),
        writes,
        writes,
        st.builds(Round, unit=st.integers(0, 1)),
        faults(),
    )
    return st.lists(step, min_size=min_size, max_size=max_size)


# --- what the schedules contained -----------------------------------------------------------------


def label(step: Step) -> str:
    if isinstance(step, Write):
        return "write+confirm" if step.confirm else "write"
    if isinstance(step, Fault):
        return f"link:{step.fault}"
    if isinstance(step, Round):
        return "round"
    if isinstance(step, BootAheadOffline):
        return f"boot-ahead-offline:{step.clock}"
    kill = "kill" if step.kill else "term"
    where = "city" if isinstance(step, RestartCity) else "box"
    return f"restart-{where}:{kill}{':' + step.clock if step.clock else ''}"


class Tally:
    """Counts of what the examples did and what happened, printed at the end of a test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.examples = 0
        self.steps: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    def example(self, schedule: list[Step]) -> None:
        self.examples += 1
        self.steps.update(label(step) for step in schedule)

    def saw(self, what: str, n: int = 1) -> None:
        self.outcomes[what] += n

    def add(self, counts: Mapping[str, int]) -> None:
        self.outcomes.update(counts)

    def report(self) -> str:
        def line(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))

        text = (
            f"\n[{self.name}] {self.examples} schedules, {sum(self.steps.values())} steps\n"
            f"  steps: {line(self.steps)}\n  outcomes: {line(self.outcomes)}\n"
        )
        sys.stdout.write(text)
        return text
