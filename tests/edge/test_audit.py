"""The audit log itself: what it keeps, that it never fails a request, that it prunes."""

from __future__ import annotations

from edgekit import csrf_of, login, receive_sample

from edge.audit import AuditLog


def test_a_refusal_is_kept_with_who_where_and_why(tmp_path):
    log = AuditLog(tmp_path / "audit.db")
    log.record("login_failed", actor="lan", remote="192.168.1.23", method="POST", path="/login", code="x")
    log.record("csrf", actor="mai", remote="192.168.1.7", method="POST", path="/dossiers")
    [newest, oldest] = log.entries()
    assert (newest.event, newest.actor, newest.path) == ("csrf", "mai", "/dossiers")
    assert (oldest.event, oldest.remote, oldest.detail) == ("login_failed", "192.168.1.23", {"code": "x"})
    assert log.counts() == {"csrf": 1, "login_failed": 1}
    assert [e.event for e in log.entries(event="csrf")] == ["csrf"]
    log.close()


def test_it_survives_a_reopen(tmp_path):
    AuditLog(tmp_path / "audit.db").record("forbidden", actor="mai")
    log = AuditLog(tmp_path / "audit.db")
    assert [e.event for e in log.entries()] == ["forbidden"]
    log.close()


def test_a_flood_of_refusals_is_pruned_to_the_newest(tmp_path):
    log = AuditLog(tmp_path / "audit.db", keep_rows=100)
    for i in range(2_500):
        log.record("login_failed", actor=f"u{i}")
    entries = log.entries(limit=10_000)
    assert len(entries) <= 100 + 1_000  # pruned every 1,000 lines down to the newest 100
    assert entries[0].actor == "u2499"
    log.close()


def test_a_storage_failure_never_fails_the_refusal(tmp_path, caplog):
    log = AuditLog(tmp_path / "audit.db")
    log._conn.close()  # the disk went away under it
    log.record("csrf", actor="mai")  # does not raise
    assert "could not be written" in caplog.text
    assert "refused csrf actor=mai" in caplog.text
    log.close()


# --- through the app: what the handler writes, and the page that shows it ----------------------

WRONG = "sai-mat-khau-bi-mat"


def _fail_login(client, username: str) -> None:
    page = client.get("/login")
    answer = client.post("/login", data={"username": username, "password": WRONG, "csrf": csrf_of(page.text)})
    assert answer.status_code == 400


def test_a_wrong_password_is_audited_with_the_name_tried_never_the_password(client, node):
    _fail_login(client, "canbo01")
    [entry] = node.audit.entries(event="login_failed")
    assert (entry.actor, entry.method, entry.path) == ("canbo01", "POST", "/login")
    assert WRONG not in repr(entry)
    assert WRONG.encode() not in (node.data_dir / "audit.db").read_bytes()


def test_a_form_without_its_csrf_token_is_refused_and_audited(client, node):
    login(client, "canbo01")
    before = node.replica.op_count()
    answer = client.post("/account/password", data={"current": "x", "new": "y", "again": "y"})
    assert answer.status_code == 403
    [entry] = node.audit.entries(event="csrf")
    assert entry.actor == "canbo01"
    assert node.replica.op_count() == before


def test_a_leader_sees_what_was_refused_as_a_chart_and_lines(client, node):
    _fail_login(client, "canbo01")
    _fail_login(client, "khong-co-ai")
    login(client, "lanhdao01")
    page = client.get("/audit")
    assert page.status_code == 200
    assert "Những gì máy này đã từ chối" in page.text  # Vietnamese first
    assert '<title id="chart-audit-title">' in page.text
    assert "Đăng nhập: 2" in page.text  # today's bar: two failed logins
    assert "Sai mật khẩu" in page.text
    assert "khong-co-ai" in page.text
    assert "Tổng</th><td>2</td>" in page.text


def test_a_clerk_may_not_read_the_audit_log_and_the_attempt_is_itself_audited(client, node):
    login(client, "canbo01")
    assert client.get("/audit").status_code == 403
    [entry] = node.audit.entries(event="forbidden")
    assert (entry.actor, entry.path) == ("canbo01", "/audit")


def test_the_refusals_page_says_each_refusal_in_vietnamese_under_plain_columns(client, node):
    """Issue 14 item 5: the details were the English messages; the path column was headed as
    the receipt's "Nội dung yêu cầu giải quyết"; the intro read "nothing was refused"."""
    login(client, "canbo01")
    dossier = receive_sample(node).id
    token = csrf_of(client.get(f"/dossiers/{dossier}").text)
    files = [("scans", ("to-khai.pdf", b"not a pdf", "application/pdf"))]
    client.post(f"/dossiers/{dossier}/attachments", data={"csrf": token}, files=files)
    client.get("/audit")  # a clerk: refused, and audited
    login(client, "lanhdao01")
    page = client.get("/audit").text
    assert "Tệp to-khai.pdf không phải bản quét PDF, JPEG hoặc PNG." in page
    assert "Vai trò của bạn không được thực hiện thao tác này." in page
    assert "is not a PDF" not in page
    assert "Your role" not in page
    assert "Nội dung yêu cầu giải quyết" not in page
    assert "Trang hoặc địa chỉ được yêu cầu" in page
    assert "Không có gì bị từ chối" not in page
