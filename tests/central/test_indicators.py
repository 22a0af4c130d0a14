"""Decision 766 figures agree: a unit's box and the city count the same dossiers the same way.

A dossier received at Ninh Kiều and handled by Cái Khế sits on both boxes. It counts as
received at Ninh Kiều and handled by Cái Khế, on each box and at the city (issue 14 item 2:
the ward's own report said 174 "received" where the city said 159)."""

from __future__ import annotations

from datetime import datetime

import pytest
from centralkit import CAI_KHE, NINH_KIEU, sync_round
from edgekit import actor, receive_sample

from central import cityviews
from edge import queries
from edge.dossiers import today
from edge.i18n import TIMEZONE
from edge.node import Node
from edge.views.reports import total
from schema.indicators import Counts

BASIS_OF = {"receiving": "received", "handling": "handled"}


def box_counts(node: Node, username: str, basis: str) -> Counts:
    day = today(node)
    with node.reader() as conn:
        rows = queries.report(conn, actor(username), day.year, day, basis)
    t = total(rows)
    return Counts(t.received, t.on_time, t.overdue, t.digitised, t.online)


def city_counts(world, by: str) -> dict[str, Counts]:
    day = today(world.city.node)
    with world.city.node.reader() as conn:
        units = cityviews.unit_indicators(conn, day.year, day, by)
    return {u.unit: u.counts for u in units}


def test_the_box_and_the_city_agree_for_each_unit_after_sync(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    for _ in range(2):
        receive_sample(ninh_kieu)
    receive_sample(ninh_kieu, handling_unit=CAI_KHE)  # non-territorial: routed to Cái Khế
    receive_sample(cai_khe, "canbo_caikhe", handling_unit=CAI_KHE, address_unit=CAI_KHE)
    for unit in (NINH_KIEU, CAI_KHE, NINH_KIEU):
        sync_round(world.edges[unit], world.peer(unit))
    if datetime.fromtimestamp(world.city.node.clock.wall_ms() / 1000, TIMEZONE).year != today(cai_khe).year:
        pytest.skip("the year turned during the test")

    with cai_khe.reader() as conn:  # Cái Khế's box holds its own dossier and the routed one
        assert conn.execute("SELECT count(*) FROM dossiers").fetchone()[0] == 2

    expected = {
        ("receiving", NINH_KIEU): 3,
        ("receiving", CAI_KHE): 1,
        ("handling", NINH_KIEU): 2,
        ("handling", CAI_KHE): 2,
    }
    for by in ("receiving", "handling"):
        at_city = city_counts(world, by)
        for unit, node, username in ((NINH_KIEU, ninh_kieu, "canbo01"), (CAI_KHE, cai_khe, "canbo_caikhe")):
            at_box = box_counts(node, username, BASIS_OF[by])
            assert at_box == at_city[unit], (by, unit)
            assert at_box.received == expected[(by, unit)], (by, unit)
