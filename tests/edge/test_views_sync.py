"""The sync pages: "Sync now" and a dossier's printable, verifiable transmission record."""

from __future__ import annotations

import re
import time

import pytest
from edgekit import OTHER_UNIT, PASSWORD, UNIT, csrf_of, login, receive_sample
from starlette.testclient import TestClient
from synckit import FakeHub

from edge import i18n
from edge.accounts import add_account
from edge.app import create_app
from edge.auth import hash_password
from edge.node import Node
from edge.settings import load
from edge.syncclient import NO_CONNECTION, sync_once
from edge.views.sync import records_from_json
from sync import attempts
from sync.errors import BadSignature
from sync.identity import fingerprint

DATETIME = re.compile(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}")


@pytest.fixture
def hub(tmp_path):
    h = FakeHub(tmp_path / "city")
    yield h
    h.close()


@pytest.fixture
def edge(tmp_path, hub):
    node = hub.make_edge(tmp_path / "edge", UNIT)
    yield node
    node.close()


@pytest.fixture
def peer(hub, edge):
    p = hub.peer(edge)
    sync_once(edge, p, load(edge.data_dir))  # reference data and the unit's accounts
    return p


@pytest.fixture
def client(edge, peer):
    app = create_app(load(edge.data_dir), edge, sync_peer=lambda node: peer, background=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def vietnamese(msgid: str) -> str:
    token = i18n.current_language.set("vi")
    try:
        return i18n.gettext_(msgid)
    finally:
        i18n.current_language.reset(token)


def other_units_clerk() -> dict[str, object]:
    return {
        "username": "canbo_caikhe",
        "full_name": "Phạm Thu Hà",
        "unit": OTHER_UNIT,
        "role": "clerk",
        "password_hash": hash_password(PASSWORD),
        "active": True,
    }


def attempt_count(node: Node) -> int:
    with node.reader() as conn:
        return len(attempts.records(conn))


def two_failures_then_success(edge: Node, peer) -> str:
    dossier = receive_sample(edge).id
    settings = load(edge.data_dir)
    peer.down = True
    sync_once(edge, peer, settings)
    sync_once(edge, peer, settings)
    peer.down = False
    assert sync_once(edge, peer, settings).outcome == "ok"
    return dossier


# --- the transmission record ---------------------------------------------------------------------


def test_the_record_lists_every_failed_attempt_with_its_reason_and_the_ack(client, edge, peer, hub):
    dossier = two_failures_then_success(edge, peer)
    login(client)
    page = client.get(f"/dossiers/{dossier}/record")
    assert page.status_code == 200
    html = page.text
    assert html.count('data-outcome="failed"') == 2
    assert html.count('data-outcome="ok"') == 1
    reason_vi = vietnamese(NO_CONNECTION)
    assert reason_vi != NO_CONNECTION
    assert html.count(reason_vi) == 2
    assert edge.identity.node in html
    assert fingerprint(edge.identity.public_raw) in html
    assert fingerprint(hub.identity.public_raw) in html  # the city key the ack verified with
    assert hub.identity.node in html
    assert 'data-verified="true"' in html
    assert "data-waiting-since" not in html
    assert len(DATETIME.findall(html)) >= 4
    assert "style=" not in html
    assert "<script>" not in html

    client.get("/lang/en?next=/")
    english = client.get(f"/dossiers/{dossier}/record").text
    assert english.count(NO_CONNECTION) == 2
    assert "Acknowledged on" in english
    assert "signature verified with the city key" in english


def test_a_dossier_not_yet_sent_waits_for_the_link_since_its_first_change(client, edge, peer):
    received = receive_sample(edge)
    peer.down = True
    sync_once(edge, peer, load(edge.data_dir))
    login(client)
    html = client.get(f"/dossiers/{received.id}/record").text
    created_at = edge.replica.state("dossier", received.id)["steps"][0]["at"]
    assert f'data-waiting-since="{created_at}"' in html
    assert i18n.format_datetime(created_at) in html
    assert html.count('data-outcome="failed"') == 1


def test_another_units_clerk_cannot_see_the_record(client, edge, peer):
    dossier = two_failures_then_success(edge, peer)
    # A connected box takes its accounts from the city only: write this one straight into the log.
    with edge.replica.write() as w:
        w.append("account", "canbo_caikhe", "create", other_units_clerk())
    login(client, "canbo_caikhe")
    assert client.get(f"/dossiers/{dossier}/record").status_code == 404
    assert client.get(f"/dossiers/{dossier}/record.json").status_code == 404
    assert client.get("/dossiers/nope/record").status_code == 404


def test_the_record_needs_a_login(client, edge, peer):
    dossier = receive_sample(edge).id
    response = client.get(f"/dossiers/{dossier}/record")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_record_json_verifies_with_the_nodes_public_key(client, edge, peer):
    import base64

    dossier = two_failures_then_success(edge, peer)
    other = receive_sample(edge).id
    sync_once(edge, peer, load(edge.data_dir))
    login(client)
    response = client.get(f"/dossiers/{dossier}/record.json")
    assert response.status_code == 200
    document = response.json()
    assert document["node"] == edge.identity.node
    assert document["dossier"] == dossier
    key = base64.b64decode(document["public_key"])
    assert key == edge.identity.public_raw
    records = records_from_json(document)
    assert attempts.verify_chain(records, key) == attempt_count(edge) == 5
    assert document["concerning"] == [2, 3, 4]
    assert other not in records[1].attempt.entities
    assert other in records[4].attempt.entities
    document["records"][1]["attempt"]["error"] = None  # "it never failed"
    with pytest.raises(BadSignature):
        attempts.verify_chain(records_from_json(document), key)


def test_a_tampered_log_shows_on_the_record(client, edge, peer):
    import sqlite3

    dossier = two_failures_then_success(edge, peer)
    raw = sqlite3.connect(edge.data_dir / "motcua.db")
    try:
        raw.execute("DELETE FROM sync_attempt WHERE id = 2")
        raw.commit()
    finally:
        raw.close()
    login(client)
    html = client.get(f"/dossiers/{dossier}/record").text
    assert 'data-verified="false"' in html


# --- sync now ------------------------------------------------------------------------------------


def test_sync_now_needs_the_csrf_token(client, edge, peer):
    token = login(client)
    before = attempt_count(edge)
    refused = client.post("/sync-now", data={"next": "/dossiers"})
    assert refused.status_code == 403
    assert attempt_count(edge) == before
    done = client.post("/sync-now", data={"csrf": token, "next": "/dossiers"})
    assert done.status_code == 303
    assert done.headers["location"] == "/dossiers"
    assert attempt_count(edge) == before + 1


def test_sync_now_sends_waiting_changes_and_htmx_gets_the_badge(client, edge, peer, hub):
    token = login(client)
    received = receive_sample(edge)
    response = client.post(
        "/sync-now", data={"csrf": token, "next": "/"}, headers={"HX-Request": "true", "X-CSRF-Token": token}
    )
    assert response.status_code == 200
    assert 'id="sync-badge"' in response.text
    assert "<html" not in response.text
    assert hub.replica.state("dossier", received.id) is not None
    assert 'value="/"' in response.text  # the next "Sync now" returns to the same page


def test_sync_now_only_returns_to_a_local_page(client, edge, peer):
    token = login(client)
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        response = client.post("/sync-now", data={"csrf": token, "next": target})
        assert response.headers["location"] == "/"


def test_the_badge_offers_sync_now_only_to_a_connected_box(client, edge, peer, tmp_path):
    login(client)
    assert 'action="/sync-now"' in client.get("/").text
    from edge.node import init_node

    alone = init_node(tmp_path / "alone", UNIT)
    add_account(alone, "canbo01", "Nguyễn Thị Lan", "clerk", PASSWORD, UNIT)
    try:
        with TestClient(create_app(load(alone.data_dir), alone), follow_redirects=False) as other:
            login(other)
            assert 'action="/sync-now"' not in other.get("/").text
    finally:
        alone.close()


def test_sync_now_on_a_box_without_a_city_does_nothing(tmp_path):
    from edge.node import init_node

    alone = init_node(tmp_path / "alone", UNIT)
    add_account(alone, "canbo01", "Nguyễn Thị Lan", "clerk", PASSWORD, UNIT)
    try:
        with TestClient(create_app(load(alone.data_dir), alone), follow_redirects=False) as c:
            token = login(c)
            assert c.post("/sync-now", data={"csrf": token}).status_code == 303
            assert attempt_count(alone) == 0
    finally:
        alone.close()


# --- the background loop runs with the app ----------------------------------------------------------


def test_the_background_loop_starts_and_stops_with_the_app(edge, peer):
    before = attempt_count(edge)
    app = create_app(load(edge.data_dir), edge, sync_peer=lambda node: peer)
    with TestClient(app, follow_redirects=False) as c:
        deadline = time.monotonic() + 10
        while attempt_count(edge) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert attempt_count(edge) == before + 1  # a round at start
        token = login(c)
        receive_sample(edge)
        assert c.post("/sync-now", data={"csrf": token}).status_code == 303
        assert (
            edge.replica.peer_vector("central")[edge.identity.node]
            == edge.replica.vector()[edge.identity.node]
        )
    after = attempt_count(edge)
    time.sleep(0.1)
    assert attempt_count(edge) == after  # stopped with the app


def test_unit_tests_can_keep_the_loop_off(edge, peer):
    before = attempt_count(edge)
    app = create_app(load(edge.data_dir), edge, sync_peer=lambda node: peer, background=False)
    with TestClient(app, follow_redirects=False) as c:
        c.get("/login")
        time.sleep(0.05)
    assert attempt_count(edge) == before


def test_the_login_page_still_works_with_the_badge(client):
    assert csrf_of(client.get("/login").text)


def test_a_dossier_changed_offline_shows_it_is_waiting_for_the_link_until_the_city_has_it(client, edge, peer):
    dossier = receive_sample(edge).id
    settings = load(edge.data_dir)
    peer.down = True
    sync_once(edge, peer, settings)
    login(client)
    waiting = client.get(f"/dossiers/{dossier}")
    assert "data-waiting-since" in waiting.text
    peer.down = False
    assert sync_once(edge, peer, settings).outcome == "ok"
    assert "data-waiting-since" not in client.get(f"/dossiers/{dossier}").text


# --- what a dossier waiting to be sent says (issue 14 item 10) -----------------------------------


def test_a_new_dossier_while_the_link_works_will_go_at_the_next_sync(client, edge, peer):
    assert sync_once(edge, peer, load(edge.data_dir)).outcome == "ok"
    received = receive_sample(edge)
    login(client)
    html = client.get(f"/dossiers/{received.id}").text
    found = re.search(r'data-next-sync-in="(\d+)">([^<]*)<', html)
    assert found, "no 'next sync' notice"
    assert 0 <= int(found.group(1)) <= load(edge.data_dir).sync_interval_s
    assert found.group(2) == vietnamese("Will be sent to the city at the next sync (in about {n} s).").format(
        n=found.group(1)
    )
    assert "data-waiting-since" not in html  # no warning while the badge says online
    record = client.get(f"/dossiers/{received.id}/record").text
    assert "data-next-sync-in" in record
    assert "data-waiting-since" not in record

    peer.down = True
    sync_once(edge, peer, load(edge.data_dir))
    html = client.get(f"/dossiers/{received.id}").text
    assert "data-next-sync-in" not in html
    assert "data-waiting-since" in html  # a real failure keeps the warning
    assert "data-waiting-since" in client.get(f"/dossiers/{received.id}/record").text


# --- "Sync now" answers in the page (issue 14 item 11) -------------------------------------------


def test_sync_now_while_offline_says_why_in_the_page(client, edge, peer):
    token = login(client)
    peer.down = True
    reason = vietnamese(NO_CONNECTION)
    answer = client.post("/sync-now", data={"csrf": token, "next": "/dossiers"})
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    outcome = re.search(r'<span id="sync-outcome" role="status"[^>]*>([^<]*)</span>', page)
    assert outcome, "no visible outcome after Sync now"
    assert reason in outcome.group(1)
    assert 'id="sync-outcome"' not in client.get("/dossiers").text  # said once

    fragment = client.post(
        "/sync-now", data={"csrf": token, "next": "/dossiers"}, headers={"HX-Request": "true"}
    ).text
    assert reason in re.search(r'id="sync-outcome"[^>]*>([^<]*)<', fragment).group(1)

    peer.down = False
    fragment = client.post(
        "/sync-now", data={"csrf": token, "next": "/dossiers"}, headers={"HX-Request": "true"}
    ).text
    assert "Đã đồng bộ với thành phố" in fragment


def test_the_record_shows_changes_re_dated_because_the_clock_was_ahead(client, edge, peer):
    """Decision 0008: a dossier received while the box's clock ran three days ahead and offline
    is re-dated at the next round; its record says so, with the time it first carried, and the
    record still verifies (as a page and as record.json)."""
    settings = load(edge.data_dir)
    edge.clock.offset_ms += 3 * 86_400_000
    peer.down = True
    dossier = receive_sample(edge).id
    first = edge.replica.state("dossier", dossier)["steps"][0]["at"]
    assert sync_once(edge, peer, settings).outcome == "failed"
    peer.down = False
    assert sync_once(edge, peer, settings).outcome == "ok"
    now = edge.replica.state("dossier", dossier)["steps"][0]["at"]
    assert first - now > 2 * 86_400_000
    login(client)
    html = client.get(f"/dossiers/{dossier}/record").text
    assert html.count('data-outcome="corrected"') == 1
    assert vietnamese("Re-dated") in html
    assert i18n.format_datetime(first) in html
    assert i18n.format_datetime(now) in html
    assert "data-waiting-since" not in html
    document = client.get(f"/dossiers/{dossier}/record.json").json()
    log = records_from_json(document)
    assert attempts.verify_chain(log, edge.identity.public_raw) == len(log)
    assert any(r.attempt.restamped for r in log)
