from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules next to the tests

from toydoc import FakeWall, open_replica, trust_all

from sync.identity import Identity

NOW_MS = 1_750_000_000_000


@pytest.fixture
def make_replicas(tmp_path):
    """make_replicas("a", "b", ...) -> replicas that trust each other, on fake wall clocks."""
    opened = []

    def make(*units: str):
        made = []
        for unit in units:
            wall = FakeWall(NOW_MS)
            r = open_replica(tmp_path / f"{unit}.db", Identity.generate(unit), wall)
            r.test_wall = wall  # type: ignore[attr-defined]
            made.append(r)
        trust_all(made)
        opened.extend(made)
        return made

    yield make
    for r in opened:
        r.close()
