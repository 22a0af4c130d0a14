"""A commune's history as a real office makes it: thousands of dossiers open at once.

Each dossier lives its ten ops (``ops.demodata.dossier_ops``: create, edits, status 1 -> 10)
over a few weeks, and the office works on many at a time, so the log is the dossiers' ops
interleaved in time: consecutive ops of the log belong to different dossiers, and a batch of
~850 ops touches ~800 of them. This is what makes a hub's ingest expensive (every batch
re-projects most of the dossiers it holds), and what the benchmarks of issue 10 measure.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ops.demodata import dossier_ops
from sync.replica import Replica

PROCEDURES = ["1.004194", "1.008004", "1.012345", "2.000720"]
START = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)
OPEN_AT_ONCE = 3_000
"""Dossiers in progress at the same time (a city ward's month of receipts)."""


def fake_wall(rnd: random.Random) -> Callable[[], int]:
    """A wall clock that moves 1-4 s per reading from START: stamps spread over months."""
    wall = [int(START.timestamp() * 1000)]

    def now() -> int:
        wall[0] += rnd.randrange(1, 4000)
        return wall[0]

    return now


def interleaved(rnd: random.Random, unit: str, dossiers: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(entity, action, payload) of ``dossiers`` dossiers, ``OPEN_AT_ONCE`` of them in progress,
    each next op taken from a dossier chosen at random among the open ones."""
    per_day = max(1, dossiers // 80)
    open_: list[tuple[str, Iterator[tuple[str, dict[str, Any]]]]] = []
    made = 0
    while made < dossiers or open_:
        if made < dossiers and (len(open_) < OPEN_AT_ONCE or rnd.random() < 0.1):
            day = date(2026, 6, 1) + timedelta(days=made // per_day)
            received = int(datetime.combine(day, START.timetz()).timestamp() * 1000)
            entity = f"{rnd.getrandbits(128):032x}"
            life = dossier_ops(rnd, unit, rnd.choice(PROCEDURES), day, made % per_day + 1, received)
            open_.append((entity, life))
            made += 1
            index = len(open_) - 1
        else:
            index = rnd.randrange(len(open_))
        entity, life = open_[index]
        step = next(life, None)
        if step is None:
            open_[index] = open_[-1]
            open_.pop()
            continue
        yield entity, step[0], step[1]


def author_interleaved(replica: Replica, unit: str, dossiers: int, seed: int, per_write: int = 100) -> int:
    """Write the interleaved history through the real local-write API, ``per_write`` ops per
    transaction; return the ops written."""
    rnd = random.Random(seed)
    steps = interleaved(rnd, unit, dossiers)
    written = 0
    while True:
        chunk = [step for _, step in zip(range(per_write), steps, strict=False)]
        if not chunk:
            return written
        with replica.write() as w:
            for entity, action, payload in chunk:
                w.append("dossier", entity, action, payload)
        written += len(chunk)
