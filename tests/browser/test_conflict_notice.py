"""The clerk whose action lost to another box's is told on the home page, until they open it.

The node is prepared in this process before its server starts (one writer at a time): a dossier
routed to Cái Khế, refused there while the link was down, accepted here by canbo01 who told the
citizen a date; the two logs then merged, so the refusal stands and the acceptance is a conflict.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edgekit import ACCOUNTS, OTHER_UNIT, PASSWORD, UNIT, actor, receive_sample
from playwright.sync_api import Page, expect
from servers import Server as Process
from servers import free_port, motcua

from edge.accounts import add_account
from edge.dossiers import perform
from edge.node import init_node
from schema import KINDS, migrate
from sync.clock import Clock, system_wall_ms
from sync.identity import Identity
from sync.replica import Replica

NOTE = "Đã hẹn công dân ngày 20"
CLERK = "canbo01"


@pytest.fixture(scope="module")
def disputed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("disputed")
    node = init_node(root / "node", UNIT)
    other = Replica(
        root / "caikhe.db",
        Identity.generate(OTHER_UNIT),
        KINDS,
        clock=Clock(wall=lambda: system_wall_ms() - 60_000),  # its refusal comes first in HLC order
        migrate=migrate,
    )
    try:
        full_name, role, unit = ACCOUNTS[CLERK]
        add_account(node, CLERK, full_name, role, PASSWORD, unit)
        other.trust(node.identity.node, node.identity.public_raw)
        node.replica.trust(other.identity.node, other.identity.public_raw)
        received = receive_sample(node, applicant_name="Võ Thị Sáu", handling_unit=OTHER_UNIT)
        for batch in node.replica.batches(other.vector()):
            other.merge(batch)
        with other.write() as w:
            refusal = {"to": 3, "by": "canbo02", "role": "clerk", "note": "Sai thẩm quyền"}
            w.append("dossier", received.id, "transition", refusal)
        perform(node, actor(CLERK), received.id, "accept", note=NOTE)
        for batch in other.batches(node.replica.vector()):
            node.replica.merge(batch)
        assert len(node.replica.conflicts("dossier", received.id)) == 1
    finally:
        other.close()
        node.close()
    port = free_port()
    log = root / "serve.log"
    data = str(root / "node")
    command = motcua("edge", "serve", "--data", data, "--host", "127.0.0.1", "--port", str(port))
    process = Process("edge", command, port, log, ready_path="/login").start()
    try:
        yield process.url, received.code
    finally:
        process.stop()


def log_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    form = page.locator('form[action="/login"]')
    form.locator('input[name="username"]').fill(username)
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('[type="submit"]').click()
    page.wait_for_url(f"{url}/")


def test_the_losing_clerk_sees_the_notice_until_opening_the_dossier(disputed, no_js_context):
    url, code = disputed
    page = no_js_context.new_page()  # a plain link and a plain page: no script needed
    log_in(page, url, CLERK)
    notice = page.locator("#lost-actions")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(code)
    expect(notice).to_contain_text(NOTE)
    expect(notice).to_contain_text("hồ sơ đã kết thúc ở trạng thái 3 (Không được tiếp nhận)")
    expect(page.locator('a[href="/dossiers?conflicts=1"]')).to_contain_text("1")

    notice.get_by_role("link", name=code).click()
    expect(page.locator("section.conflicts")).to_contain_text(NOTE)
    page.goto(f"{url}/")
    expect(page.locator("#lost-actions")).to_have_count(0)
    expect(page.locator('a[href="/dossiers?conflicts=1"]')).to_contain_text("1")  # still to settle
