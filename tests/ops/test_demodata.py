"""The demo's dossiers follow the rules of real receipts (issue 14 item 12: every one was due 7
calendar days after receipt, some were received on a Sunday, a control sheet showed its steps
before its receipt, and 194 of 307 were overdue)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ops.demo import build
from ops.demodata import LIMITS, OFFICE, VIETNAM, counter_weeks
from schema.calendar import add_working_days, is_working_day


def local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, VIETNAM)


def test_the_plan_receives_on_working_days_in_office_hours_in_order():
    now = datetime(2026, 12, 7, 15, 0, tzinfo=VIETNAM)
    plan = counter_weeks(random.Random(7), now, 300)
    receipts = [s for s in plan if s.action == "receive"]
    assert len(receipts) == 300
    for step in receipts:
        assert is_working_day(step.at.date()), step
        assert any(start <= step.at.time() < end for start, end in OFFICE), step
    assert all(s.at <= now for s in plan)
    order = [s.at for s in plan]
    assert order == sorted(order)
    firsts: dict[int, str] = {}
    for step in plan:
        firsts.setdefault(step.dossier, step.action)
    assert set(firsts.values()) == {"receive"}  # nothing happens to a dossier before its receipt


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    world = build(tmp_path_factory.mktemp("demo") / "demo", "http://127.0.0.1:9", 150, say=lambda _: None)
    yield world
    world.close()


def test_demo_dossiers_are_due_by_the_procedures_time_limit_in_working_days(demo):
    for edge in demo.edges.values():
        with edge.reader() as conn:
            rows = conn.execute("SELECT code, procedure_code, received_at, due_date FROM dossiers").fetchall()
        assert len(rows) == 150
        for code, procedure, received_at, due_date in rows:
            day = local(received_at).date()
            assert is_working_day(day), code
            assert code.split("-")[1] == f"{day:%y%m%d}", code
            assert due_date == add_working_days(day, LIMITS[procedure]).isoformat(), code


def test_demo_control_sheets_never_go_back_before_the_receipt(demo):
    for edge in demo.edges.values():
        with edge.reader() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM dossiers")]
        for dossier in ids:
            state = edge.replica.state("dossier", dossier)
            times = [step["at"] for step in state["steps"]]
            assert times == sorted(times)
            assert times[0] == state["received_at"]
            assert times[-1] <= datetime.now(UTC).timestamp() * 1000


def test_demo_overdue_share_is_plausible(demo):
    for edge in demo.edges.values():
        with edge.reader() as conn:
            today = datetime.now(VIETNAM).date().isoformat()
            total, overdue = conn.execute(
                """SELECT count(*), sum(
                       (processed_at IS NOT NULL
                        AND date(processed_at / 1000, 'unixepoch', '+7 hours') > due_date)
                       OR (processed_at IS NULL AND status < 9 AND due_date < ?))
                   FROM dossiers""",
                (today,),
            ).fetchone()
        assert total == 150
        assert 0 < overdue <= 0.15 * total, overdue  # not 58 of 150, not none at all
