"""The clerk's dossier pages, driven through the real forms: receive, list, act, scan, print.

Every write is checked in the change log (the node's own vector and the dossier's ops): nothing
a page does may bypass sync. Every refusal is checked to write nothing.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from pathlib import Path

import anyio
import pytest
from edgekit import HOUSEHOLD_BUSINESS, OTHER_UNIT, UNIT, actor, login, receive_sample
from starlette.requests import Request
from starlette.testclient import TestClient

from edge import queries
from edge.app import create_app
from edge.dossiers import ACTIONS, perform, today
from edge.errors import TooLarge
from edge.i18n import format_date
from edge.node import Node
from edge.settings import load
from edge.views.dossiers import read_form
from schema import KINDS, add_working_days, migrate
from sync.clock import Clock, system_wall_ms
from sync.identity import Identity
from sync.replica import Replica

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


# --- helpers ---------------------------------------------------------------------------------


def head(node: Node) -> int:
    """How many ops this node has written: the proof that a page wrote (or did not)."""
    return node.replica.vector()[node.identity.node]


def form_fields(token: str, **overrides: str) -> dict[str, str]:
    fields = {
        "csrf": token,
        "procedure": HOUSEHOLD_BUSINESS,
        "applicant_type": "citizen",
        "applicant_name": "Nguyễn Văn An",
        "citizen_id": "092085001234",
        "dob": "14/03/1985",
        "phone": "0912 345 678",
        "email": "an.nguyen@example.vn",
        "address": "12 Mậu Thân",
        "address_unit": UNIT,
        "handling_unit": UNIT,
        "doc_0_form": "original",
        "doc_0_count": "1",
        "doc_1_form": "copy",
        "doc_1_count": "2",
        "doc_2_form": "none",
        "doc_2_count": "1",
        "fee": "100.000",
        "channel": "direct",
    }
    fields.update(overrides)
    return fields


def scans(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("scans", (name, data, "application/octet-stream")) for name, data in items]


def receive_through_form(client: TestClient, token: str, files=None, **overrides: str) -> str:
    response = client.post("/dossiers", data=form_fields(token, **overrides), files=files or [])
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/dossiers/([0-9a-f]{32})/receipt", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def act(client: TestClient, token: str, dossier_id: str, action: str, **fields: str):
    return client.post(f"/dossiers/{dossier_id}/actions", data={"csrf": token, "action": action, **fields})


def ops_of(node: Node, dossier_id: str, action: str) -> list[dict]:
    return [dict(op.payload) for op in node.replica.ops_of("dossier", dossier_id) if op.action == action]


def status_of(node: Node, dossier_id: str) -> int:
    return int((node.replica.state("dossier", dossier_id) or {})["status"])


@pytest.fixture
def clerk(client) -> str:
    return login(client, "canbo01")


# --- receiving ---------------------------------------------------------------------------------


def test_receive_flow_lands_a_dossier_with_its_scans_and_due_date(client, node, clerk):
    form = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    assert form.status_code == 200
    assert 'name="scans" multiple accept=".pdf,.jpg,.jpeg,.png"' in form.text
    assert 'name="doc_0_form"' in form.text
    assert 'value="100000"' in form.text  # the fee comes from the procedure
    before = head(node)

    dossier_id = receive_through_form(
        client, clerk, files=scans(("giấy đề nghị.pdf", PDF), ("../../etc/ảnh chụp.png", PNG))
    )

    day = today(node)
    state = node.replica.state("dossier", dossier_id)
    assert state["code"] == f"{UNIT}-{day:%y%m%d}-0001"
    assert state["status"] == 1
    assert state["due_date"] == add_working_days(day, 3).isoformat()  # 3 working days (Decree 01/2021)
    assert state["receiving_unit"] == state["handling_unit"] == UNIT
    assert state["applicant_phone"] == "0912345678"
    assert state["applicant_dob"] == "1985-03-14"
    assert state["fee"] == 100_000
    assert state["documents"] == [
        {"name": "Giấy đề nghị đăng ký hộ kinh doanh", "form": "original", "count": 1},
        {
            "name": "Bản sao biên bản họp thành viên hộ gia đình về việc thành lập hộ kinh doanh "
            "(khi các thành viên hộ gia đình cùng đăng ký)",
            "form": "copy",
            "count": 2,
        },
    ]
    digests = {hashlib.sha256(PDF).hexdigest(), hashlib.sha256(PNG).hexdigest()}
    assert set(state["attachments"]) == digests
    assert {a["name"] for a in state["attachments"].values()} == {"giấy đề nghị.pdf", "ảnh chụp.png"}
    for digest in digests:
        assert node.blobs.has(digest)
    assert node.blobs.get(hashlib.sha256(PDF).hexdigest()) == PDF

    # Nothing bypassed sync: one create and two attach ops, in this node's log.
    assert head(node) == before + 3
    assert ops_of(node, dossier_id, "create")[0]["code"] == state["code"]
    assert {p["sha256"] for p in ops_of(node, dossier_id, "attach")} == digests

    second = receive_through_form(
        client, clerk, applicant_name="Đặng Thị Mai", citizen_id="092190004321", dob=""
    )
    assert node.replica.state("dossier", second)["code"] == f"{UNIT}-{day:%y%m%d}-0002"


def test_procedure_picker_finds_procedures_without_accents(client, clerk):
    page = client.get("/dossiers/new?q=ho kinh doanh")
    assert page.status_code == 200
    assert f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}" in page.text
    assert "1.004194" not in page.text  # residence registration does not match
    partial = client.get("/dossiers/new?q=thuong tru", headers={"HX-Request": "true"})
    assert "<html" not in partial.text
    assert "Đăng ký thường trú" in partial.text
    unknown = client.get("/dossiers/new?procedure=9.999999")
    assert unknown.status_code == 404
    assert 'role="alert"' in unknown.text


def test_non_territorial_dossier_goes_to_the_chosen_unit(client, node, clerk):
    dossier_id = receive_through_form(client, clerk, handling_unit=OTHER_UNIT)
    state = node.replica.state("dossier", dossier_id)
    assert (state["receiving_unit"], state["handling_unit"]) == (UNIT, OTHER_UNIT)
    page = client.get(f"/dossiers/{dossier_id}")
    assert "Cái Khế" in page.text
    assert 'class="tag nonterritorial"' in page.text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"citizen_id": "12345"}, "citizen_id"),
        ({"citizen_id": "092085001234", "dob": "14/03/1990"}, "dob"),
        ({"applicant_name": "   "}, "applicant_name"),
        ({"dob": "31/02/1985"}, "dob"),
        ({"phone": "12345"}, "phone"),
        ({"fee": "một trăm"}, "fee"),
        ({"doc_0_form": "copy"}, "doc_0_form"),  # the application form is accepted only as an original
        ({"doc_1_count": "0"}, "doc_1_count"),
        ({"handling_unit": "99999"}, "handling_unit"),
        ({"email": "an.nguyen@"}, "email"),
    ],
)
def test_invalid_receive_input_is_shown_next_to_its_field_and_writes_nothing(
    client, node, clerk, overrides, field
):
    before = head(node)
    response = client.post("/dossiers", data=form_fields(clerk, **overrides), files=scans(("a.pdf", PDF)))
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.text
    assert (
        'value="Nguyễn Văn An"' in response.text or field == "applicant_name"
    )  # the clerk's entries are kept
    assert head(node) == before
    assert not node.blobs.has(hashlib.sha256(PDF).hexdigest())  # no orphan scan either


def test_unknown_procedure_is_refused_with_the_picker(client, node, clerk):
    before = head(node)
    response = client.post("/dossiers", data=form_fields(clerk, procedure="9.999999"))
    assert response.status_code == 422
    assert 'data-field="procedure"' in response.text
    assert "9.999999" in response.text
    assert head(node) == before


def test_a_file_that_claims_to_be_a_pdf_but_is_not_is_refused(client, node, clerk):
    before = head(node)
    fake = b"<html><script>alert(1)</script></html>"
    response = client.post(
        "/dossiers", data=form_fields(clerk), files=[("scans", ("hoadon.pdf", fake, "application/pdf"))]
    )
    assert response.status_code == 422
    assert 'data-field="scans"' in response.text
    assert "hoadon.pdf" in response.text
    assert head(node) == before
    assert list(node.blobs.digests()) == []


@pytest.fixture
def small_uploads(node) -> TestClient:
    """The app with a 1 MB upload limit, logged in as the clerk."""
    app = create_app(load(node.data_dir, max_upload_mb=1), node)
    with TestClient(app, follow_redirects=False) as c:
        c.token = login(c, "canbo01")  # type: ignore[attr-defined]
        yield c


def test_an_oversize_scan_is_refused_with_413_and_nothing_written(small_uploads, node):
    before = head(node)
    big = PDF + b"0" * (1024 * 1024)
    response = small_uploads.post(
        "/dossiers", data=form_fields(small_uploads.token), files=scans(("big.pdf", big))
    )
    assert response.status_code == 413
    assert 'data-field="scans"' in response.text
    assert 'value="Nguyễn Văn An"' in response.text
    assert head(node) == before
    assert list(node.blobs.digests()) == []


def test_an_oversize_request_is_refused_from_its_content_length(small_uploads, node):
    before = head(node)
    huge = PDF + b"0" * (6 * 1024 * 1024)
    response = small_uploads.post(
        "/dossiers", data=form_fields(small_uploads.token), files=scans(("huge.pdf", huge))
    )
    assert response.status_code == 413
    assert 'role="alert"' in response.text
    assert head(node) == before


def test_a_suspect_clock_needs_the_clerk_to_confirm_the_date(client, node, clerk):
    node.clock.offset_ms = -20 * 60 * 1000  # the wall clock fell 20 minutes behind the log
    form = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    assert 'name="confirm_clock"' in form.text
    before = head(node)
    refused = client.post("/dossiers", data=form_fields(clerk))
    assert refused.status_code == 422
    assert 'data-field="confirm_clock"' in refused.text
    assert head(node) == before

    dossier_id = receive_through_form(client, clerk, confirm_clock="1")
    receipt = client.get(f"/dossiers/{dossier_id}/receipt")
    assert 'class="receipt-warning"' in receipt.text
    # Days later, whoever opens the dossier still sees that its dates came from a doubtful clock.
    node.clock.offset_ms = 0
    page = client.get(f"/dossiers/{dossier_id}").text
    assert 'id="clock-confirmed"' in page
    assert "cán bộ đã xác nhận lại ngày" in page
    assert "min behind changes already made" in page  # why, as recorded
    other = receive_through_form(client, clerk)
    assert 'id="clock-confirmed"' not in client.get(f"/dossiers/{other}").text


# --- the receipt ---------------------------------------------------------------------------------


def test_receipt_is_form_01_with_qr_code_documents_and_appointment(client, node, clerk):
    dossier_id = receive_through_form(client, clerk)
    state = node.replica.state("dossier", dossier_id)
    receipt = client.get(f"/dossiers/{dossier_id}/receipt")
    assert receipt.status_code == 200
    text = receipt.text
    assert state["code"] in text
    assert '<svg width="' in text
    assert 'class="qr"' in text
    assert "<img" not in text
    assert "Giấy đề nghị đăng ký hộ kinh doanh" in text
    assert format_date(state["due_date"]) in text
    assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d", text)  # received at
    assert "Nguyễn Thị Lan" in text  # the receiving clerk
    assert "100.000 ₫" in text
    assert "Phường Ninh Kiều" in text
    assert 'src="/static/print.js"' in text
    assert "onclick" not in text
    assert 'class="receipt-warning"' not in text
    assert client.get("/static/print.js").status_code == 200


# --- the list and search -----------------------------------------------------------------------


def test_search_finds_names_without_accents_and_htmx_gets_only_the_table(client, node, clerk):
    receive_sample(node, applicant_name="Nguyễn Văn An")
    receive_sample(node, applicant_name="Đặng Thị Mai", citizen_id="092190004321", dob=None)
    receive_sample(node, applicant_name="Lê Văn Tám", citizen_id="092080000111", dob=None)

    found = client.get("/dossiers?q=nguyen van an")
    assert found.status_code == 200
    assert "Nguyễn Văn An" in found.text
    assert "Đặng Thị Mai" not in found.text
    dang = client.get("/dossiers?q=dang")
    assert "Đặng Thị Mai" in dang.text
    assert "Nguyễn Văn An" not in dang.text
    by_id = client.get("/dossiers?q=092080000111")
    assert "Lê Văn Tám" in by_id.text

    partial = client.get("/dossiers?q=dang", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "<form" not in partial.text
    assert "<table" in partial.text
    assert "Đặng Thị Mai" in partial.text
    assert "HX-Request" in partial.headers["vary"]
    page = client.get("/dossiers")
    assert 'hx-trigger="keyup changed delay:300ms, search"' in page.text
    assert 'hx-target="#results"' in page.text


def test_list_filters_by_status_procedure_dates_and_due(client, node, clerk):
    first = receive_sample(node, applicant_name="Nguyễn Văn An")
    receive_sample(node, applicant_name="Trần Thị Bình", citizen_id="092190004321", dob=None)
    perform(node, actor("canbo01"), first.id, "accept")
    accepted = client.get("/dossiers?status=2")
    assert "Nguyễn Văn An" in accepted.text
    assert "Trần Thị Bình" not in accepted.text
    day = today(node)
    by_day = client.get(f"/dossiers?received_from={day:%d/%m/%Y}&received_to={day.isoformat()}")
    assert "Nguyễn Văn An" in by_day.text
    assert "Trần Thị Bình" in by_day.text
    tomorrow = (day + timedelta(days=1)).isoformat()
    assert "Nguyễn Văn An" not in client.get(f"/dossiers?received_from={tomorrow}").text
    assert "Trần Thị Bình" in client.get(f"/dossiers?procedure={HOUSEHOLD_BUSINESS}").text
    assert "Trần Thị Bình" not in client.get("/dossiers?procedure=1.004194").text
    assert "Trần Thị Bình" not in client.get("/dossiers?due=overdue").text
    assert client.get("/dossiers?status=11").status_code == 422
    assert client.get("/dossiers?received_from=32/13/2026").status_code == 422


def test_list_pages_keep_their_filters(client, node, clerk):
    for n in range(30):
        receive_sample(node, applicant_name=f"Nguyễn Văn {n:02d}")
    first = client.get("/dossiers?q=nguyen")
    assert "30" in first.text
    assert "page=2" in first.text
    assert "q=nguyen" in first.text
    second = client.get("/dossiers?q=nguyen&page=2")
    assert second.text.count("<tr class=") == 5


def test_past_the_count_cap_the_list_says_at_least_and_pages_on_to_the_oldest(node, monkeypatch):
    monkeypatch.setattr(queries, "COUNT_CAP", 4)  # 1,000 in use; 7 dossiers stand for 10,000
    names = [f"Lê Thị {n}" for n in range(7)]
    for name in names:
        receive_sample(node, applicant_name=name)
    with TestClient(create_app(load(node.data_dir, page_size=2), node), follow_redirects=False) as client:
        login(client, "canbo01")
        first = client.get("/dossiers").text
        assert "Tìm thấy ít nhất 4 hồ sơ" in first
        assert 'rel="next"' in first
        pages = [client.get(f"/dossiers?page={n}").text for n in range(1, 5)]
        shown = [name for page in pages for name in names if name in page]
        assert sorted(shown) == sorted(names)  # past the count, every dossier is still reachable
        assert 'rel="next"' in pages[2]
        assert 'rel="next"' not in pages[3]  # the oldest: nothing after it
        assert pages[3].count("<tr class=") == 1


def test_pages_stay_small_for_old_pcs(client, node, clerk):
    for n in range(25):
        receive_sample(
            node, applicant_name=f"Nguyễn Thị Hoa {n}", address="Số 123 đường Nguyễn Văn Cừ nối dài"
        )
    listing = client.get("/dossiers")
    assert listing.text.count("<tr class=") == 25
    assert len(listing.content) < 60_000

    dossier_id = receive_sample(node).id
    clerk_actor, leader = actor("canbo01"), actor("lanhdao01")
    for name in ("accept", "start", "request_supplement", "record_supplement", "request_fees", "fees_paid"):
        perform(node, clerk_actor, dossier_id, name, note="Ghi chú của cán bộ một cửa về bước này")
    due = node.replica.state("dossier", dossier_id)["due_date"]
    later = date.fromisoformat(due) + timedelta(days=7)
    perform(node, leader, dossier_id, "extend", note="Xin lỗi vì chậm trễ", due_date=later)
    perform(node, leader, dossier_id, "processed")
    perform(node, clerk_actor, dossier_id, "return_result")
    page = client.get(f"/dossiers/{dossier_id}")
    assert page.text.count("<tr data-step=") == 10
    assert len(page.content) < 60_000
    login(client, "lanhdao01")  # the leader's page carries the most action forms
    busy = receive_sample(node).id
    perform(node, clerk_actor, busy, "accept")
    perform(node, clerk_actor, busy, "start")
    assert len(client.get(f"/dossiers/{busy}").content) < 60_000
    assert len(client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}").content) < 60_000
    assert len(client.get(f"/dossiers/{dossier_id}/receipt").content) < 60_000


# --- acting on a dossier -----------------------------------------------------------------------


def test_full_lifecycle_through_the_pages_ends_with_the_result_returned(client, node, clerk):
    dossier_id = receive_through_form(client, clerk)
    page = client.get(f"/dossiers/{dossier_id}")
    assert 'value="accept"' in page.text
    assert 'value="refuse"' in page.text
    assert 'value="processed"' not in page.text  # nothing for later yet

    for name, status in (("accept", 2), ("start", 4)):
        before = head(node)
        response = act(client, clerk, dossier_id, name, note="")
        assert response.status_code == 303
        assert response.headers["location"] == f"/dossiers/{dossier_id}"
        assert status_of(node, dossier_id) == status
        assert head(node) == before + 1
        last = ops_of(node, dossier_id, "transition")[-1]
        assert last == {"to": status, "by": "canbo01", "role": "clerk", "note": None}

    leader = login(client, "lanhdao01")
    assert act(client, leader, dossier_id, "processed", note="Đã ký").status_code == 303
    assert ops_of(node, dossier_id, "transition")[-1] == {
        "to": 9,
        "by": "lanhdao01",
        "role": "leader",
        "note": "Đã ký",
    }
    clerk = login(client, "canbo01")
    assert act(client, clerk, dossier_id, "return_result").status_code == 303
    assert status_of(node, dossier_id) == 10

    page = client.get(f"/dossiers/{dossier_id}")
    timeline = page.text.split('id="timeline-title"', 1)[1]
    assert timeline.count("<tr data-step=") == 5
    for label in ("Mới đăng ký", "Được tiếp nhận", "Đang xử lý", "Đã xử lý xong", "Đã trả kết quả"):
        assert label in timeline
    assert "Trần Văn Hùng" in timeline
    assert "Nguyễn Thị Lan" in timeline
    assert "Đã ký" in timeline
    assert 'name="action"' not in page.text  # closed: no action left


# action -> (steps before it, who acts, extra fields, the op it must write, what that op says)
EVERY_ACTION = {
    "accept": ((), "canbo01", {}, "transition", {"to": 2}),
    "refuse": (
        (),
        "canbo01",
        {"note": "Thiếu giấy tờ", "confirmed": "1"},
        "transition",
        {"to": 3, "note": "Thiếu giấy tờ"},
    ),
    "start": (("accept",), "canbo01", {}, "transition", {"to": 4}),
    "request_supplement": (
        ("accept", "start"),
        "canbo01",
        {"note": "Bổ sung sơ đồ"},
        "transition",
        {"to": 5},
    ),
    "record_supplement": (("accept", "start", "request_supplement"), "canbo01", {}, "transition", {"to": 4}),
    "request_fees": (("accept", "start"), "canbo01", {"note": "Nộp lệ phí"}, "transition", {"to": 6}),
    "fees_paid": (("accept", "start", "request_fees"), "canbo01", {}, "transition", {"to": 4}),
    "processed": (("accept", "start"), "lanhdao01", {}, "transition", {"to": 9, "role": "leader"}),
    "return_result": (("accept", "start", "processed"), "canbo01", {}, "transition", {"to": 10}),
    "withdraw": ((), "canbo01", {"note": "Công dân xin rút", "confirmed": "1"}, "transition", {"to": 7}),
    "stop": (("accept",), "lanhdao01", {"note": "Không bổ sung", "confirmed": "1"}, "transition", {"to": 8}),
    "extend": (
        (),
        "lanhdao01",
        {"note": "Xin lỗi", "due_date": "05/01/2099"},
        "extend",
        {"due_date": "2099-01-05"},
    ),
    "transfer": ((), "canbo01", {"handling_unit": OTHER_UNIT}, "transfer", {"handling_unit": OTHER_UNIT}),
}


def test_the_table_below_covers_every_action():
    assert set(EVERY_ACTION) == set(ACTIONS)


@pytest.mark.parametrize("name", sorted(EVERY_ACTION))
def test_every_action_through_its_page_form_writes_its_op(client, node, name):
    steps, username, fields, op_action, expected = EVERY_ACTION[name]
    dossier_id = receive_sample(node).id
    for step in steps:
        perform(node, actor("lanhdao01"), dossier_id, step, note="Ghi chú")
    token = login(client, username)
    page = client.get(f"/dossiers/{dossier_id}")
    assert f'<input type="hidden" name="action" value="{name}">' in page.text  # the form is offered
    before = head(node)
    response = act(client, token, dossier_id, name, **fields)
    assert response.status_code == 303, response.text
    assert head(node) == before + 1
    op = node.replica.ops_of("dossier", dossier_id)[-1]
    assert (op.node, op.action) == (node.identity.node, op_action)
    assert op.payload["by"] == username
    assert expected.items() <= dict(op.payload).items()


def test_refusal_needs_a_reason_and_records_it(client, node, clerk):
    dossier_id = receive_sample(node).id
    before = head(node)
    missing = act(client, clerk, dossier_id, "refuse", note=" ")
    assert missing.status_code == 422
    assert 'data-field="note"' in missing.text
    assert head(node) == before
    assert (
        act(client, clerk, dossier_id, "refuse", note="Thiếu giấy đề nghị", confirmed="1").status_code == 303
    )
    assert status_of(node, dossier_id) == 3
    assert ops_of(node, dossier_id, "transition")[-1]["note"] == "Thiếu giấy đề nghị"


def test_transfer_to_another_unit_writes_a_transfer_op(client, node, clerk):
    dossier_id = receive_sample(node).id
    page = client.get(f"/dossiers/{dossier_id}")
    assert 'value="transfer"' in page.text
    assert f'<option value="{OTHER_UNIT}"' in page.text
    before = head(node)
    response = act(client, clerk, dossier_id, "transfer", handling_unit=OTHER_UNIT, note="Đúng thẩm quyền")
    assert response.status_code == 303
    assert head(node) == before + 1
    assert ops_of(node, dossier_id, "transfer") == [
        {"handling_unit": OTHER_UNIT, "by": "canbo01", "role": "clerk", "note": "Đúng thẩm quyền"}
    ]
    same = act(client, clerk, dossier_id, "transfer", handling_unit=OTHER_UNIT)
    assert same.status_code == 422
    assert head(node) == before + 1
    login(client, "canbo_caikhe")
    assert client.get(f"/dossiers/{dossier_id}").status_code == 200  # now it is theirs to handle


def test_the_leader_extends_the_appointment_with_form_04(client, node, clerk):
    dossier_id = receive_sample(node).id
    due = date.fromisoformat(node.replica.state("dossier", dossier_id)["due_date"])
    leader = login(client, "lanhdao01")
    before = head(node)
    earlier = act(client, leader, dossier_id, "extend", note="Xin lỗi", due_date=due.isoformat())
    assert earlier.status_code == 422
    assert 'data-field="due_date"' in earlier.text
    later = due + timedelta(days=5)
    response = act(client, leader, dossier_id, "extend", note="Xin lỗi vì chậm", due_date=f"{later:%d/%m/%Y}")
    assert response.status_code == 303
    assert head(node) == before + 1
    assert ops_of(node, dossier_id, "extend")[0]["due_date"] == later.isoformat()
    assert format_date(later) in client.get(f"/dossiers/{dossier_id}").text


@pytest.mark.parametrize(
    ("name", "setup", "fields"),
    [
        ("processed", ("accept", "start"), {}),
        ("stop", ("accept",), {"note": "Công dân không bổ sung", "confirmed": "1"}),
        ("extend", (), {"note": "Xin lỗi", "due_date": "2099-01-05"}),
    ],
)
def test_a_clerk_cannot_take_the_leaders_decisions_but_the_leader_can(
    client, node, clerk, name, setup, fields
):
    dossier_id = receive_sample(node).id
    for step in setup:
        perform(node, actor("canbo01"), dossier_id, step)
    before = head(node)
    refused = act(client, clerk, dossier_id, name, **fields)
    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    assert head(node) == before
    leader = login(client, "lanhdao01")
    assert act(client, leader, dossier_id, name, **fields).status_code == 303
    assert head(node) == before + 1
    last = node.replica.ops_of("dossier", dossier_id)[-1]
    assert (last.payload["by"], last.payload["role"]) == ("lanhdao01", "leader")


def test_htmx_action_returns_the_state_partial_and_errors_in_place(client, node, clerk):
    dossier_id = receive_sample(node).id
    htmx = {"HX-Request": "true"}
    response = client.post(
        f"/dossiers/{dossier_id}/actions", data={"csrf": clerk, "action": "accept"}, headers=htmx
    )
    assert response.status_code == 200
    assert response.text.startswith('<section id="dossier-state">')
    assert "<html" not in response.text
    assert "Được tiếp nhận" in response.text
    assert 'value="start"' in response.text
    page = client.get(f"/dossiers/{dossier_id}")
    assert 'hx-post="/dossiers/' in page.text
    assert 'hx-target="#dossier-state"' in page.text

    before = head(node)
    refused = client.post(
        f"/dossiers/{dossier_id}/actions",
        data={"csrf": clerk, "action": "withdraw", "note": ""},
        headers=htmx,
    )
    assert refused.status_code == 200  # htmx swaps 2xx only: the error replaces the actions in place
    assert refused.text.startswith('<section id="dossier-state">')
    assert 'role="alert"' in refused.text
    assert 'data-field="note"' in refused.text
    assert head(node) == before


def test_a_processed_dossier_offers_its_return_and_nothing_that_needs_a_running_deadline(client, node, clerk):
    # The page's overdue flag and its actions read one definition (schema.status): once the
    # result exists, neither an apology for lateness (form 04) nor a transfer makes sense.
    dossier_id = receive_sample(node).id
    for step in ("accept", "start"):
        perform(node, actor("canbo01"), dossier_id, step)
    perform(node, actor("lanhdao01"), dossier_id, "processed")
    leader = login(client, "lanhdao01")
    state = client.get(f"/dossiers/{dossier_id}").text.split('id="dossier-state"', 1)[1]
    offered = set(re.findall(r'name="action" value="([a-z_]+)"', state))
    assert offered == {"return_result"}
    before = head(node)
    refused = act(client, leader, dossier_id, "extend", note="Xin lỗi", due_date="2099-01-05")
    assert refused.status_code == 403
    assert head(node) == before


def test_an_action_no_longer_possible_is_refused(client, node, clerk):
    dossier_id = receive_sample(node).id
    assert act(client, clerk, dossier_id, "return_result").status_code == 403
    assert act(client, clerk, dossier_id, "dance").status_code == 422
    assert status_of(node, dossier_id) == 1


# --- scans -------------------------------------------------------------------------------------


def test_attaching_scans_writes_ops_and_serves_them_back_safely(client, node, clerk):
    dossier_id = receive_sample(node).id
    before = head(node)
    response = client.post(
        f"/dossiers/{dossier_id}/attachments",
        data={"csrf": clerk},
        files=scans(("biên bản họp.pdf", PDF), ("ảnh.png", PNG)),
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/dossiers/{dossier_id}#attachments"
    digest = hashlib.sha256(PDF).hexdigest()
    assert head(node) == before + 3  # two scans, and the dossier marked digitised
    assert {p["sha256"] for p in ops_of(node, dossier_id, "attach")} == {
        digest,
        hashlib.sha256(PNG).hexdigest(),
    }
    assert ops_of(node, dossier_id, "set") == [{"digitised": True}]

    page = client.get(f"/dossiers/{dossier_id}")
    assert f"/dossiers/{dossier_id}/attachments/{digest}" in page.text
    download = client.get(f"/dossiers/{dossier_id}/attachments/{digest}")
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''bi%C3%AAn%20b%E1%BA%A3n%20h%E1%BB%8Dp.pdf" in disposition

    other = receive_sample(node, applicant_name="Trần Thị Bình", citizen_id="092190004321", dob=None).id
    assert client.get(f"/dossiers/{other}/attachments/{digest}").status_code == 404  # not its scan
    assert client.get(f"/dossiers/{dossier_id}/attachments/{'0' * 64}").status_code == 404
    assert client.get(f"/dossiers/{dossier_id}/attachments/not-a-digest").status_code == 404


def test_attaching_nothing_or_a_fake_scan_is_refused(client, node, clerk):
    dossier_id = receive_sample(node).id
    before = head(node)
    empty = client.post(f"/dossiers/{dossier_id}/attachments", data={"csrf": clerk}, files=[])
    assert empty.status_code == 422
    fake = client.post(
        f"/dossiers/{dossier_id}/attachments", data={"csrf": clerk}, files=scans(("x.jpg", b"MZ\x90\x00exe"))
    )
    assert fake.status_code == 422
    assert 'role="alert"' in fake.text
    assert head(node) == before
    assert list(node.blobs.digests()) == []


# --- who may see what --------------------------------------------------------------------------


def test_a_clerk_of_another_unit_cannot_reach_the_dossier_at_all(client, node):
    received = receive_sample(node, applicant_name="Võ Thị Sáu")
    token = login(client, "canbo01")
    client.post(f"/dossiers/{received.id}/attachments", data={"csrf": token}, files=scans(("a.pdf", PDF)))
    digest = hashlib.sha256(PDF).hexdigest()

    token = login(client, "canbo_caikhe")
    before = head(node)
    base = f"/dossiers/{received.id}"
    assert client.get(base).status_code == 404
    assert client.get(f"{base}/receipt").status_code == 404
    assert client.get(f"{base}/attachments/{digest}").status_code == 404
    assert act(client, token, received.id, "accept").status_code == 404
    assert (
        client.post(f"{base}/attachments", data={"csrf": token}, files=scans(("b.png", PNG))).status_code
        == 404
    )
    assert head(node) == before
    assert "Võ Thị Sáu" not in client.get("/dossiers").text
    assert "Võ Thị Sáu" not in client.get("/dossiers?q=vo thi sau").text
    by_code = client.get(f"/dossiers?q={received.code}").text
    assert f"/dossiers/{received.id}" not in by_code
    assert "Võ Thị Sáu" not in by_code


def test_a_non_territorial_dossier_is_visible_to_its_handling_unit(client, node):
    received = receive_sample(node, applicant_name="Võ Thị Sáu", handling_unit=OTHER_UNIT)
    token = login(client, "canbo_caikhe")
    assert "Võ Thị Sáu" in client.get("/dossiers?q=vo thi sau").text
    page = client.get(f"/dossiers/{received.id}")
    assert page.status_code == 200
    assert 'class="tag nonterritorial"' in page.text
    assert client.get(f"/dossiers/{received.id}/receipt").status_code == 200
    assert act(client, token, received.id, "accept").status_code == 303
    assert ops_of(node, received.id, "transition")[-1]["by"] == "canbo_caikhe"


def test_every_post_without_the_csrf_token_is_refused_and_writes_nothing(client, node, clerk):
    dossier_id = receive_sample(node).id
    before = head(node)
    fields = form_fields(clerk)
    del fields["csrf"]
    assert client.post("/dossiers", data=fields, files=scans(("a.pdf", PDF))).status_code == 403
    assert client.post(f"/dossiers/{dossier_id}/actions", data={"action": "accept"}).status_code == 403
    wrong = client.post(f"/dossiers/{dossier_id}/actions", data={"action": "accept", "csrf": "forged"})
    assert wrong.status_code == 403
    assert client.post(f"/dossiers/{dossier_id}/attachments", files=scans(("a.pdf", PDF))).status_code == 403
    assert head(node) == before
    assert list(node.blobs.digests()) == []


def test_pages_need_a_login(client, node):
    dossier_id = receive_sample(node).id
    for path in ("/dossiers", "/dossiers/new", f"/dossiers/{dossier_id}", f"/dossiers/{dossier_id}/receipt"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


# --- escaping --------------------------------------------------------------------------------


def test_a_hostile_applicant_name_is_shown_escaped_everywhere(client, node, clerk):
    dossier_id = receive_through_form(client, clerk, applicant_type="organisation", citizen_id="", dob="",
                                      applicant_name="<script>alert(1)</script>")  # fmt: skip
    for path in (
        "/dossiers",
        "/dossiers?q=script",
        f"/dossiers/{dossier_id}",
        f"/dossiers/{dossier_id}/receipt",
    ):
        text = client.get(path).text
        assert "<script>alert(1)</script>" not in text, path
        assert ESCAPED_SCRIPT in text, path


# --- conflicts kept by sync ----------------------------------------------------------------------


def box(node: Node, path: Path, offset_ms: int) -> Replica:
    """A second replica (Phường Cái Khế's box) that trusts this node and is trusted by it, its
    wall clock ``offset_ms`` from this one's."""
    clock = Clock(wall=lambda: system_wall_ms() + offset_ms)
    other = Replica(path, Identity.generate(OTHER_UNIT), KINDS, clock=clock, migrate=migrate)
    other.trust(node.identity.node, node.identity.public_raw)
    node.replica.trust(other.identity.node, other.identity.public_raw)
    return other


@pytest.fixture
def other_box(node, tmp_path: Path):
    """Its clock runs a minute ahead, so its moves come later in HLC order than this node's."""
    other = box(node, tmp_path / "caikhe.db", 60_000)
    yield other
    other.close()


@pytest.fixture
def earlier_box(node, tmp_path: Path):
    """Its clock runs a minute behind, so its moves come before this node's in HLC order."""
    other = box(node, tmp_path / "caikhe-early.db", -60_000)
    yield other
    other.close()


def exchange(source: Replica, target: Replica) -> None:
    for batch in source.batches(target.vector()):
        target.merge(batch)


def refuse_elsewhere(box: Replica, dossier_id: str) -> None:
    with box.write() as w:
        w.append(
            "dossier",
            dossier_id,
            "transition",
            {"to": 3, "by": "canbo02", "role": "clerk", "note": "Sai thẩm quyền"},
        )


def test_a_conflict_kept_by_sync_is_shown_where_the_clerk_looks(client, node, clerk, other_box):
    received = receive_sample(node, applicant_name="Võ Thị Sáu", handling_unit=OTHER_UNIT)
    exchange(node.replica, other_box)
    # While the link is down: this commune accepts, the other box refuses the same dossier.
    assert act(client, clerk, received.id, "accept").status_code == 303
    refuse_elsewhere(other_box, received.id)
    exchange(other_box, node.replica)

    assert status_of(node, received.id) == 2  # the earlier move stands
    assert len(node.replica.conflicts("dossier", received.id)) == 1
    page = client.get(f"/dossiers/{received.id}")
    conflicts = page.text.split('class="card conflicts"', 1)[1].split("</section>", 1)[0]
    assert 'role="alert"' in conflicts
    assert "Không được tiếp nhận" in conflicts  # what the other box tried
    assert "canbo02" in conflicts
    assert "Sai thẩm quyền" in conflicts
    # Why sync did not apply it, in the page's language (the catalogs), never the log's English.
    assert "hồ sơ ở trạng thái 2 (Được tiếp nhận) không thể chuyển sang 3 (Không được tiếp nhận)" in conflicts
    assert "cannot move" not in conflicts
    assert other_box.identity.node in conflicts
    listing = client.get("/dossiers?q=vo thi sau")
    assert 'class="tag bad"' in listing.text  # flagged in the list too

    client.get("/lang/en")
    english = client.get(f"/dossiers/{received.id}").text
    assert "a dossier in status 2 (accepted) cannot move to 3 (not accepted)" in english


def test_the_list_and_the_home_page_find_the_dossiers_with_conflicts(client, node, clerk, other_box):
    settled = receive_sample(node, applicant_name="Trần Văn Bình").id
    disputed = receive_sample(node, applicant_name="Võ Thị Sáu", handling_unit=OTHER_UNIT).id
    exchange(node.replica, other_box)
    assert act(client, clerk, disputed, "accept").status_code == 303
    refuse_elsewhere(other_box, disputed)
    exchange(other_box, node.replica)

    listing = client.get("/dossiers?conflicts=1").text
    assert f"/dossiers/{disputed}" in listing
    assert f"/dossiers/{settled}" not in listing
    assert 'name="conflicts" value="1" checked' in listing  # the form keeps the filter (no JS)
    assert f"/dossiers/{settled}" in client.get("/dossiers").text
    assert client.get("/dossiers?conflicts=yes").status_code == 422
    home = client.get("/").text
    counts = home.split('class="counts"', 1)[1].split("</ul>", 1)[0]
    assert re.search(r'href="/dossiers\?conflicts=1"><b>1</b>', counts)


def test_the_clerk_whose_action_lost_is_told_on_the_home_page_until_they_open_it(
    client, node, clerk, earlier_box
):
    received = receive_sample(node, applicant_name="Võ Thị Sáu", handling_unit=OTHER_UNIT)
    exchange(node.replica, earlier_box)
    # While the link is down the other box refuses the dossier first; this clerk then accepts it
    # and tells the citizen so. When the link heals, the refusal stands and the acceptance lost.
    refuse_elsewhere(earlier_box, received.id)
    assert act(client, clerk, received.id, "accept", note="Đã hẹn công dân ngày 20").status_code == 303
    exchange(earlier_box, node.replica)
    assert status_of(node, received.id) == 3

    home = client.get("/").text
    assert 'id="lost-actions"' in home
    notice = home.split('id="lost-actions"', 1)[1].split("</section>", 1)[0]
    assert f'href="/dossiers/{received.id}"' in notice
    assert received.code in notice
    assert "Đã hẹn công dân ngày 20" in notice
    assert "hồ sơ đã kết thúc ở trạng thái 3 (Không được tiếp nhận)" in notice

    leader = TestClient(client.app, follow_redirects=False)
    login(leader, "lanhdao01")
    assert 'id="lost-actions"' not in leader.get("/").text  # not the leader's action
    leader.get(f"/dossiers/{received.id}")
    assert 'id="lost-actions"' in client.get("/").text  # the leader's reading is not the clerk's

    before = node.replica.vector()
    assert client.get(f"/dossiers/{received.id}").status_code == 200
    assert 'id="lost-actions"' not in client.get("/").text
    assert node.replica.vector() == before  # reading it wrote nothing through the change log
    assert 'class="card conflicts"' in client.get(f"/dossiers/{received.id}").text  # still on the page


def test_a_dossier_without_conflicts_shows_no_conflict_box(client, node, clerk):
    dossier_id = receive_sample(node).id
    assert 'class="card conflicts"' not in client.get(f"/dossiers/{dossier_id}").text


# --- reading uploads ---------------------------------------------------------------------------


def test_an_upload_without_content_length_is_cut_off_at_the_limit():
    """A chunked body declares no size: the form reader counts while it streams."""
    body = [b'--b\r\nContent-Disposition: form-data; name="scans"; filename="a.pdf"\r\n\r\n']
    body += [b"%PDF-" + b"0" * 4096] * 10
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in body]
    messages.append({"type": "http.request", "body": b"\r\n--b--\r\n", "more_body": False})

    async def receive():
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/dossiers",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
    }

    async def read(limit: int):
        return await read_form(Request(scope, receive), limit)

    with pytest.raises(TooLarge):
        anyio.run(read, 16 * 1024)
    assert len(messages) > 1  # refused before the whole body was read


def test_a_garbled_multipart_body_is_a_clear_error(client, node, clerk):
    response = client.post(
        "/dossiers",
        content=b"--x\r\nthis is not a part",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 422
    assert 'data-code="invalid"' in response.text
    no_boundary = client.post("/dossiers", content=b"junk", headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 422


def test_the_receive_form_sent_twice_makes_one_dossier(client, node, clerk):
    """A double click, or the browser resending the form after the box lost power before it
    answered: the form's request key gets the dossier the first post made."""
    page = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    key = re.search(r'name="request_key" value="([^"]+)"', page.text)
    assert key, "the receive form carries a request key"
    form = form_fields(clerk, request_key=key.group(1))
    first = client.post("/dossiers", data=form)
    assert first.status_code == 303
    before = head(node)
    second = client.post("/dossiers", data=form)
    assert second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    assert head(node) == before
    fresh = client.get(f"/dossiers/new?procedure={HOUSEHOLD_BUSINESS}")
    assert key.group(1) not in fresh.text  # the next dossier's form has its own key


def test_lists_name_procedures_and_the_home_tables_link_to_all(client, node):
    """Issue 14 item 13: a code such as 2.000720 means nothing to the clerk at the counter."""
    for _ in range(11):
        receive_sample(node)
    login(client)
    listing = client.get("/dossiers").text
    assert '<span title="2.000720">Đăng ký thành lập hộ kinh doanh</span>' in listing
    home = client.get("/").text
    assert '<span title="2.000720">Đăng ký thành lập hộ kinh doanh</span>' in home
    assert f"/dossiers?received_from={today(node).isoformat()}" in home
    assert re.search(r'<a href="[^"]*received_to=[^"]*">[^<]*11', home), "no link to all 11 received"

    node.clock.offset_ms += 60 * 86_400_000  # two months on: all eleven are overdue
    home = client.get("/").text
    assert re.search(r'<a href="/dossiers\?due=overdue">[^<]*11[^<]*→</a>', home), (
        "no 'see all' under Overdue"
    )
