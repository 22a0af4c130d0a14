"""The clerk's forms in Chromium set to English (issue 14): dates stay day first, Enter does not
submit the receive form, every error shows at once with the focus on the first, the unit filter
finds a commune by its unaccented name, Enter in the procedure search opens a single match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, expect

HOUSEHOLD_BUSINESS = "2.000720"  # Đăng ký thành lập hộ kinh doanh
FORM = f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}"
RECEIPT_URL = re.compile(r"/dossiers/([0-9a-f]+)/receipt$")


def english(new_context: Callable[..., BrowserContext], javascript: bool = True) -> Page:
    """A browser whose language is English: a date input would read mm/dd/yyyy there."""
    page = new_context(javascript=javascript, locale="en-US").new_page()
    assert page.evaluate("navigator.language") == "en-US"
    return page


def focused_name(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.name"))


def test_dates_stay_day_first_in_an_english_browser(
    server: Any, new_context: Callable[..., BrowserContext]
) -> None:
    page = english(new_context)
    server.log_in(page, server.clerk.username)
    page.goto(server.url + FORM)
    form = page.locator('form:has([name="applicant_name"])')
    assert focused_name(page) == "applicant_name"  # autofocus: the clerk starts typing the name

    dob = form.locator('[name="dob"]')
    dob.fill("15/03/1980")
    dob.press("Tab")
    expect(dob).to_have_value("15/03/1980")  # not 03/15/1980, not an empty date input
    dob.fill("")
    dob.press_sequentially("21081995", delay=10)
    dob.press("Tab")
    expect(dob).to_have_value("21/08/1995")
    expect(form.locator(".date-button")).to_have_count(1)  # the optional calendar
    # What the calendar picks (an ISO value of its hidden date input) lands day first.
    form.locator(".date-proxy").evaluate(
        "p => { p.value = '1980-03-15'; p.dispatchEvent(new Event('change')); }"
    )
    expect(dob).to_have_value("15/03/1980")
    dob.fill("21/08/1995")

    form.locator('[name="applicant_name"]').fill("Lê Thị Hồng")
    form.locator('[name="citizen_id"]').fill("092195001234")
    form.locator('[name="phone"]').fill("0292 3831 234")
    with page.expect_navigation():
        form.locator('button[type="submit"]:not([disabled])').click()
    expect(page).to_have_url(RECEIPT_URL)
    page.goto(page.url.removesuffix("/receipt"))
    expect(page.locator("main")).to_contain_text("21/08/1995")
    expect(page.locator("main")).to_contain_text("02923831234")

    page.goto(f"{server.url}/dossiers")
    since = page.locator('[name="received_from"]')
    since.fill("01012020")
    since.press("Tab")
    expect(since).to_have_value("01/01/2020")
    with page.expect_navigation():
        page.locator('form.filters button[type="submit"]').click()
    expect(page.locator('[name="received_from"]')).to_have_value("01/01/2020")
    expect(page.locator("main")).to_contain_text("Lê Thị Hồng")


def test_enter_in_a_field_does_not_submit_the_receive_form(
    server: Any, new_context: Callable[..., BrowserContext]
) -> None:
    for javascript in (True, False):
        page = english(new_context, javascript)
        server.log_in(page, server.clerk.username)
        page.goto(server.url + FORM)
        if javascript:
            page.evaluate("window.stayedOnPage = true")
        name = page.locator('[name="applicant_name"]')
        name.fill("Phạm Văn Quét")
        citizen_id = page.locator('[name="citizen_id"]')
        citizen_id.fill("092085001234")
        citizen_id.press("Enter")  # what a barcode scanner sends after the number
        page.wait_for_timeout(300)
        assert page.url == server.url + FORM, f"Enter submitted the form (javascript={javascript})"
        expect(citizen_id).to_have_value("092085001234")
        if javascript:
            assert page.evaluate("window.stayedOnPage") is True
            assert focused_name(page) == "dob"  # Enter moved on to the next field


def test_every_error_at_once_with_the_focus_on_the_first(server: Any, browser: Browser) -> None:
    # Not the watched context: a refused form is a 422, which Chromium logs as a failed load.
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    server.log_in(page, server.clerk.username)
    page.goto(server.url + FORM)
    page.locator('[name="citizen_id"]').fill("12345")
    page.locator('[name="phone"]').fill("0292 3831")
    # The name is blank: the browser's own "required" check would stop the submit first.
    page.locator('form:has([name="applicant_name"])').evaluate("f => f.noValidate = true")
    with page.expect_navigation():
        page.locator('form.receive button[type="submit"]:not([disabled])').click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary.locator("a")).to_have_count(3)  # name, citizen id, phone
    expect(page.locator('.field-error[data-field="applicant_name"]')).to_be_visible()
    expect(page.locator('.field-error[data-field="citizen_id"]')).to_be_visible()
    expect(page.locator('.field-error[data-field="phone"]')).to_be_visible()
    assert focused_name(page) == "applicant_name"
    expect(page.locator("main")).not_to_contain_text("chọn lại")  # no file was chosen
    summary.locator('a[href="#f-citizen_id"]').click()
    assert page.url.endswith("#f-citizen_id")
    context.close()


def test_the_unit_filter_finds_a_commune_without_accents(
    server: Any, new_context: Callable[..., BrowserContext]
) -> None:
    page = english(new_context)
    server.log_in(page, server.clerk.username)
    page.goto(server.url + FORM)
    handling = page.locator('select[name="handling_unit"]')
    box = page.locator('select[name="handling_unit"] + input.unit-filter')
    assert handling.evaluate("s => s.labels.length") == 1  # the label still names the select
    box.fill("cai khe")
    expect(handling).to_have_value("31120")  # Phường Cái Khế, not the city police
    box.fill("cong an")
    expect(handling).to_have_value("92-CA")
    residence = page.locator('select[name="address_unit"] option[value="92-CA"]')
    expect(residence).to_have_count(0)


def test_enter_in_the_procedure_search_opens_a_single_match(
    server: Any, new_context: Callable[..., BrowserContext]
) -> None:
    page = english(new_context)
    server.log_in(page, server.clerk.username)
    page.goto(f"{server.url}/dossiers/new")
    search = page.locator('input[name="q"]')
    search.fill("ho kinh doanh thanh lap")
    with page.expect_navigation():
        search.press("Enter")
    page.wait_for_url(f"**/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    expect(page.locator('[name="applicant_name"]')).to_be_visible()


def test_the_first_tab_reaches_a_skip_link(server: Any, page: Page) -> None:
    server.log_in(page, server.clerk.username)
    page.goto(f"{server.url}/dossiers")
    page.keyboard.press("Tab")
    skip = page.locator("a.skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")


def receive_one(page: Page, server: Any, name: str) -> str:
    """Receive a dossier through the form; returns the dossier page's URL."""
    page.goto(server.url + FORM)
    form = page.locator("form.receive")
    form.locator('[name="applicant_name"]').fill(name)
    form.locator('[name="citizen_id"]').fill("092085001234")
    with page.expect_navigation():
        form.locator('button[type="submit"]:not([disabled])').click()
    expect(page).to_have_url(RECEIPT_URL)
    return page.url.removesuffix("/receipt")


def test_refusing_asks_to_confirm_with_the_applicant_and_code(server: Any, page: Page) -> None:
    server.log_in(page, server.clerk.username)
    dossier_url = receive_one(page, server, "Đỗ Văn Xác Nhận")
    page.goto(dossier_url)
    groups = page.locator(".actions [data-group]")
    expect(groups.first).to_have_attribute("data-group", "next")
    expect(groups.last).to_have_attribute("data-group", "end")
    refuse = page.locator('form:has(input[name="action"][value="refuse"])')
    refuse.locator("textarea[name=note]").fill("Thiếu giấy đề nghị")
    with page.expect_navigation():
        refuse.locator('[type="submit"]').click()
    confirm = page.locator("section.confirm")
    expect(confirm).to_contain_text("Đỗ Văn Xác Nhận")
    code = confirm.locator('[data-confirm="code"]').inner_text()
    assert code.startswith("31135-")
    expect(page.locator("main [data-status]")).to_have_count(0)  # nothing changed yet
    with page.expect_navigation():
        confirm.locator('button[type="submit"]').click()
    expect(page.locator("main [data-status]").first).to_have_attribute("data-status", "3")
    # Form 03 prints right away, from the dossier page, on A4 without the page's header.
    with page.expect_navigation():
        page.locator("#print-notice a").click()
    notice = page.locator("article.notice")
    expect(notice).to_have_attribute("data-form", "03")
    expect(notice).to_contain_text("Đỗ Văn Xác Nhận")
    expect(notice).to_contain_text("Thiếu giấy đề nghị")
    expect(page.locator("[data-print]")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    page.emulate_media(media="screen")


def test_the_transfer_picker_filters_after_an_action_swapped_the_panel(server: Any, page: Page) -> None:
    server.log_in(page, server.clerk.username)
    dossier_url = receive_one(page, server, "Vũ Thị Chuyển")
    page.goto(dossier_url)
    page.evaluate("window.stayedOnPage = true")
    accept = page.locator('form:has(input[name="action"][value="accept"]) [type="submit"]')
    accept.click()  # htmx swaps the state and the actions in place
    expect(page.locator("main [data-status]").first).to_have_attribute("data-status", "2")
    assert page.evaluate("window.stayedOnPage") is True
    target = page.locator('form:has(input[name="action"][value="transfer"]) select[name="handling_unit"]')
    expect(target.locator('option[value="31135"]')).to_have_count(0)  # never the current unit
    box = page.locator('select[name="handling_unit"] + input.unit-filter')
    expect(box).to_have_count(1)
    box.fill("cai khe")
    expect(target).to_have_value("31120")
