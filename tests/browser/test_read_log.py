"""Who looked at whom, in a real browser on a real ``motcua edge serve`` (issue 16 point 4).

A clerk reads a dossier three ways (its page, a scan from the page, its API JSON); the leader
finds those reads on "Ai đã xem" by the citizen's id, exports the citizen's data as one zip
through the page's form, and sees the export in the log; the clerk's browser is refused both.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, expect
from test_api import small_pdf as tiny_pdf

CITIZEN = "092190007777"  # this test's own applicant on the shared server
NAME = "Võ Thị Hồng Nhung"


def receive_with_a_scan(server: Any) -> tuple[str, str, dict[str, str]]:
    """A dossier with a PDF received through the API by the clerk: its id, code and the token."""
    token = httpx.post(
        f"{server.url}/api/v1/auth/token",
        json={"username": server.clerk.username, "password": server.password},
        timeout=30,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"procedure": "2.000720", "applicant_name": NAME, "citizen_id": CITIZEN, "dob": "1990-05-02"}
    created = httpx.post(f"{server.url}/api/v1/dossiers", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    dossier = created.json()
    added = httpx.post(
        f"{server.url}/api/v1/dossiers/{dossier['id']}/attachments",
        files={"scans": ("don-de-nghi.pdf", tiny_pdf(), "application/pdf")},
        headers=headers,
        timeout=30,
    )
    assert added.status_code in (200, 201), added.text
    return dossier["id"], dossier["code"], headers


def test_the_leader_sees_page_scan_and_api_reads_and_exports_the_citizens_data(
    server: Any, new_context: Any, tmp_path: Path
) -> None:
    dossier, code, clerk_api = receive_with_a_scan(server)

    # The clerk reads it: through the API, then its page, then the scan linked on the page.
    api = httpx.get(f"{server.url}/api/v1/dossiers/{dossier}", headers=clerk_api, timeout=30)
    assert api.status_code == 200
    clerk: BrowserContext = new_context()
    page = clerk.new_page()
    server.log_in(page, server.clerk.username)
    page.goto(f"{server.url}/dossiers/{dossier}")
    expect(page.locator("h1")).to_contain_text(code)
    with page.expect_download() as fetched:
        page.get_by_role("link", name="don-de-nghi.pdf").click()
    assert Path(fetched.value.path()).read_bytes() == tiny_pdf()

    # The clerk may not see who looked, nor export anyone's data.
    expect(page.locator("nav")).not_to_contain_text("Ai đã xem")
    # (Asked with the browser's own session; a page load of a 403 would be a console error.)
    assert page.request.get(f"{server.url}/audit/reads").status == 403
    export = page.request.post(f"{server.url}/audit/subject", form={"citizen_id": CITIZEN})
    assert export.status == 403

    # The leader finds the three reads by the citizen's id.
    leader = new_context().new_page()
    server.log_in(leader, server.leader.username)
    leader.get_by_role("link", name="Ai đã xem").click()
    expect(leader.locator("h1")).to_have_text("Ai đã xem hồ sơ nào")
    filters = leader.locator('form[role="search"]')
    filters.locator('input[name="citizen_id"]').fill(CITIZEN)
    filters.get_by_role("button", name="Tìm kiếm").click()
    rows = leader.locator("#reads tbody tr")
    expect(rows).to_have_count(3)
    whats = [rows.nth(i).get_attribute("data-what") for i in range(3)]
    assert whats == ["scan", "page", "api"]  # newest first
    for i in range(3):
        assert rows.nth(i).get_attribute("data-account") == server.clerk.username
        expect(rows.nth(i)).to_contain_text(code)
        expect(rows.nth(i)).to_contain_text(NAME)

    # The export: one zip with the dossier, its timeline, who read it, and the scan.
    with leader.expect_download() as fetched:
        leader.locator("#subject-export").get_by_role("button").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(fetched.value.path()).read_bytes()))
    subject = json.loads(archive.read("subject.json"))
    assert subject["citizen_id"] == CITIZEN
    (held,) = subject["dossiers"]
    assert held["code"] == code
    assert held["applicant_name"] == NAME
    assert [step["action"] for step in held["steps"]] == ["create"]
    (scan,) = held["attachments"]
    assert archive.read(scan["file"]) == tiny_pdf()
    assert sorted(r["what"] for r in subject["reads"]) == ["api", "page", "scan"]

    leader.reload()
    expect(rows).to_have_count(4)
    assert rows.first.get_attribute("data-what") == "export"
    assert rows.first.get_attribute("data-account") == server.leader.username
