"""A clerk's day in a real browser: log in, receive, print the receipt, find, move to "returned".

Selectors follow the pages' contract (form field names, action values, links by dossier code),
not their layout, so a restyled page does not break these tests.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page, expect

HOUSEHOLD_BUSINESS = "2.000720"  # Đăng ký thành lập hộ kinh doanh
CODE = re.compile(r"\b\d{5}-\d{6}-\d{4}\b")  # <unit>-<yymmdd>-<daily sequence>
RECEIPT_URL = re.compile(r"/dossiers/([0-9a-f]+)/receipt$")
RETURNED_VI = "Đã trả kết quả"


# --- scans a clerk would upload -----------------------------------------------------------------


def tiny_pdf() -> bytes:
    """A valid one-page PDF, its cross-reference table computed from the real offsets."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def tiny_png(width: int = 8, height: int = 8) -> bytes:
    """A valid grey PNG: signature, IHDR, one zlib IDAT, IEND, each chunk with its CRC."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([0x80]) * width for _ in range(height))  # filter 0, grey
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def write_scans(directory: Path) -> list[Path]:
    pdf = directory / "giay-de-nghi.pdf"
    png = directory / "cccd-mat-truoc.png"
    pdf.write_bytes(tiny_pdf())
    png.write_bytes(tiny_png())
    return [pdf, png]


# --- what a clerk does, step by step --------------------------------------------------------------


def choose(form: Locator, name: str, value: str) -> None:
    """Pick ``value`` for field ``name``, whether the page shows it as radios or as a select."""
    field = form.locator(f'[name="{name}"]')
    if field.count() == 0:
        return
    first = field.first
    tag = first.evaluate("e => e.tagName.toLowerCase()")
    if tag == "select":
        first.select_option(value)
    elif first.get_attribute("type") == "radio":
        form.locator(f'input[name="{name}"][value="{value}"]').check()
    else:
        first.fill(value)


def receive(page: Page, server: Any, name: str, citizen_id: str, scans: list[Path] | None) -> str:
    """Receive a household-business registration dossier; returns the receipt's URL."""
    page.goto(f"{server.url}/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    form = page.locator('form:has([name="applicant_name"])')
    expect(form).to_have_count(1)
    choose(form, "applicant_type", "citizen")
    form.locator('[name="applicant_name"]').fill(name)
    form.locator('[name="citizen_id"]').fill(citizen_id)
    dob = form.locator('[name="dob"]')
    # A date input takes ISO from scripts; a text field takes the clerk's dd/mm/yyyy.
    dob.fill("1985-03-14" if dob.get_attribute("type") == "date" else "14/03/1985")
    form.locator('[name="phone"]').fill("0912345678")
    form.locator('[name="address"]').fill("12 Mậu Thân")
    if scans:
        form.locator('input[name="scans"]').set_input_files(scans)
    with page.expect_navigation():
        form.locator('[type="submit"]').last.click()
    expect(page).to_have_url(RECEIPT_URL)
    return page.url


def check_receipt(page: Page, name: str) -> tuple[str, Locator]:
    """The receipt names the applicant, the dossier code and carries the code as a QR (SVG)."""
    main = page.locator("main")
    expect(main).to_contain_text(name)
    found = CODE.search(main.inner_text())
    assert found, "the receipt shows no dossier code"
    qr = main.locator(".qr svg, svg").first
    expect(qr).to_be_visible()
    return found.group(0), qr


def act(page: Page, action: str) -> None:
    """Take an action from the dossier page: a button named ``action`` or a form carrying it."""
    button = page.locator(
        f'button[name="action"][value="{action}"], '
        f'form:has(input[name="action"][value="{action}"]) [type="submit"]'
    ).first
    expect(button).to_be_visible()
    button.click()


def expect_action_offered(page: Page, action: str) -> None:
    expect(
        page.locator(
            f'button[name="action"][value="{action}"], form:has(input[name="action"][value="{action}"])'
        ).first
    ).to_be_attached()


# --- the tests -------------------------------------------------------------------------------------


def test_clerk_receives_prints_finds_and_returns_result(
    server: Any, new_context: Callable[..., BrowserContext], page: Page, tmp_path: Path
) -> None:
    server.log_in(page, server.clerk.username)
    expect(page.locator("header.top")).to_contain_text(server.clerk.full_name)

    receipt_url = receive(page, server, "Nguyễn Văn An", "092085001234", write_scans(tmp_path))
    dossier_url = receipt_url.removesuffix("/receipt")
    code, qr = check_receipt(page, "Nguyễn Văn An")

    screenshot = tmp_path / "receipt.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    # "Print": the header and navigation disappear, the QR code stays, and it makes a PDF.
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("nav")).to_be_hidden()
    expect(qr).to_be_visible()
    pdf = page.pdf(format="A4", path=str(tmp_path / "receipt.pdf"))
    assert pdf.startswith(b"%PDF")
    assert len(pdf) > 1000
    page.emulate_media(media="screen")

    # Found again by an unaccented search, typed as a clerk types: the list updates in place.
    page.goto(f"{server.url}/dossiers")
    page.evaluate("window.stayedOnPage = true")  # gone if the page is loaded anew
    search = page.locator('input[name="q"]').first
    search.press_sequentially("nguyen van an", delay=20)
    row_link = page.get_by_role("link", name=code)
    expect(row_link).to_be_visible()
    expect(page.locator("main")).to_contain_text("Nguyễn Văn An")
    assert page.evaluate("window.stayedOnPage") is True, "the live search reloaded the page"
    row_link.click()
    page.wait_for_url(dossier_url)
    page.evaluate("window.stayedOnPage = true")
    expect(page.locator("main")).to_contain_text(code)
    scans = page.locator("#attachments")  # both scans, under their (sanitised) names
    expect(scans).to_contain_text("giay-de-nghi.pdf")
    expect(scans).to_contain_text("cccd-mat-truoc.png")

    act(page, "accept")
    expect(page.locator("main [data-status]").first).to_have_attribute("data-status", "2")
    expect_action_offered(page, "start")
    act(page, "start")
    expect(page.locator("main [data-status]").first).to_have_attribute("data-status", "4")
    expect(page.locator("main")).to_contain_text("Đang xử lý")
    assert page.evaluate("window.stayedOnPage") is True, "the actions reloaded the page"

    # Signing off the result is the unit leader's: a second browser, the leader's own session.
    leader_page = new_context().new_page()
    server.log_in(leader_page, server.leader.username)
    leader_page.goto(dossier_url)
    act(leader_page, "processed")
    expect(leader_page.locator("main [data-status]").first).to_have_attribute("data-status", "9")
    expect(leader_page.locator("main")).to_contain_text("Đã xử lý xong")

    page.reload()
    act(page, "return_result")
    main = page.locator("main")
    expect(main).to_contain_text(RETURNED_VI)
    expect(main.locator("[data-status]").first).to_have_attribute("data-status", "10")
    timeline = main.locator(".timeline [data-step]")
    expect(timeline).to_have_count(5)  # received, accepted, processing, processed, returned
    expect(timeline.last).to_contain_text(RETURNED_VI)


def test_receipt_without_javascript(server: Any, no_js_context: BrowserContext, tmp_path: Path) -> None:
    page = no_js_context.new_page()
    server.log_in(page, server.clerk.username)
    receive(page, server, "Trần Thị Bích Ngọc", "092185004321", write_scans(tmp_path))
    code, _ = check_receipt(page, "Trần Thị Bích Ngọc")
    assert code.startswith("31135-")

    # Without JavaScript the search is a plain GET form: still finds the dossier by its name.
    page.goto(f"{server.url}/dossiers")
    search = page.locator('input[name="q"]').first
    search.fill("tran thi bich ngoc")
    with page.expect_navigation():
        search.press("Enter")
    row_link = page.get_by_role("link", name=code)
    expect(row_link).to_be_visible()

    # Actions are plain forms too: accepting answers with the dossier page, status 2.
    row_link.click()
    act(page, "accept")
    page.wait_for_load_state()
    expect(page.locator("main [data-status]").first).to_have_attribute("data-status", "2")
