"""What a connected box says about sending (issue 14 items 10 and 11), in a real browser: a box
served by ``motcua edge serve`` that syncs with a city served by ``motcua central serve``.

While the link works, a new dossier says it goes at the next sync, not "waiting for the link";
with the city gone, "Sync now" answers in the page why it did not sync, with and without
JavaScript."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from servers import NINH_KIEU, PASSWORD, CityDir, Server, edge_dir, edge_server, free_port

CLERK = "canbo_nk"
NO_LINK_VI = "Không kết nối được với máy chủ thành phố."


@dataclass
class Connected:
    box: Server
    city: Server

    @property
    def url(self) -> str:
        return self.box.url


def wait_for(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def connected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connected]:
    tmp = tmp_path_factory.mktemp("connected")
    city = CityDir(tmp / "city")
    city.add_account(CLERK, "clerk", NINH_KIEU, "Nguyễn Thị Lan")
    port = free_port()
    node_file = city.add_node(NINH_KIEU, f"http://127.0.0.1:{port}", tmp / "nk.node.json")
    box_dir = edge_dir(tmp / "box", node_file, sync_interval_s=60, sync_max_backoff_s=120)
    central = city.server(port, tmp).start()
    box = edge_server(box_dir, free_port(), tmp).start()
    try:

        def clerk_arrived() -> bool:  # accounts reach the box with its first sync
            answer = httpx.post(
                f"{box.url}/api/v1/auth/token", json={"username": CLERK, "password": PASSWORD}, timeout=5
            )
            return answer.status_code == 200

        wait_for(clerk_arrived, "the box's first sync")
        yield Connected(box, central)
    finally:
        box.stop()
        central.stop()


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/login")
    form = page.locator('form[action="/login"]')
    form.locator('input[name="username"]').fill(CLERK)
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('[type="submit"]').click()
    page.wait_for_url(f"{url}/")


def receive(url: str) -> str:
    token = httpx.post(
        f"{url}/api/v1/auth/token", json={"username": CLERK, "password": PASSWORD}, timeout=10
    ).json()["token"]
    body = {"procedure": "2.000720", "applicant_name": "Trần Văn Bảy", "citizen_id": "092085001234"}
    answer = httpx.post(
        f"{url}/api/v1/dossiers", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_a_new_dossier_while_online_goes_at_the_next_sync(connected: Connected, page: Page) -> None:
    log_in(page, connected.url)
    expect(page.locator("#sync-badge")).to_have_class(re.compile(r"\bonline\b"))
    dossier = receive(connected.url)
    page.goto(f"{connected.url}/dossiers/{dossier}")
    notice = page.locator("[data-next-sync-in]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Sẽ được gửi lên thành phố ở lần đồng bộ tới")
    expect(page.locator("[data-waiting-since]")).to_have_count(0)


def test_sync_now_while_offline_says_why_in_the_page(
    connected: Connected, page: Page, no_js_context: BrowserContext
) -> None:
    connected.city.stop()
    log_in(page, connected.url)
    page.locator("#sync-badge button").click()
    outcome = page.locator("#sync-outcome")
    expect(outcome).to_be_visible(timeout=20_000)
    expect(outcome).to_contain_text(NO_LINK_VI)
    expect(page.locator("#sync-badge")).to_have_class(re.compile(r"\boffline\b"))

    plain = no_js_context.new_page()  # the same answer without JavaScript, after the redirect
    log_in(plain, connected.url)
    plain.goto(f"{connected.url}/dossiers")
    plain.locator("#sync-badge button").click()
    plain.wait_for_url(re.compile(r"/dossiers$"), timeout=20_000)
    expect(plain.locator("#sync-outcome")).to_contain_text(NO_LINK_VI)
    plain.reload()
    expect(plain.locator("#sync-outcome")).to_have_count(0)  # said once
