"""Browser Back after a live search (issue 14 item 9): the box and the results must agree, and
restoring a page must not break the content-security policy (the ``new_context`` fixture fails
the test on any console error: Chromium reports CSP violations there)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect


def receive_by_api(server: Any, name: str) -> None:
    token = httpx.post(
        f"{server.url}/api/v1/auth/token",
        json={"username": server.clerk.username, "password": server.password},
        timeout=10,
    ).json()["token"]
    body = {
        "procedure": "2.000720",
        "applicant_name": name,
        "citizen_id": "092085001234",
        "dob": "1985-03-14",
    }
    answer = httpx.post(
        f"{server.url}/api/v1/dossiers", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 201, answer.text


RELOAD_MS = 20_000
"""Back and Forward reload the page (htmx keeps no history cache): on a loaded machine that
takes longer than the default 5 s wait."""


def search(page: Page, text: str, finds: str) -> None:
    """Type ``text`` into the live search as one change: typed key by key, a loaded machine can
    let the search's 300 ms pause pass between two keys and push a history entry for "la"."""
    box = page.locator('input[name="q"]')
    box.fill(text)
    box.press("End")  # the keyup the live search listens for
    expect(page).to_have_url(re.compile(rf"q={text}"))
    expect(page.locator("#results")).to_contain_text(finds)


def test_back_after_a_live_search_shows_the_search_it_returns_to(server: Any, page: Page) -> None:
    receive_by_api(server, "Trần Thị Lan")
    receive_by_api(server, "Lê Văn Phúc")
    server.log_in(page, server.clerk.username)
    page.goto(f"{server.url}/dossiers")
    search(page, "lan", "Trần Thị Lan")
    search(page, "phuc", "Lê Văn Phúc")
    expect(page.locator("#results")).not_to_contain_text("Trần Thị Lan")

    page.go_back()
    expect(page).to_have_url(re.compile(r"q=lan"), timeout=RELOAD_MS)
    expect(page.locator('input[name="q"]')).to_have_value("lan", timeout=RELOAD_MS)
    expect(page.locator("#results")).to_contain_text("Trần Thị Lan", timeout=RELOAD_MS)
    expect(page.locator("#results")).not_to_contain_text("Lê Văn Phúc", timeout=RELOAD_MS)

    page.go_back()
    expect(page).to_have_url(re.compile(r"/dossiers$"), timeout=RELOAD_MS)
    expect(page.locator('input[name="q"]')).to_have_value("", timeout=RELOAD_MS)

    page.go_forward()
    expect(page).to_have_url(re.compile(r"q=lan"), timeout=RELOAD_MS)
    expect(page.locator('input[name="q"]')).to_have_value("lan", timeout=RELOAD_MS)
    expect(page.locator("#results")).not_to_contain_text("Lê Văn Phúc", timeout=RELOAD_MS)
    # Nothing of the clerk's searches (names, citizen ids) is kept in the browser's storage.
    assert page.evaluate("() => localStorage.getItem('htmx-history-cache')") in (None, "[]")
