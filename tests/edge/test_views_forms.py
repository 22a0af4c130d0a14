"""The clerk's forms as a clerk types into them (issue 14): dates day first, every error at once,
landline numbers, unit pickers a person can find a commune in, a new appointment date that is a
working day, and a receive form that Enter (a barcode scanner's) does not submit.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from edgekit import HOUSEHOLD_BUSINESS, OTHER_UNIT, UNIT, actor, login, receive_sample
from test_views_dossiers import PDF, act, form_fields, head, receive_through_form, scans

from edge.dossiers import perform
from edge.errors import InvalidInput
from edge.i18n import format_date, parse_date
from edge.unitpicker import collation_key, unit_choices
from schema.calendar import is_working_day
from schema.codes import parse_phone


@pytest.fixture
def clerk(client) -> str:
    return login(client, "canbo01")


def state_of(node, dossier_id: str) -> dict:
    return node.replica.state("dossier", dossier_id) or {}


# --- 1. dates are typed day first, whatever the browser's language -----------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("15/03/1980", date(1980, 3, 15)),
        ("15031980", date(1980, 3, 15)),
        ("21081995", date(1995, 8, 21)),
        ("5/3/1980", date(1980, 3, 5)),
        ("15-03-1980", date(1980, 3, 15)),
        ("15.03.1980", date(1980, 3, 15)),
        (" 15 03 1980 ", date(1980, 3, 15)),
        ("150380", date(1980, 3, 15)),
        ("15/03/80", date(1980, 3, 15)),
        ("01/01/46", date(1946, 1, 1)),  # a birth date: never in the future
        ("1980-03-15", date(1980, 3, 15)),  # ISO still reads (the API, old links)
    ],
)
def test_a_birth_date_is_read_day_first_with_or_without_separators(typed, expected):
    assert parse_date(typed, past=True, today=date(2026, 12, 7)) == expected


def test_a_two_digit_year_of_an_appointment_is_this_century():
    assert parse_date("05/01/27", today=date(2026, 12, 7)) == date(2027, 1, 5)


@pytest.mark.parametrize(
    "typed", ["03/15/1980", "1503", "31/02/2020", "15/03", "abc", "2026-1-5", "150319800"]
)
def test_what_is_not_a_day_first_date_is_refused(typed):
    with pytest.raises(ValueError, match=r"date|range|month"):
        parse_date(typed, past=True)


def test_every_date_field_is_a_text_field_that_keeps_what_the_clerk_typed(client, node, clerk):
    form = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}").text
    dossier_id = receive_sample(node).id
    leader = login(client, "lanhdao01")
    pages = [form, client.get("/dossiers").text, client.get(f"/dossiers/{dossier_id}").text]
    assert leader
    for page in pages:
        assert 'type="date"' not in page
    assert re.search(r'<input name="dob"[^>]*placeholder="dd/mm/yyyy"[^>]*data-date', form)
    assert re.search(r'<input name="due_date"[^>]*data-date', pages[2])
    listed = client.get("/dossiers", params={"received_from": "01122026", "received_to": "31/12/2026"})
    assert listed.status_code == 200
    assert 'name="received_from" value="01/12/2026"' in listed.text
    assert 'name="received_to" value="31/12/2026"' in listed.text


def test_a_birth_date_typed_without_separators_is_stored_as_that_day(client, node, clerk):
    dossier_id = receive_through_form(client, clerk, dob="21081995", citizen_id="092095001234")
    assert state_of(node, dossier_id)["applicant_dob"] == "1995-08-21"
    assert "21/08/1995" in client.get(f"/dossiers/{dossier_id}").text


# --- 4. the new appointment date (form 04) is a future working day ------------------------------


def _next(after: date, wanted) -> date:
    day = after + timedelta(days=1)
    while not wanted(day):
        day += timedelta(days=1)
    return day


def test_the_new_appointment_date_must_be_a_future_working_day(client, node, clerk):
    dossier_id = receive_sample(node).id
    due = date.fromisoformat(state_of(node, dossier_id)["due_date"])
    leader = login(client, "lanhdao01")
    before = head(node)
    sunday = _next(due, lambda d: d.weekday() == 6)
    holiday = _next(due, lambda d: d.weekday() < 5 and not is_working_day(d))
    for bad, words in [
        (sunday, "Chủ nhật"),
        (holiday, "nghỉ lễ"),
        (date(2020, 1, 6), "phải sau"),  # a Monday long gone
    ]:
        refused = act(client, leader, dossier_id, "extend", note="Xin lỗi", due_date=f"{bad:%d/%m/%Y}")
        assert refused.status_code == 422, bad
        assert 'data-field="due_date"' in refused.text
        assert words in refused.text, (bad, words)
    assert head(node) == before
    working = _next(due, is_working_day)
    done = act(client, leader, dossier_id, "extend", note="Xin lỗi", due_date=f"{working:%d%m%Y}")
    assert done.status_code == 303, done.text
    assert state_of(node, dossier_id)["due_date"] == working.isoformat()


def test_the_service_refuses_a_sunday_too(node):
    dossier_id = receive_sample(node).id
    due = date.fromisoformat(state_of(node, dossier_id)["due_date"])
    with pytest.raises(InvalidInput) as refused:
        perform(
            node,
            actor("lanhdao01"),
            dossier_id,
            "extend",
            note="x",
            due_date=_next(due, lambda d: d.weekday() == 6),
        )
    assert refused.value.field == "due_date"


# --- 6. every error of a submit at once ---------------------------------------------------------


def test_a_blank_name_and_a_bad_citizen_id_are_both_shown_with_a_summary(client, node, clerk):
    before = head(node)
    response = client.post(
        "/dossiers",
        data=form_fields(clerk, applicant_name=" ", citizen_id="12345", phone="12", dob="31/02/1985"),
    )
    assert response.status_code == 422
    page = response.text
    summary = page[
        page.index('class="error-summary"') : page.index("</div>", page.index('class="error-summary"'))
    ]
    links = re.findall(r'<a href="#f-([a-z_0-9]+)"', summary)
    assert links == ["applicant_name", "citizen_id", "dob", "phone"]  # in the form's order
    for field in links:
        assert f'id="f-{field}"' in page
        assert f'<span class="error field-error" id="e-{field}1" data-field="{field}">' in page
    assert "Cần sửa 4 chỗ" in page
    # The first wrong field takes the focus, and no other does.
    assert re.search(
        r'<input name="applicant_name"[^>]*id="f-applicant_name" aria-invalid="true" autofocus', page
    )
    assert page.count(" autofocus") == 1
    assert "chọn lại" not in page  # no file was chosen: nothing to choose again
    assert 'value="12345"' in page  # what the clerk typed is kept
    assert head(node) == before


def test_the_files_are_asked_again_only_when_some_were_chosen(client, node, clerk):
    response = client.post(
        "/dossiers", data=form_fields(clerk, applicant_name=""), files=scans(("a.pdf", PDF))
    )
    assert response.status_code == 422
    assert "chọn lại" in response.text


def test_a_fake_scan_is_listed_with_the_other_errors(client, node, clerk):
    response = client.post(
        "/dossiers", data=form_fields(clerk, applicant_name=""), files=scans(("a.pdf", b"not a pdf at all"))
    )
    assert response.status_code == 422
    assert re.findall(r'<a href="#f-([a-z_0-9]+)"', response.text) == ["applicant_name", "scans"]


def test_a_clean_form_autofocuses_the_applicants_name(client, clerk):
    page = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}").text
    assert re.search(r'<input name="applicant_name"[^>]*autofocus', page)
    assert page.count(" autofocus") == 1


# --- 7. phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("0292 3831 234", "02923831234"),  # a Cần Thơ landline with its area code
        ("0292.3831.234", "02923831234"),
        ("(0292) 3831-234", "02923831234"),
        ("024 3825 1234", "02438251234"),
        ("0912 345 678", "0912345678"),
        ("0912.345.678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("0383456789", "0383456789"),
    ],
)
def test_mobile_and_landline_numbers_are_accepted(typed, stored):
    assert parse_phone(typed) == stored


@pytest.mark.parametrize(
    "typed", ["12345", "0123456789", "091234567", "029238312345", "0292 3831 23a", "1900 1234"]
)
def test_what_is_not_a_phone_number_is_refused(typed):
    assert parse_phone(typed) is None


def test_a_landline_goes_through_the_receive_form(client, node, clerk):
    dossier_id = receive_through_form(client, clerk, phone="0292 3831 234")
    assert state_of(node, dossier_id)["applicant_phone"] == "02923831234"
    refused = client.post("/dossiers", data=form_fields(clerk, phone="0292 3831"))
    assert refused.status_code == 422
    assert 'data-field="phone"' in refused.text


# --- 8. unit pickers ----------------------------------------------------------------------------


def test_vietnamese_order_puts_d_before_dd_and_tones_after_letters():
    names = ["Đại Hải", "Dương", "Cái Răng", "Cà Mau", "Cai Lậy", "Ô Môn", "Ơ", "An Bình", "Anh"]
    assert sorted(names, key=collation_key) == [
        "An Bình",
        "Anh",
        "Cà Mau",
        "Cai Lậy",
        "Cái Răng",
        "Dương",
        "Đại Hải",
        "Ô Môn",
        "Ơ",
    ]


def test_unit_choices_name_first_communes_only_and_never_excluded():
    units = [
        {"code": "1", "name": "Phường Cái Khế", "kind": "ward"},
        {"code": "2", "name": "Xã  Phú Hữu", "kind": "commune"},
        {"code": "3", "name": "Công an thành phố Cần Thơ", "kind": "department"},
        {"code": "4", "name": "Phường An Bình", "kind": "ward"},
    ]
    labels = [c.label for c in unit_choices(units)]
    assert labels == ["An Bình (phường)", "Cái Khế (phường)", "Phú Hữu (xã)", "Công an thành phố Cần Thơ"]
    assert [c.code for c in unit_choices(units, communes_only=True, exclude=["1"])] == ["4", "2"]
    assert unit_choices(units)[2].name == "Xã Phú Hữu"
    assert "cai khe" in unit_choices(units)[1].fold


def _options(html: str, name: str) -> list[tuple[str, str]]:
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    assert select, name
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(0))


def test_the_receive_form_offers_communes_for_residence_and_sorts_them(client, clerk):
    page = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}").text
    residence = _options(page, "address_unit")
    codes = [code for code, _ in residence]
    assert not any(code.startswith("92-") for code in codes)  # no city department is a residence
    labels = [label.replace(" ★", "") for code, label in residence if code]
    assert labels == sorted(labels, key=collation_key)
    assert "Ninh Kiều (phường)" in labels
    assert not any("  " in label for label in labels)
    handling = _options(page, "handling_unit")
    assert any(code == "92-CA" for code, _ in handling)  # a department may handle a dossier
    assert [c for c, _ in handling].index("92-CA") > [c for c, _ in handling].index(OTHER_UNIT)
    assert "data-unit-picker" in page
    assert 'data-fold="cai khe' in page


def test_a_transfer_never_offers_the_current_handling_unit(client, node, clerk):
    dossier_id = receive_sample(node).id
    targets = [code for code, _ in _options(client.get(f"/dossiers/{dossier_id}").text, "handling_unit")]
    assert OTHER_UNIT in targets
    assert UNIT not in targets


# --- 15. the keyboard ---------------------------------------------------------------------------


def test_every_page_starts_with_a_skip_link_to_the_content(client, clerk):
    for path in ("/", "/dossiers", "/dossiers/new"):
        page = client.get(path).text
        body = page[page.index("<body") :]
        assert re.search(r'^<body[^>]*>\s*<a class="skip-link" href="#main">', body), path
        assert '<main id="main" tabindex="-1">' in page


def test_enter_in_a_field_does_not_submit_the_receive_form(client, clerk):
    page = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}").text
    form = page[page.index('<form method="post" action="/dossiers"') :]
    # The form's default button (its first) is disabled: implicit submission does nothing.
    first_button = re.search(r"<button[^>]*>", form)
    assert first_button
    assert "disabled" in first_button.group(0)
    assert 'type="submit"' in first_button.group(0)


def test_enter_in_the_procedure_search_opens_a_single_match(client, clerk):
    single = client.get("/dossiers/new", params={"q": HOUSEHOLD_BUSINESS, "open": "1"})
    assert single.status_code == 303
    assert single.headers["location"] == f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}"
    several = client.get("/dossiers/new", params={"q": "ho", "open": "1"})
    assert several.status_code == 200
    live = client.get(
        "/dossiers/new", params={"q": HOUSEHOLD_BUSINESS, "open": "1"}, headers={"HX-Request": "true"}
    )
    assert live.status_code == 200  # the live search lists it; only Enter opens it
    page = client.get("/dossiers/new").text
    assert '<input type="hidden" name="open" value="1">' in page


def test_format_date_round_trips_what_parse_date_reads():
    day = date(2026, 3, 15)
    assert parse_date(format_date(day)) == day


# --- 14. the actions panel: by purpose, and a confirmation for what ends a dossier --------------


def test_the_actions_are_grouped_by_purpose_with_the_next_step_first(client, node, clerk):
    dossier_id = receive_sample(node).id
    leader = login(client, "lanhdao01")
    assert leader
    page = client.get(f"/dossiers/{dossier_id}").text
    groups = re.findall(r'data-group="([a-z]+)"', page)
    assert groups == ["next", "change", "end"]
    first = re.search(r'<input type="hidden" name="action" value="([a-z_]+)">', page)
    assert first
    assert first.group(1) == "accept"
    end = page[page.index('data-group="end"') :]
    assert re.findall(r'name="action" value="([a-z_]+)"', end) == ["refuse", "withdraw"]
    # The final ones are plain posts to a confirmation, not swapped in place; they look different.
    for name in ("refuse", "withdraw"):
        form = re.search(
            rf'<form[^>]*>\s*<input[^>]*csrf[^>]*>\s*<input type="hidden" name="action" value="{name}">', page
        )
        assert form
        assert "hx-post" not in form.group(0)
        assert 'class="action final"' in form.group(0)
    assert page.count('class="danger"') == 2
    assert page.count('class="primary"') == 1


def test_refusing_asks_to_confirm_showing_the_applicant_and_the_code(client, node, clerk):
    dossier_id = receive_sample(node).id
    code = state_of(node, dossier_id)["code"]
    before = head(node)
    asked = act(client, clerk, dossier_id, "refuse", note="Thiếu giấy đề nghị")
    assert asked.status_code == 200
    page = asked.text
    assert f'<b data-confirm="code">{code}</b>' in page
    assert '<b data-confirm="applicant">Nguyễn Văn An</b>' in page
    assert '<dd data-confirm="note">Thiếu giấy đề nghị</dd>' in page
    assert '<input type="hidden" name="confirmed" value="1">' in page
    assert f'href="/dossiers/{dossier_id}"' in page  # and a way back
    assert head(node) == before  # nothing happened yet
    htmx = client.post(
        f"/dossiers/{dossier_id}/actions",
        data={"csrf": clerk, "action": "withdraw", "note": "Xin rút"},
        headers={"HX-Request": "true"},
    )
    assert htmx.text.startswith('<section id="dossier-state" class="card confirm"')
    assert head(node) == before
    done = act(client, clerk, dossier_id, "refuse", note="Thiếu giấy đề nghị", confirmed="1")
    assert done.status_code == 303
    assert int(state_of(node, dossier_id)["status"]) == 3


def test_no_confirmation_is_asked_for_what_would_be_refused(client, node, clerk):
    dossier_id = receive_sample(node).id
    blank = act(client, clerk, dossier_id, "refuse", note=" ")
    assert blank.status_code == 422
    assert 'name="confirmed"' not in blank.text
    for step in ("accept",):
        perform(node, actor("lanhdao01"), dossier_id, step)
    not_yours = act(client, clerk, dossier_id, "stop", note="Không bổ sung")
    assert not_yours.status_code == 403
    assert 'name="confirmed"' not in not_yours.text


# --- 3. forms 02 to 05 print from the step that made them ----------------------------------------

NOTICES = {
    # action: (steps before, who acts, form, title in Vietnamese)
    "request_supplement": (("accept", "start"), "canbo01", "02", "Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ"),
    "refuse": ((), "canbo01", "03", "Phiếu từ chối tiếp nhận giải quyết hồ sơ"),
    "extend": ((), "lanhdao01", "04", "Phiếu xin lỗi và hẹn lại ngày trả kết quả"),
    "stop": (("accept",), "lanhdao01", "05", "Phiếu thông báo dừng giải quyết hồ sơ"),
    "withdraw": ((), "canbo01", "05", "Phiếu ghi nhận rút hồ sơ theo yêu cầu"),
}


@pytest.mark.parametrize("name", sorted(NOTICES))
def test_each_notice_prints_right_after_its_action_and_later_from_the_timeline(client, node, name):
    steps, username, form, title = NOTICES[name]
    dossier_id = receive_sample(node).id
    for step in steps:
        perform(node, actor("lanhdao01"), dossier_id, step, note="Ghi chú")
    token = login(client, username)
    reason = f"Lý do của {name} <b>"
    fields = {"note": reason, "confirmed": "1"}
    due = date.fromisoformat(state_of(node, dossier_id)["due_date"])
    new_due = _next(due, is_working_day)
    if name == "extend":
        fields["due_date"] = f"{new_due:%d/%m/%Y}"
    assert act(client, token, dossier_id, name, **fields).status_code == 303
    position = len(steps) + 1
    url = f"/dossiers/{dossier_id}/forms/{position}"
    page = client.get(f"/dossiers/{dossier_id}").text
    assert re.search(rf'id="print-notice"><a class="button" href="{url}">In mẫu {form}', page)
    notice = client.get(url)
    assert notice.status_code == 200
    assert f'data-form="{form}"' in notice.text
    assert title in notice.text
    assert "Lý do của" in notice.text
    assert "&lt;b&gt;" in notice.text  # the reason is the clerk's text, escaped
    assert "Nguyễn Văn An" in notice.text
    assert state_of(node, dossier_id)["code"] in notice.text
    assert f"Mẫu số {form}, Thông tư 03/2025/TT-VPCP" in notice.text
    assert '<script src="/static/print.js" defer></script>' in notice.text
    if name == "extend":
        assert f"Hẹn lại ngày trả kết quả: {format_date(new_due)}." in notice.text
        assert format_date(due) in notice.text  # the date it replaces
    # Later, once something else happened, the control sheet still links to it.
    if name in ("request_supplement", "extend"):
        perform(node, actor("lanhdao01"), dossier_id, "record_supplement" if name != "extend" else "accept")
        later = client.get(f"/dossiers/{dossier_id}").text
        assert f'<a class="noprint" href="{url}">In mẫu {form}</a>' in later
        assert 'id="print-notice"' not in later


def test_a_step_without_a_form_and_another_units_dossier_print_nothing(client, node):
    dossier_id = receive_sample(node).id
    perform(node, actor("canbo01"), dossier_id, "accept")
    login(client, "canbo01")
    assert client.get(f"/dossiers/{dossier_id}/forms/0").status_code == 404
    assert client.get(f"/dossiers/{dossier_id}/forms/1").status_code == 404
    assert client.get(f"/dossiers/{dossier_id}/forms/9").status_code == 404
    refused = receive_sample(node).id
    perform(node, actor("canbo01"), refused, "refuse", note="Thiếu")
    assert client.get(f"/dossiers/{refused}/forms/1").status_code == 200
    login(client, "canbo_caikhe")
    assert client.get(f"/dossiers/{refused}/forms/1").status_code == 404
