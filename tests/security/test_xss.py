"""Hostile text in every free-text field renders escaped in every page that shows it.

The text comes from everywhere a commune's box takes it: the receive form (applicant name,
address, e-mail), the notes of actions, scan file names, an account's full name, a procedure
catalogue import (name, sector, result, legal basis, document names), a unit's name in the
reference data, the query string (search, filters, a login's ``next``), failed logins' usernames
(the audit page), and, at the city, what a box says about itself in its hello (software, last
error). Two checks per page: the markup has no element, attribute or URL the payloads tried to
plant (parsed, not grepped), and each field's text is there, escaped (so the page did show it).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from centralkit import NINH_KIEU
from edgekit import PASSWORD, csrf_of, login
from markupsafe import escape
from starlette.testclient import TestClient

from edge.accounts import add_account
from edge.app import create_app
from edge.settings import load
from ops.catalogue import apply_catalogue
from schema.catalogue import parse_catalogue
from sync import wire

CODE = "9.000001"


def payload(tag: str) -> str:
    """Script, attribute break-out, event handler and a javascript: URL, named by ``tag``."""
    return (
        f"<script>alert('{tag}')</script>\"><img src=x onerror=alert(1)>'>"
        f'<a href="javascript:alert(1)">{tag}'
    )


FIELDS = {
    "applicant_name": payload("applicant"),
    "address": payload("address"),
    "full_name": payload("fullname"),
    "procedure_name": payload("procname"),
    "sector": payload("sector"),
    "result": payload("result"),
    "legal_basis": payload("legal"),
    "document": payload("document"),
    "unit_name": payload("unitname"),
    "note_accept": payload("noteaccept"),
    "note_supplement": payload("notesupplement"),
}
EMAIL = "<script>alert(1)</script>@x.vn"
SCAN_NAME = "\"'><svg onload=alert(1)>scan.pdf"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


class Planted(HTMLParser):
    """What a payload would leave in the parsed page had it not been escaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and not (dict(attrs).get("src") or "").startswith("/static/"):
            self.found.append(f"inline <script> {attrs}")
        if tag in ("img", "svg") and "src" in names and dict(attrs)["src"] == "x":
            self.found.append(f"<{tag} src=x>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}=javascript:…>")


def assert_nothing_planted(html: str, where: str) -> None:
    parser = Planted()
    parser.feed(html)
    assert parser.found == [], f"{where}: {parser.found}"


def assert_shown_escaped(html: str, where: str, *texts: str) -> None:
    """Each text is on the page escaped, at least its first 24 characters (a select list or a
    chart shortens long names), which hold the payload's tag."""
    for text in texts:
        assert str(escape(text[:24])) in html, f"{where} does not show {text[:24]!r} escaped"


def hostile_catalogue(path: Path) -> Path:
    record = {
        "code": CODE,
        "name": FIELDS["procedure_name"],
        "sector": FIELDS["sector"],
        "handling_level": "commune",
        "processing_days": 3,
        "fee": 0,
        "fee_online": 0,
        "result": FIELDS["result"],
        "legal_basis": FIELDS["legal_basis"],
        "documents": [{"name": FIELDS["document"], "forms": ["original", "copy"], "count": 1}],
    }
    path.write_text(json.dumps([record], ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def hostile(node, client, tmp_path):
    """A dossier whose every free-text field is hostile, received and worked on through the real
    forms by a clerk whose full name is hostile, on a procedure and unit with hostile names."""
    apply_catalogue(node, parse_catalogue(hostile_catalogue(tmp_path / "c.json").read_bytes(), "json"))
    with node.replica.write() as w:
        w.append("unit", NINH_KIEU, "upsert", {"name": FIELDS["unit_name"]})
    add_account(node, "canbo_xss", FIELDS["full_name"], "clerk", PASSWORD)
    token = login(client, "canbo_xss")
    response = client.post(
        "/dossiers",
        data={
            "csrf": token,
            "procedure": CODE,
            "applicant_type": "organisation",
            "applicant_name": FIELDS["applicant_name"],
            "address": FIELDS["address"],
            "email": EMAIL,
            "phone": "0912345678",
            "address_unit": NINH_KIEU,
            "handling_unit": NINH_KIEU,
            "doc_0_form": "original",
            "doc_0_count": "1",
        },
        files=[("scans", (SCAN_NAME, PDF, "application/pdf"))],
    )
    assert response.status_code == 303, response.text[:500]
    dossier_id = response.headers["location"].split("/")[2]
    for action, note in (
        ("accept", FIELDS["note_accept"]),
        ("start", ""),
        ("request_supplement", FIELDS["note_supplement"]),
    ):
        done = client.post(
            f"/dossiers/{dossier_id}/actions", data={"csrf": token, "action": action, "note": note}
        )
        assert done.status_code == 303, (action, done.text[:300])
    return dossier_id


def test_hostile_text_is_escaped_in_every_page_that_shows_it(client, node, hostile):
    dossier_id = hostile
    scan_shown = node.replica.state("dossier", dossier_id)["attachments"].popitem()[1]["name"]
    everywhere = (FIELDS["full_name"],)
    pages = {
        "/": (FIELDS["applicant_name"],),
        "/dossiers": (FIELDS["applicant_name"],),
        "/dossiers?q=script": (FIELDS["applicant_name"],),
        f"/dossiers?procedure={CODE}": (FIELDS["applicant_name"], FIELDS["procedure_name"]),
        f"/dossiers/{dossier_id}": (
            FIELDS["applicant_name"], FIELDS["address"], EMAIL, FIELDS["procedure_name"], FIELDS["document"],
            FIELDS["note_accept"], FIELDS["note_supplement"], FIELDS["unit_name"], scan_shown,
        ),
        f"/dossiers/{dossier_id}/receipt": (
            FIELDS["applicant_name"], FIELDS["address"], FIELDS["procedure_name"], FIELDS["document"],
            FIELDS["unit_name"],
        ),
        f"/dossiers/{dossier_id}/record": (),
        "/reports": (FIELDS["procedure_name"],),
        "/dossiers/new": (FIELDS["procedure_name"], FIELDS["sector"]),
        f"/dossiers/new?procedure={CODE}": (FIELDS["procedure_name"], FIELDS["document"]),
        "/account/password": (),
    }  # fmt: skip
    for path, shown in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert_nothing_planted(response.text, path)
        assert_shown_escaped(response.text, path, *everywhere, *shown)
    partial = client.get("/dossiers", params={"q": "script"}, headers={"HX-Request": "true"})
    assert_nothing_planted(partial.text, "the live search's partial")
    assert_shown_escaped(partial.text, "the live search's partial", FIELDS["applicant_name"])
    state = client.post(
        f"/dossiers/{dossier_id}/actions",
        data={"csrf": csrf_of(client.get("/").text), "action": "withdraw", "note": ""},
        headers={"HX-Request": "true"},
    )
    assert_nothing_planted(state.text, "the action's partial")
    assert_shown_escaped(state.text, "the action's partial", FIELDS["note_supplement"])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/dossiers", {"q": payload("q")}),
        ("/dossiers", {"procedure": payload("proc")}),
        ("/dossiers", {"status": payload("status")}),
        ("/dossiers", {"received_from": payload("from")}),
        ("/dossiers/new", {"q": payload("pick")}),
        ("/dossiers/new", {"procedure": payload("unknown")}),
        ("/login", {"next": payload("next")}),
        ("/login", {"next": "javascript:alert(1)"}),
        ("/lang/en", {"next": "javascript:alert(1)"}),
        ("/dossiers/" + payload("id").replace("/", "%2F"), {}),
    ],
)
def test_query_strings_are_never_reflected_as_markup(client, path, params):
    if path != "/login":
        login(client, "canbo01")
    response = client.get(path, params=params)
    assert response.status_code in (200, 303, 404, 422), response.status_code
    assert_nothing_planted(response.text, f"{path}?{params}")
    location = response.headers.get("location", "")
    assert not location.lower().startswith("javascript:"), location
    if response.status_code == 200 and path == "/login":
        assert 'name="next" value="/"' in response.text  # not a local path: replaced, not echoed


def test_usernames_of_failed_logins_are_escaped_on_the_audit_page(client, node):
    name = payload("username")
    page = client.get("/login")
    client.post("/login", data={"username": name, "password": "x", "csrf": csrf_of(page.text)})
    login(client, "lanhdao01")
    response = client.get("/audit")
    assert response.status_code == 200
    assert_nothing_planted(response.text, "/audit")
    assert_shown_escaped(response.text, "/audit", name[:64])


def test_what_a_box_says_in_its_hello_is_escaped_on_the_fleet_pages(world):
    """A rogue or broken box controls its software string and its last error: city IT's pages
    show both."""
    edge = world.edges[NINH_KIEU]
    software, error = payload("software")[:100], payload("lasterror")
    world.peer(NINH_KIEU).hello(wire.Hello(software, 0, 0, edge.clock.wall_ms(), last_error=error))
    with httpx.Client(base_url=world.url, timeout=30) as city:
        page = city.get("/login")
        token = csrf_of(page.text)
        done = city.post(
            "/login", data={"username": "quantri", "password": PASSWORD, "csrf": token, "next": "/"}
        )
        assert done.status_code == 303
        for path in ("/fleet", "/fleet/table", f"/fleet/nodes/{edge.identity.node}", "/fleet/routing"):
            response = city.get(path)
            assert response.status_code == 200, path
            assert_nothing_planted(response.text, path)
        node_page = city.get(f"/fleet/nodes/{edge.identity.node}").text
        assert_shown_escaped(node_page, "the node's page", software)
        assert_shown_escaped(node_page, "the node's page", error)
        missing = city.get("/fleet/nodes/" + payload("node").replace("/", "%2F"))
        assert missing.status_code == 404
        assert_nothing_planted(missing.text, "a node that does not exist")


def test_the_parser_would_see_a_planted_payload():
    """The check above is not blind: the raw payloads, unescaped, are all found."""
    parser = Planted()
    parser.feed(f"<p>{payload('x')}</p><p>{EMAIL}</p><svg onload=alert(1)>")
    assert len(parser.found) >= 5
    assert any("inline <script>" in f for f in parser.found)
    assert any("javascript" in f for f in parser.found)
    assert any("onerror" in f for f in parser.found)
    assert any("onload" in f for f in parser.found)


def test_the_receipt_prints_hostile_text_escaped_for_every_language(client, hostile):
    for language in ("vi", "en"):
        client.get(f"/lang/{language}?next=/")
        receipt = client.get(f"/dossiers/{hostile}/receipt")
        assert f'lang="{language}"' in receipt.text
        assert_nothing_planted(receipt.text, f"the receipt ({language})")
        assert_shown_escaped(receipt.text, "the receipt", FIELDS["applicant_name"], FIELDS["full_name"])


def test_the_citys_own_pages_escape_a_hostile_account_name(world):
    """The city reuses the commune's pages (an admin there sees every unit): escaping is the
    templates', wherever they run."""
    city = world.city.node
    add_account(city, "canbo_city", FIELDS["full_name"], "admin", PASSWORD, NINH_KIEU)
    with TestClient(create_app(load(city.data_dir), city, background=False), follow_redirects=False) as c:
        login(c, "canbo_city")
        for path in ("/", "/dossiers", "/reports"):
            page = c.get(path)
            assert page.status_code == 200, path
            assert_nothing_planted(page.text, f"the city's {path}")
            assert_shown_escaped(page.text, f"the city's {path}", FIELDS["full_name"])
