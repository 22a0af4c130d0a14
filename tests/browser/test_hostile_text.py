"""Hostile text in a real browser: a clerk whose full name is a script, a dossier whose every
free-text field is one, typed through the real forms, then every page that shows them visited
in Chromium with JavaScript on. No payload may run: a dialog (alert) fails the test, and so does
any console error (Chromium reports a script its content-security policy blocked, so even a
payload that was planted but stopped by the policy is caught; tests/browser/conftest.py's Watch).

The box is a server of its own (``motcua edge init``, ``user add`` with the hostile name), not
the session's: the other browser tests count and search what they received.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect
from servers import Server as Process
from servers import free_port, motcua

UNIT = "31135"  # Phường Ninh Kiều, Cần Thơ
PASSWORD = "Matkhau123"
HOUSEHOLD_BUSINESS = "2.000720"
SCRIPT = "<script>alert('script')</script>"
IMG = "\"><img src=x onerror=alert('img')>"
SVG = "'><svg onload=alert('svg')>"
LINK = "<a href=\"javascript:alert('link')\">bấm vào đây</a>"
FULL_NAME = f"Nguyễn {SCRIPT}{IMG}"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="module")
def hostile_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hostile")
    data = root / "node"
    secret = root / "password.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    subprocess.run(
        motcua("edge", "init", "--data", str(data), "--unit", UNIT), check=True, capture_output=True
    )
    for username, full_name, role in (
        ("canbo_xss", FULL_NAME, "clerk"),
        ("lanhdao01", "Trần Văn Hùng", "leader"),
    ):
        subprocess.run(
            motcua(
                "user", "add", "--data", str(data), "--username", username, "--full-name", full_name,
                "--role", role, "--password-file", str(secret),
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
    port = free_port()
    command = motcua("edge", "serve", "--data", str(data), "--host", "127.0.0.1", "--port", str(port))
    process = Process("edge", command, port, root / "serve.log", ready_path="/login").start()
    try:
        yield process.url
    finally:
        process.stop()


class Dialogs:
    """Every alert, confirm or prompt a page opened: none may."""

    def __init__(self, context: BrowserContext) -> None:
        self.seen: list[str] = []
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        page.on("dialog", self.dismiss)

    def dismiss(self, dialog: Dialog) -> None:
        self.seen.append(f"{dialog.type}: {dialog.message} on {dialog.page.url if dialog.page else '?'}")
        dialog.dismiss()


def log_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    form = page.locator('form[action="/login"]')
    form.locator('input[name="username"]').fill(username)
    form.locator('input[name="password"]').fill(password)
    with page.expect_navigation():
        form.locator('[type="submit"]').click()


def test_no_payload_runs_in_any_page_that_shows_it(
    hostile_box: str, context: BrowserContext, tmp_path: Path
) -> None:
    url = hostile_box
    dialogs = Dialogs(context)
    page = context.new_page()

    # The detector is live: a dialog the test opens itself is seen.
    page.goto(f"{url}/login")
    page.evaluate("() => setTimeout(() => alert('probe'), 0)")
    page.wait_for_timeout(200)
    assert dialogs.seen == [f"alert: probe on {url}/login"]
    dialogs.seen.clear()

    # An attacker on the LAN (not this browser) puts a hostile username into the audit log.
    with httpx.Client(base_url=url, timeout=30) as attacker:
        token = re.search(r'name="csrf" value="([^"]+)"', attacker.get("/login").text)
        assert token
        refused = attacker.post(
            "/login", data={"username": f"{SCRIPT}{IMG}", "password": "sai-mat-khau", "csrf": token.group(1)}
        )
        assert refused.status_code == 400

    log_in(page, url, "canbo_xss")
    expect(page.locator("header.top")).to_contain_text(FULL_NAME)  # shown as text, not markup

    scan = tmp_path / f"{SVG}.pdf"
    scan.write_bytes(PDF)
    page.goto(f"{url}/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    form = page.locator('form:has([name="applicant_name"])')
    form.locator('input[name="applicant_type"][value="organisation"]').check()
    form.locator('[name="applicant_name"]').fill(f"Công ty {SCRIPT}{IMG}")
    form.locator('[name="phone"]').fill("0912345678")
    form.locator('[name="address"]').fill(f"{LINK} {SVG}")
    form.locator('input[name="scans"]').set_input_files([scan])
    with page.expect_navigation():
        form.locator('[type="submit"]').last.click()
    receipt = page.url
    assert receipt.endswith("/receipt"), receipt
    expect(page.locator("main")).to_contain_text(f"Công ty {SCRIPT}")
    dossier = receipt.removesuffix("/receipt")

    page.goto(dossier)
    action = page.locator('form.action:has(input[name="action"][value="accept"])')
    action.locator('[name="note"]').fill(f"{IMG}{LINK}")
    action.locator('[type="submit"]').click()  # htmx swaps the dossier's state in place
    expect(page.locator("#dossier-state")).to_contain_text("javascript:alert('link')")

    # The live search (htmx swaps the results in place) with a hostile query.
    page.goto(f"{url}/dossiers")
    page.locator('input[name="q"]').first.fill(f"công ty {SCRIPT}")
    page.wait_for_timeout(1_000)

    for path in (
        "/",
        "/dossiers",
        f"/dossiers?q={SCRIPT}",
        dossier.removeprefix(url),
        receipt.removeprefix(url),
        dossier.removeprefix(url) + "/record",
        "/reports",
        f"/dossiers/new?q={IMG}",
    ):
        page.goto(url + path)
        page.wait_for_load_state("load")
        assert (
            page.evaluate(
                "() => document.querySelectorAll('img[src=\"x\"], svg[onload], a[href^=javascript]').length"
            )
            == 0
        ), path

    log_in(page, url, "lanhdao01")
    page.goto(f"{url}/audit")
    expect(page.locator("main")).to_contain_text(SCRIPT)
    page.goto(f"{url}/login?next=javascript:alert('next')")
    page.locator('input[name="username"]').fill("lanhdao01")
    page.locator('input[name="password"]').fill(PASSWORD)
    with page.expect_navigation():
        page.locator('form[action="/login"] [type="submit"]').click()
    assert page.url == f"{url}/", page.url

    assert dialogs.seen == [], dialogs.seen
