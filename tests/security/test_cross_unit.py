"""A clerk of one unit reaching for another unit's dossier by its id or code: through the pages,
their htmx partials, the receipt, the scans, the transmission record (page and JSON), the JSON
API and the search.

The answer is the one an absent dossier gets (404, or an empty search), so ids cannot be probed;
the audit log says what it was (``cross_unit``, who, which dossier); nothing changes. A search by
name finds nothing and is not audited (names are shared between units: it is not a reach).
"""

from __future__ import annotations

import hashlib

import pytest
from edgekit import PASSWORD, actor, login, receive_sample

from edge.dossiers import attach
from edge.uploads import check_scan

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
NAME = "Võ Thị Sáu"
CITIZEN_ID = "092085001234"


@pytest.fixture
def theirs(node):
    """A dossier of Phường Ninh Kiều (received and handled there), with one scan."""
    received = receive_sample(node, applicant_name=NAME, citizen_id=CITIZEN_ID)
    attach(node, actor("canbo01"), received.id, [check_scan("cccd.pdf", PDF, 1 << 20)])
    return received


def bearer(client, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def reaches(dossier_id: str, digest: str, token: str):
    """(what, method, path, keyword arguments) of every way to one dossier by its id."""
    base = f"/dossiers/{dossier_id}"
    api = f"/api/v1/dossiers/{dossier_id}"
    upload = {"files": [("scans", ("b.png", PNG, "image/png"))]}
    return [
        ("page", "GET", base, {}),
        ("htmx page", "GET", base, {"headers": {"HX-Request": "true"}}),
        ("receipt", "GET", f"{base}/receipt", {}),
        ("scan", "GET", f"{base}/attachments/{digest}", {}),
        ("record", "GET", f"{base}/record", {}),
        ("record.json", "GET", f"{base}/record.json", {}),
        ("action", "POST", f"{base}/actions", {"data": {"csrf": token, "action": "accept"}}),
        ("transfer", "POST", f"{base}/actions", {"data": {"csrf": token, "action": "transfer",
                                                          "handling_unit": "31120"}}),
        ("upload", "POST", f"{base}/attachments", {"data": {"csrf": token}, **upload}),
        ("api read", "GET", api, {}),
        ("api action", "POST", f"{api}/actions", {"json": {"action": "accept"}}),
        ("api upload", "POST", f"{api}/attachments", upload),
    ]  # fmt: skip


def test_another_units_clerk_gets_404_everywhere_each_reach_is_audited_and_nothing_changes(
    client, node, theirs, snapshot, audited
):
    digest = hashlib.sha256(PDF).hexdigest()
    token = login(client, "canbo_caikhe")
    api_headers = bearer(client, "canbo_caikhe")
    before = snapshot(node, ("dossier", theirs.id))
    for what, method, path, kwargs in reaches(theirs.id, digest, token):
        mark = audited.mark(node)
        if path.startswith("/api/"):
            kwargs = {**kwargs, "headers": api_headers}
        response = client.request(method, path, **kwargs)
        htmx = kwargs.get("headers", {}).get("HX-Request") == "true"
        assert response.status_code == (200 if htmx else 404), (what, response.status_code)
        assert NAME not in response.text, what
        assert CITIZEN_ID not in response.text, what
        if path.startswith("/api/"):
            assert response.json()["error"]["code"] == "not_found", what
        else:
            assert 'role="alert"' in response.text, what
        [entry] = audited.since(node, mark)
        assert (entry.event, entry.actor, entry.path, entry.method) == (
            "cross_unit",
            "canbo_caikhe",
            path,
            method,
        )
        assert entry.detail["dossier"] == theirs.id, what
    assert snapshot(node, ("dossier", theirs.id)) == before


def test_the_answer_for_another_units_dossier_is_the_answer_for_an_absent_one(client, node, theirs, audited):
    """Nothing tells the two apart but the audit log: an id cannot be probed."""
    login(client, "canbo_caikhe")
    absent = "0" * 32
    for suffix in ("", "/receipt", "/record", "/record.json"):
        mark = audited.mark(node)
        hidden = client.get(f"/dossiers/{theirs.id}{suffix}")
        missing = client.get(f"/dossiers/{absent}{suffix}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace(theirs.id, absent) == missing.text.replace(theirs.id, absent)
        assert [e.event for e in audited.since(node, mark)] == ["cross_unit"]


def test_a_search_by_code_of_another_units_dossier_finds_nothing_and_is_audited(
    client, node, theirs, audited
):
    login(client, "canbo_caikhe")
    headers = bearer(client, "canbo_caikhe")
    searches = [
        ("/dossiers", {}),
        ("/dossiers", {"HX-Request": "true"}),  # the live search's partial
        ("/api/v1/dossiers", headers),
    ]
    for path, extra in searches:
        mark = audited.mark(node)
        response = client.get(path, params={"q": theirs.code}, headers=extra)
        assert response.status_code == 200
        assert theirs.id not in response.text
        assert NAME not in response.text
        if path.startswith("/api/"):
            assert response.json()["items"] == []
        [entry] = audited.since(node, mark)
        assert (entry.event, entry.actor, entry.path) == ("cross_unit", "canbo_caikhe", path)
        assert entry.detail["dossier"] == theirs.code


def test_a_search_by_name_or_citizen_id_finds_nothing_of_another_unit_and_is_not_audited(
    client, node, theirs, audited
):
    login(client, "canbo_caikhe")
    headers = bearer(client, "canbo_caikhe")
    mark = audited.mark(node)
    for q in ("vo thi sau", "Võ Thị Sáu", CITIZEN_ID, "cccd.pdf"):
        page = client.get("/dossiers", params={"q": q})
        assert page.status_code == 200
        assert theirs.id not in page.text
        api = client.get("/api/v1/dossiers", params={"q": q}, headers=headers)
        assert api.json()["items"] == []
        assert api.json()["total"] == 0
    assert audited.since(node, mark) == []
    # The unit's own clerk finds it by each of them (the search itself works).
    login(client, "canbo01")
    for q in ("vo thi sau", CITIZEN_ID, theirs.code):
        assert theirs.id in client.get("/dossiers", params={"q": q}).text, q
    assert audited.since(node, mark) == []
