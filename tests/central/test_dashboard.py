"""The fleet dashboard: what city IT sees of every node, through the real pages and syncs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from centralkit import CAI_KHE, CURSOR, NINH_KIEU, PASSWORD, sync_round
from edgekit import csrf_of, receive_sample

from central import charts as city_charts
from central import cityviews
from central.dashboard import lag_in_sensible_unit
from central.fleet import AttemptRow, Registration, Status
from central.fleetviews import (
    ALERT,
    ERRORING,
    HEALTHY,
    REVOKED_KNOCKING,
    REVOKED_QUIET,
    node_row,
    node_rows,
    severity,
    staleness_by_day,
)
from central.registry import NODE_KINDS, add_node
from edge import i18n
from edge.accounts import add_account
from schema.indicators import Counts
from schema.units import province_units
from sync import wire
from sync.errors import RevokedNode

PAGE_LIMIT = 60 * 1024
HOUR = 3_600_000
UNIT_ROW = r'<tr><th scope="row">(.*?)</th><td>(\d+)</td>'
PAGES = ["/fleet", "/fleet/table", "/fleet/routing", "/fleet/indicators"]


def login(client: httpx.Client, username: str) -> str:
    page = client.get("/login")
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"}
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


@pytest.fixture
def admin(world) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.url, timeout=30, follow_redirects=False) as client:
        client.cookies.set("lang", "en")  # the tests read the English messages
        login(client, "quantri")
        yield client


@pytest.fixture
def clerk(world) -> Iterator[httpx.Client]:
    add_account(world.city.node, "canbo_nk", "Nguyễn Thị Lan", "clerk", PASSWORD, NINH_KIEU)
    with httpx.Client(base_url=world.url, timeout=30, follow_redirects=False) as client:
        client.cookies.set("lang", "en")
        login(client, "canbo_nk")
        yield client


def node_of(world, unit: str) -> str:
    return str(world.edges[unit].identity.node)


def fleet_rows(html: str) -> list[tuple[str, str]]:
    """(node id, row HTML) of each row of the fleet table, in order."""
    rows = re.findall(r'<tr class="(?:alert|revoked|erroring|ok)">(.*?)</tr>', html, flags=re.S)
    return [(re.findall(r'href="/fleet/nodes/([^"]+)"', row)[0], row) for row in rows]


def cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]


def svgs(html: str) -> list[ET.Element]:
    found = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    return [ET.fromstring(svg) for svg in found]


def history(html: str) -> str:
    found = re.search(r'<table class="list" id="attempts">.*?</table>', html, flags=re.S)
    assert found
    return found.group(0)


def other_unit(*taken: str) -> str:
    return next(u.code for u in province_units("92") if u.kind in NODE_KINDS and u.code not in taken)


# --- the fleet table ---------------------------------------------------------------------------


def test_the_fleet_lists_every_node_with_its_unit_software_and_lag(world, admin):
    for unit in (NINH_KIEU, CAI_KHE, NINH_KIEU, CAI_KHE):  # the second hello reports the cursor
        sync_round(world.edges[unit], world.peer(unit))
    edge = world.edges[NINH_KIEU]
    receive_sample(edge)
    receive_sample(edge)
    world.peer(NINH_KIEU).hello(
        wire.Hello(
            software="motcua 0.2.0",
            head=edge.replica.vector()[edge.identity.node],
            cursor=int(edge.replica.meta(CURSOR) or 0),
            wall_ms=edge.clock.wall_ms(),
            backup_age_s=5400,
        )
    )
    page = admin.get("/fleet")
    assert page.status_code == 200
    assert 'hx-get="/fleet/table"' in page.text
    assert 'hx-trigger="every 15s"' in page.text
    assert 'href="/dossiers"' in page.text
    rows = dict(fleet_rows(page.text))
    assert set(rows) == {node_of(world, NINH_KIEU), node_of(world, CAI_KHE)}
    ninh_kieu = cells(rows[node_of(world, NINH_KIEU)])
    assert "Ninh Kiều" in ninh_kieu[0]
    assert ninh_kieu[2] == "motcua 0.2.0"
    assert ninh_kieu[5] == "2"  # two dossiers' ops waiting at the node
    assert ninh_kieu[6] == "0"
    assert ninh_kieu[8]  # backup age, as reported
    cai_khe = cells(rows[node_of(world, CAI_KHE)])
    assert "Cái Khế" in cai_khe[0]
    assert cai_khe[2] == "motcua-test"
    assert (cai_khe[5], cai_khe[6]) == ("0", "0")
    assert "ALERT" not in page.text
    # The most lag first among healthy nodes.
    assert fleet_rows(page.text)[0][0] == node_of(world, NINH_KIEU)

    partial = admin.get("/fleet/table", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert {node for node, _ in fleet_rows(partial.text)} == set(rows)


def test_silent_and_never_synced_nodes_are_alerts_and_come_first(world, admin):
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    fresh = add_node(world.city, other_unit(NINH_KIEU, CAI_KHE), "http://127.0.0.1:1").identity.node
    silent = node_of(world, CAI_KHE)
    world.city.fleet.report(silent, last_contact_ms=world.hub.now_ms() - 7 * HOUR)

    rows = fleet_rows(admin.get("/fleet").text)
    order = [node for node, _ in rows]
    assert set(order[:2]) == {fresh, silent}
    assert order[2] == node_of(world, NINH_KIEU)
    by_node = dict(rows)
    assert "ALERT: never synced" in by_node[fresh]
    assert "ALERT: silent" in by_node[silent]
    assert 'class="alert"' in admin.get("/fleet").text
    assert "ALERT" not in by_node[node_of(world, NINH_KIEU)]
    assert "ALERT" in admin.get(f"/fleet/nodes/{silent}").text


# --- a node's page and its revocation ------------------------------------------------------------


def test_revoking_from_the_page_needs_admin_csrf_and_the_typed_id(world, admin, clerk):
    node = node_of(world, CAI_KHE)
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    page = admin.get(f"/fleet/nodes/{node}")
    assert page.status_code == 200
    assert 'action="/fleet/nodes/' in page.text
    csrf = csrf_of(page.text)
    target = f"/fleet/nodes/{node}/revoke"

    assert clerk.post(target, data={"csrf": csrf_of(clerk.get("/").text), "confirm": node}).status_code == 403
    assert admin.post(target, data={"confirm": node}).status_code == 403
    assert admin.post(target, data={"csrf": "forged", "confirm": node}).status_code == 403
    wrong = admin.post(target, data={"csrf": csrf, "confirm": node[:-1]})
    assert wrong.status_code == 422
    assert "nothing was revoked" in wrong.text
    assert not world.city.fleet.registration(node).revoked

    done = admin.post(target, data={"csrf": csrf, "confirm": node})
    assert done.status_code == 303
    assert done.headers["location"] == f"/fleet/nodes/{node}"
    assert world.city.fleet.registration(node).revoked

    with pytest.raises(RevokedNode):
        sync_round(world.edges[CAI_KHE], world.peer(CAI_KHE))
    history = admin.get(f"/fleet/nodes/{node}").text
    assert "revoked_node" in history
    assert "refused" in history
    assert 'id="revoke"' not in history  # nothing more to revoke
    rows = dict(fleet_rows(admin.get("/fleet").text))
    assert "revoked" in rows[node]
    assert fleet_rows(admin.get("/fleet").text)[0][0] == node  # still knocking


def test_the_node_page_pages_its_history_and_draws_charts(world, admin):
    node = node_of(world, NINH_KIEU)
    for _ in range(3):
        sync_round(world.edges[NINH_KIEU], world.peer(NINH_KIEU))
    now = world.hub.now_ms()
    for i in range(60):
        world.city.fleet.record_attempt(
            AttemptRow(node, now + i, "hello", 0, 0, 10, 0, 1, "refused", "clock", f"stale {i}"),
            contact=False,
        )
    first = admin.get(f"/fleet/nodes/{node}")
    assert first.status_code == 200
    assert "stale 59<" in history(first.text)  # newest first
    assert "stale 0<" not in history(first.text)
    assert "?page=2" in first.text
    second = history(admin.get(f"/fleet/nodes/{node}?page=2").text)
    assert "stale 0<" in second
    assert "stale 59<" not in second
    assert "<td>fetch changes</td>" in second

    charts = svgs(first.text)
    assert len(charts) == 2
    titles = [svg.find("{http://www.w3.org/2000/svg}title").text for svg in charts]
    assert titles[0].startswith("Ops per day")
    assert titles[1].startswith("Longest time")
    assert admin.get("/fleet/nodes/31135-nosuchnode").status_code == 404


def test_a_clerk_gets_403_on_every_fleet_page(world, clerk):
    node = node_of(world, NINH_KIEU)
    for path in [*PAGES, f"/fleet/nodes/{node}"]:
        assert clerk.get(path).status_code == 403, path
    assert clerk.post(f"/fleet/nodes/{node}/revoke", data={"confirm": node}).status_code == 403
    with httpx.Client(base_url=world.url, follow_redirects=False) as anonymous:
        assert anonymous.get("/fleet").status_code == 303
        assert anonymous.get("/fleet").headers["location"].startswith("/login")


# --- the routing queue -------------------------------------------------------------------------


def test_the_routing_queue_lists_a_dossier_until_its_handling_node_has_it(world, admin):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    peer_a, peer_b = world.peer(NINH_KIEU), world.peer(CAI_KHE)
    sync_round(ninh_kieu, peer_a)
    sync_round(cai_khe, peer_b)
    routed = receive_sample(ninh_kieu, handling_unit=CAI_KHE)
    local = receive_sample(ninh_kieu)
    assert routed.id not in admin.get("/fleet/routing").text  # not at the city yet
    sync_round(ninh_kieu, peer_a)

    page = admin.get("/fleet/routing").text
    assert f'data-dossier="{routed.id}"' in page
    assert local.id not in page  # territorial: nothing to route
    assert "waiting for the node" in page

    sync_round(cai_khe, peer_b)  # pulls it; its next hello confirms
    page = admin.get("/fleet/routing").text
    assert f'data-dossier="{routed.id}"' in page
    assert "sent, not yet confirmed" in page
    sync_round(cai_khe, peer_b)
    assert routed.id not in admin.get("/fleet/routing").text


def test_the_routing_queue_is_oldest_first_and_capped(world, admin):
    ninh_kieu = world.edges[NINH_KIEU]
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    made = [receive_sample(ninh_kieu, handling_unit=CAI_KHE).id for _ in range(130)]
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    page = admin.get("/fleet/routing")
    listed = re.findall(r'data-dossier="([^"]+)"', page.text)
    assert len(listed) == 100
    assert set(listed) <= set(made)
    received = [world.city.node.replica.state("dossier", d)["received_at"] for d in listed]
    assert received == sorted(received)
    assert min(received) == min(world.city.node.replica.state("dossier", d)["received_at"] for d in made)
    assert "The oldest 100 of 130." in page.text
    assert len(page.content) < PAGE_LIMIT
    admin.cookies.set("lang", "vi")
    assert len(admin.get("/fleet/routing").content) < PAGE_LIMIT


# --- indicators --------------------------------------------------------------------------------


def test_indicators_per_unit_with_a_chart(world, admin):
    ninh_kieu = world.edges[NINH_KIEU]
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    receive_sample(ninh_kieu)
    receive_sample(ninh_kieu, handling_unit=CAI_KHE)
    sync_round(ninh_kieu, world.peer(NINH_KIEU))

    page = admin.get("/fleet/indicators")
    assert page.status_code == 200
    rows = re.findall(UNIT_ROW, page.text)
    assert [(name, int(n)) for name, n in rows if "Ninh Kiều" in name] == [("Phường Ninh Kiều", 2)]
    (chart,) = svgs(page.text)
    assert "Ninh Kiều" in ET.tostring(chart, encoding="unicode")

    handled = admin.get("/fleet/indicators?by=handling").text
    counted = {name: int(n) for name, n in re.findall(UNIT_ROW, handled)}
    assert counted["Phường Ninh Kiều"] == 1
    assert counted["Phường Cái Khế"] == 1
    assert admin.get("/fleet/indicators?by=nobody").status_code == 422
    assert admin.get("/fleet/indicators?year=abc").status_code == 422


# --- size --------------------------------------------------------------------------------------


def test_pages_stay_under_60_kb_for_120_nodes(world, admin, monkeypatch):
    units = [u.code for u in province_units("92") if u.kind in NODE_KINDS]
    now = world.hub.now_ms()
    long_error = "the city refused the request: " + "x" * 470
    for i in range(118):
        node = add_node(world.city, units[i % len(units)], "http://127.0.0.1:1").identity.node
        world.city.fleet.report(
            node,
            last_contact_ms=now - i * 600_000,
            last_ok_ms=now - i * 700_000,
            software="motcua 0.1.0+build.20250101",
            drift_ms=-i * 1000,
            backup_age_s=i * 60,
            edge_waiting=i * 10,
            central_waiting=i * 20,
            reported_error=long_error,
        )
    node = node_of(world, NINH_KIEU)
    for i in range(300):
        world.city.fleet.record_attempt(
            AttemptRow(node, now + i, "push", 100, 0, 262144, 200, 1500, "failed", "internal", long_error),
            contact=True,
        )
    many = [
        cityviews.UnitIndicators(f"u{i}", f"Xã Thạnh Phú Đông số {i}", Counts(5000, 4000, 700, 3000, 1000))
        for i in range(120)
    ]
    monkeypatch.setattr(cityviews, "unit_indicators", lambda *args: many)
    assert len(fleet_rows(admin.get("/fleet").text)) == 120
    assert admin.get("/fleet/indicators").text.count("Xã Thạnh Phú Đông số") >= 120
    for lang in ("en", "vi"):  # Vietnamese takes more bytes
        admin.cookies.set("lang", lang)
        for path in ("/fleet", "/fleet/table", f"/fleet/nodes/{node}", "/fleet/indicators"):
            size = len(admin.get(path).content)
            assert size < PAGE_LIMIT, (lang, path, size)


# --- pure parts --------------------------------------------------------------------------------


def registration(node: str, revoked_ms: int | None = None) -> Registration:
    cert = wire.Cert(node, "31135", b"k" * 32, 0)
    return Registration(node, "31135", b"k" * 32, 0, revoked_ms, None, cert)


def test_rows_sort_worst_first():
    now, silent = 100 * HOUR, 6 * HOUR
    statuses = [
        Status("healthy-small", last_contact_ms=now, last_ok_ms=now, edge_waiting=1, central_waiting=0),
        Status("healthy-big", last_contact_ms=now, last_ok_ms=now, edge_waiting=5, central_waiting=9),
        Status("never"),
        Status("silent", last_contact_ms=now - 7 * HOUR, last_ok_ms=now - 7 * HOUR),
        Status("almost", last_contact_ms=now - 5 * HOUR, last_ok_ms=now - 5 * HOUR),
        Status("erroring", last_contact_ms=now, last_ok_ms=now - HOUR, last_error="x", last_error_ms=now),
        Status("gone", last_error="revoked", last_error_ms=now - 30 * HOUR),
        Status("knocking", last_error="revoked", last_error_ms=now - HOUR),
    ]
    revoked = {"gone", "knocking"}
    # Every box that talks reports a backup here (one that does not is an alert of its own).
    statuses = [replace(s, backup_age_s=600) if s.last_contact_ms else s for s in statuses]
    regs = [registration(s.node, 1 if s.node in revoked else None) for s in statuses]
    rows = node_rows(regs, statuses, {}, now, silent)
    # Within a group: more ops waiting first, then longer since the last success (never
    # synced since its registration at 0 is older than silent for 7 hours).
    assert [r.node for r in rows] == [
        "never",
        "silent",
        "erroring",
        "knocking",
        "healthy-big",
        "healthy-small",
        "almost",
        "gone",
    ]
    kinds = {r.node: severity(r, now, silent) for r in rows}
    assert kinds["never"] == kinds["silent"] == ALERT
    assert kinds["erroring"] == ERRORING
    assert kinds["knocking"] == REVOKED_KNOCKING
    assert kinds["gone"] == REVOKED_QUIET
    assert kinds["almost"] == HEALTHY
    assert node_row(regs[4], statuses[4], "", now, 4 * HOUR).alert == "silent"  # the threshold is a setting


def test_a_node_whose_backup_is_older_than_a_day_is_an_alert():
    now = 100 * HOUR
    fresh = Status("fresh", last_contact_ms=now - HOUR, backup_age_s=3600)
    stale = Status("stale", last_contact_ms=now - HOUR, backup_age_s=30 * 3600)
    unknown = Status("unknown", last_contact_ms=now - HOUR, backup_age_s=None)
    alerts = {
        s.node: node_row(registration(s.node, None), s, "", now, 6 * HOUR).alert
        for s in (fresh, stale, unknown)
    }
    assert alerts == {"fresh": None, "stale": "backup", "unknown": "no_backup"}


def test_staleness_is_the_longest_time_without_a_sync_on_each_day():
    day = 24 * HOUR
    days = [(0, day), (day, 2 * day), (2 * day, 3 * day), (3 * day, 4 * day)]
    oks = [2 * HOUR, 3 * HOUR, day + 20 * HOUR]
    now = 2 * day + 6 * HOUR
    assert staleness_by_day(oks, None, days, now) == [21.0, 20.0 + 21.0, 10.0, None]
    # Registered before the window and never synced since: stale since the baseline.
    assert staleness_by_day([], -5 * HOUR, days[:1], now) == [29.0]
    assert staleness_by_day([], None, days[:1], now) == [None]


def test_share_bars_are_deterministic_escaped_svg():
    parts = [city_charts.Part("On time", "#1f7a33"), city_charts.Part("Overdue <late>", "#a3001b")]
    rows = [city_charts.Row("Phường <Ninh Kiều>", [3, 1]), city_charts.Row("Xã trống", [0, 0])]
    svg = city_charts.share_bars("c", "Shares & more", parts, rows, description="table below")
    assert svg == city_charts.share_bars("c", "Shares & more", parts, rows, description="table below")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == "Shares & more"
    bars = root.findall(f"{ns}g")
    assert len(bars) == 1  # the empty row has a label, no bar
    widths = [float(r.get("width")) for r in bars[0].findall(f"{ns}rect")]
    assert widths[0] == pytest.approx(3 * widths[1], abs=0.2)
    assert "style=" not in svg
    empty = ET.fromstring(city_charts.share_bars("e", "t", parts, [], description="d", empty="Nothing"))
    assert "Nothing" in ET.tostring(empty, encoding="unicode")


def test_the_fleet_lists_every_commune_and_ward_and_warns_of_a_box_without_backup(world, admin):
    """Issue 14 item 16: 101 of Cần Thơ's 103 communes and wards have no box and were invisible;
    a box that never reported a backup was no warning; pending counts had no time."""
    sync_round(world.edges[NINH_KIEU], world.peer(NINH_KIEU))
    sync_round(world.edges[CAI_KHE], world.peer(CAI_KHE), backup_age_s=None)
    page = admin.get("/fleet").text
    communes_and_wards = [u for u in province_units("92") if u.kind in ("commune", "ward")]
    assert len(communes_and_wards) == 103
    unboxed = re.findall(r'<tr class="unboxed"><th scope="row">([^<]+)</th>', page)
    assert len(unboxed) == 101
    assert "Phường Ninh Kiều" not in unboxed
    assert "<b>103</b> units" in page
    assert "<b>101</b> units without a box yet" in page
    assert page.count("no box yet") == 101
    rows = dict(fleet_rows(page))
    assert "ALERT: no backup reported" in rows[node_of(world, CAI_KHE)]
    assert "ALERT" not in rows[node_of(world, NINH_KIEU)]
    assert '<li class="bad"><b>1</b> alerts</li>' in page
    counted = cells(rows[node_of(world, NINH_KIEU)])[7]
    assert counted.endswith("ago"), counted  # when the waiting counts were measured
    assert len(page.encode()) < PAGE_LIMIT

    node = admin.get(f"/fleet/nodes/{node_of(world, CAI_KHE)}").text
    assert "never reported a backup" in node
    assert "Feed position" not in node
    assert "handed out" not in node
    assert "when the box last reported its status" in node

    admin.cookies.set("lang", "vi")
    vietnamese = admin.get("/fleet").text
    assert "<h1>Đơn vị và máy: toàn thành phố</h1>" in vietnamese
    assert "chưa có máy" in vietnamese


def test_the_lag_chart_speaks_in_minutes_hours_or_days():
    admin_lang = i18n.current_language.set("en")
    try:
        assert lag_in_sensible_unit([None, 0.25, 1.5]) == ([None, 15.0, 90.0], "Minutes")
        assert lag_in_sensible_unit([3.0, None]) == ([3.0, None], "Hours")
        assert lag_in_sensible_unit([96.0]) == ([4.0], "Days")
    finally:
        i18n.current_language.reset(admin_lang)
