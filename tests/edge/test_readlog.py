"""Who looked at whom: every read of a dossier is in the box's read log, kept for a configured
time, shown to the leader, and a citizen's data exports as one file (Decree 13/2023/NĐ-CP).

The app is the real one on a real node directory (SQLite files, the blob store on disk)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zipfile

import pytest
from edgekit import login
from test_api import VALID, bearer, small_pdf

from edge.app import create_app
from edge.audit import DAY_MS, AuditLog, open_audit
from edge.settings import load

CITIZEN = VALID["citizen_id"]


@pytest.fixture
def received(client) -> dict[str, str]:
    """A dossier with a scan, received through the API by canbo01."""
    headers = bearer(client)
    created = client.post("/api/v1/dossiers", headers=headers, json=VALID)
    assert created.status_code == 201, created.text
    dossier = created.json()
    pdf = small_pdf()
    added = client.post(
        f"/api/v1/dossiers/{dossier['id']}/attachments",
        headers=headers,
        files={"scans": ("giấy đề nghị.pdf", pdf, "application/pdf")},
    )
    assert added.status_code in (200, 201), added.text
    return {"id": dossier["id"], "code": dossier["code"], "sha256": hashlib.sha256(pdf).hexdigest()}


def reads_of(node, dossier_id: str) -> list[tuple[str, str]]:
    return [(r.actor, r.what) for r in node.audit.reads(dossiers=[dossier_id])]


def test_page_receipt_scan_and_api_reads_are_logged_with_account_and_time(client, node, received):
    before = int(time.time() * 1000)
    dossier = received["id"]
    assert reads_of(node, dossier) == []  # receiving and attaching are not reads
    api = client.get(f"/api/v1/dossiers/{dossier}", headers=bearer(client, "canbo01"))
    assert api.status_code == 200
    login(client, "canbo01")
    assert client.get(f"/dossiers/{dossier}").status_code == 200
    assert client.get(f"/dossiers/{dossier}/receipt").status_code == 200
    scan = client.get(f"/dossiers/{dossier}/attachments/{received['sha256']}")
    assert scan.status_code == 200
    assert scan.content == small_pdf()
    assert client.get(f"/dossiers/{dossier}/record").status_code == 200

    lines = node.audit.reads(dossiers=[dossier])
    assert [(r.actor, r.what) for r in reversed(lines)] == [
        ("canbo01", "api"),
        ("canbo01", "page"),
        ("canbo01", "receipt"),
        ("canbo01", "scan"),
        ("canbo01", "record"),
    ]
    assert all(r.code == received["code"] for r in lines)
    assert all(before <= r.at_ms <= int(time.time() * 1000) for r in lines)
    assert lines[1].detail == {"name": "giấy đề nghị.pdf", "sha256": received["sha256"]}


def test_a_refused_read_is_not_a_read(client, node, received):
    """Another unit's clerk gets 404 (audited as a refusal); the read log does not list it."""
    login(client, "canbo_caikhe")
    assert client.get(f"/dossiers/{received['id']}").status_code == 404
    assert reads_of(node, received["id"]) == []
    assert [e.event for e in node.audit.entries()] == ["cross_unit"]


def test_a_clerk_sees_neither_the_read_log_nor_the_export(client, node, received):
    token = login(client, "canbo01")
    assert 'href="/audit/reads"' not in client.get("/").text
    assert client.get("/audit/reads").status_code == 403
    assert client.get("/audit/reads.csv").status_code == 403
    refused = client.post("/audit/subject", data={"csrf": token, "citizen_id": CITIZEN})
    assert refused.status_code == 403
    assert "zip" not in refused.headers.get("content-type", "")
    assert all(r.what != "export" for r in node.audit.reads())


def test_the_leader_sees_who_looked_filters_by_citizen_and_downloads_csv(client, node, received):
    login(client, "canbo01")
    client.get(f"/dossiers/{received['id']}")
    client.cookies.clear()
    login(client, "lanhdao01")
    page = client.get("/audit/reads", params={"citizen_id": CITIZEN})
    assert page.status_code == 200
    assert "Ai đã xem hồ sơ nào" in page.text  # Vietnamese first
    assert received["code"] in page.text
    assert "Nguyễn Thị Lan (canbo01)" in page.text
    assert 'data-what="page"' in page.text
    other = client.get("/audit/reads", params={"citizen_id": "001099000001"})
    assert received["code"] not in other.text
    table = client.get("/audit/reads.csv", params={"citizen_id": CITIZEN})
    assert table.status_code == 200
    rows = list(csv.DictReader(io.StringIO(table.text.lstrip("\ufeff"))))
    assert [(r["account"], r["what"], r["code"], r["citizen_id"]) for r in rows] == [
        ("canbo01", "page", received["code"], CITIZEN)
    ]


def test_the_leader_exports_everything_about_one_citizen_and_the_export_is_logged(client, node, received):
    login(client, "canbo01")
    client.get(f"/dossiers/{received['id']}")
    client.cookies.clear()
    token = login(client, "lanhdao01")
    answer = client.post("/audit/subject", data={"csrf": token, "citizen_id": CITIZEN})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    subject = json.loads(archive.read("subject.json"))
    assert subject["citizen_id"] == CITIZEN
    assert subject["exported_by"] == "lanhdao01"
    (dossier,) = subject["dossiers"]
    assert dossier["code"] == received["code"]
    assert dossier["applicant_name"] == VALID["applicant_name"]
    assert [s["action"] for s in dossier["steps"]] == ["create"]  # the timeline
    (scan,) = dossier["attachments"]
    assert archive.read(scan["file"]) == small_pdf()
    assert [(r["account"], r["what"]) for r in subject["reads"]] == [("canbo01", "page")]
    exported = [r for r in node.audit.reads() if r.what == "export"]
    assert [(r.actor, r.dossier, r.detail["citizen_id"]) for r in exported] == [
        ("lanhdao01", received["id"], CITIZEN)
    ]
    # A citizen the box holds nothing about: an empty export, logged as well.
    empty = client.post("/audit/subject", data={"csrf": token, "citizen_id": "001099000001"})
    assert json.loads(zipfile.ZipFile(io.BytesIO(empty.content)).read("subject.json"))["dossiers"] == []
    assert node.audit.reads(limit=1)[0].detail == {"citizen_id": "001099000001"}


def test_the_export_needs_the_forms_token(client, node, received):
    login(client, "lanhdao01")
    assert client.post("/audit/subject", data={"citizen_id": CITIZEN}).status_code == 403
    assert [r for r in node.audit.reads() if r.what == "export"] == []


def test_read_log_lines_older_than_the_setting_are_pruned(node, received):
    now = int(time.time() * 1000)
    for age_days in (400, 40, 10, 0):
        node.audit.read("canbo01", "page", received["id"], at_ms=now - age_days * DAY_MS - 1000)
    assert len(node.audit.reads()) == 4
    create_app(load(node.data_dir), node, background=False)  # default: a year
    assert len(node.audit.reads()) == 3
    create_app(load(node.data_dir, read_log_days=30), node, background=False)
    assert sorted(now - r.at_ms > 30 * DAY_MS for r in node.audit.reads()) == [False, False]


def test_the_log_prunes_itself_while_it_is_written(tmp_path):
    log = AuditLog(tmp_path / "audit.db")
    try:
        log.keep_read_ms = DAY_MS
        now = int(time.time() * 1000)
        log.read("canbo01", "page", "d-old", at_ms=now - 2 * DAY_MS)
        for i in range(1000):  # the thousandth line prunes
            log.read("canbo01", "api", f"d{i}")
        assert [r for r in log.reads(limit=5000) if r.dossier == "d-old"] == []
        assert len(log.reads(limit=5000)) == 1000
    finally:
        log.close()
    reopened = open_audit(tmp_path)  # the lines are on disk, in the box's audit file
    try:
        assert len(reopened.reads(limit=5000)) == 1000
    finally:
        reopened.close()


def test_city_it_reads_the_log_on_the_box_with_the_cli(client, node, received, capsys):
    from ops.cli import main

    login(client, "canbo01")
    client.get(f"/dossiers/{received['id']}")
    assert main(["audit", "--data", str(node.data_dir), "--reads", "--account", "canbo01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 read(s) of dossiers")
    assert f"canbo01         page     {received['code']}" in out
    assert main(["audit", "--data", str(node.data_dir), "--reads", "--account", "lanhdao01"]) == 0
    assert capsys.readouterr().out.startswith("0 read(s)")
