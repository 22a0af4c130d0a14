"""Hostile uploads: a file that claims to be a PDF and is not, a scan over the limit (declared or
streamed), file names that try to climb out of the blob directory, and scans served back.

A scan is stored by its sha256 in the blob store and nowhere else; its type is what its bytes
say, never its name or the browser's word; what is refused is audited and leaves no op, no blob
and no file behind.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from edgekit import PASSWORD, login, receive_sample
from starlette.testclient import TestClient

from edge.app import create_app
from edge.settings import load

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
NOT_SCANS = {
    "html.pdf": b"<html><script>alert(document.cookie)</script></html>",
    "svg.pdf": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    "zip.pdf": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(64),
    "elf.png": b"\x7fELF\x02\x01\x01" + bytes(64),
    "exe.jpg": b"MZ\x90\x00\x03" + bytes(64),
    "pdf-later.pdf": b"\n\n%PDF-1.4 not at the start",
}
TRAVERSALS = [
    "../../../etc/passwd.pdf",
    "..\\..\\node.key.pdf",
    "/etc/cron.d/motcua.pdf",
    "C:\\Windows\\System32\\x.pdf",
    "....//....//x.pdf",
    "a\x00b.pdf",
    "\u202efdp.exe",  # right-to-left override: shows as "exe.pdf"
    ".htaccess",
]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def bearer(client: TestClient) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": "canbo01", "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['token']}"}


def receive_form(token: str) -> dict[str, str]:
    return {
        "csrf": token,
        "procedure": "2.000720",
        "applicant_type": "citizen",
        "applicant_name": "Nguyễn Văn An",
        "citizen_id": "092085001234",
        "address": "12 Mậu Thân",
        "address_unit": "31135",
        "handling_unit": "31135",
        "doc_0_form": "original",
        "doc_0_count": "1",
    }


@pytest.mark.parametrize("name", sorted(NOT_SCANS))
def test_a_file_that_is_not_a_scan_is_refused_everywhere_audited_and_leaves_nothing(
    client, node, snapshot, audited, name
):
    data = NOT_SCANS[name]
    dossier = receive_sample(node)
    token = login(client, "canbo01")
    headers = bearer(client)
    before = snapshot(node, ("dossier", dossier.id))
    files_before = files_under(node.data_dir)
    ways = [
        ("/dossiers", {"data": receive_form(token)}),
        (f"/dossiers/{dossier.id}/attachments", {"data": {"csrf": token}}),
        (f"/api/v1/dossiers/{dossier.id}/attachments", {"headers": headers}),
    ]
    for path, kwargs in ways:
        mark = audited.mark(node)
        response = client.post(path, files=[("scans", (name, data, "application/pdf"))], **kwargs)
        assert response.status_code == 422, (path, response.text[:200])
        [entry] = audited.since(node, mark)
        assert (entry.event, entry.actor, entry.path) == ("upload_refused", "canbo01", path)
        assert entry.detail["name"] == name
    assert snapshot(node, ("dossier", dossier.id)) == before
    assert files_under(node.data_dir) - files_before <= {"audit.db-wal", "audit.db-shm"}


@pytest.fixture
def small(node):
    """The app with a 1 MB scan limit, logged in as canbo01 (``small.token``)."""
    app = create_app(load(node.data_dir, max_upload_mb=1), node, background=False)
    with TestClient(app, follow_redirects=False) as c:
        c.token = login(c, "canbo01")  # type: ignore[attr-defined]
        yield c


def test_an_oversize_scan_is_refused_with_413_audited_and_leaves_nothing(small, node, snapshot, audited):
    dossier = receive_sample(node)
    big = PDF + b"0" * (1024 * 1024)
    before = snapshot(node, ("dossier", dossier.id))
    for path, kwargs in [
        ("/dossiers", {"data": receive_form(small.token)}),
        (f"/dossiers/{dossier.id}/attachments", {"data": {"csrf": small.token}}),
        (f"/api/v1/dossiers/{dossier.id}/attachments", {"headers": bearer(small)}),
    ]:
        mark = audited.mark(node)
        response = small.post(path, files=[("scans", ("big.pdf", big, "application/pdf"))], **kwargs)
        assert response.status_code == 413, path
        [entry] = audited.since(node, mark)
        assert (entry.event, entry.actor, entry.path) == ("too_large", "canbo01", path)
    assert snapshot(node, ("dossier", dossier.id)) == before


def test_a_body_that_lies_about_its_length_or_streams_past_the_limit_is_cut_off(
    small, node, snapshot, audited
):
    dossier = receive_sample(node)
    before = snapshot(node, ("dossier", dossier.id))
    path = f"/dossiers/{dossier.id}/attachments"
    boundary = "x" * 16
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{small.token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="scans"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def endless():
        yield head + PDF
        for _ in range(64):  # 8 MB in 128 KB chunks: far past the 4 x 1 MB + form allowance
            yield b"0" * (128 * 1024)

    declared = small.post(path, content=head, headers={**content_type, "Content-Length": str(10**9)})
    assert declared.status_code == 413
    streamed = small.post(path, content=endless(), headers=content_type)
    assert streamed.status_code == 413
    entries = audited.since(node, 0, "too_large")
    assert [e.path for e in entries] == [path, path]
    assert snapshot(node, ("dossier", dossier.id)) == before


def test_file_names_cannot_climb_out_of_the_blob_store_and_are_kept_harmless(client, node):
    dossier = receive_sample(node)
    token = login(client, "canbo01")
    before = files_under(node.data_dir)
    for n, name in enumerate(TRAVERSALS):
        body = PDF + str(n).encode()  # a distinct blob per name
        response = client.post(
            f"/dossiers/{dossier.id}/attachments",
            data={"csrf": token},
            files=[("scans", (name, body, "x/y"))],
        )
        assert response.status_code == 303, (name, response.text[:200])
    created = files_under(node.data_dir) - before
    blob_root = node.blobs.root.resolve()
    assert created, "the scans were stored"
    for path in created:
        where = (node.data_dir / path).resolve()
        assert where.is_relative_to(blob_root) or path.startswith("audit.db"), path
    stored = node.replica.state("dossier", dossier.id)["attachments"]
    names = [a["name"] for a in stored.values()]
    assert len(names) == len(TRAVERSALS)
    for name in names:
        assert not {"/", "\\"} & set(name), name
        assert ".." not in name, name
        assert not any(ord(ch) < 32 or 0x202A <= ord(ch) <= 0x202E for ch in name), repr(name)
        assert name.endswith(".pdf"), name  # the extension of what the bytes are
        assert not name.startswith("."), name


def test_a_scan_is_served_as_what_its_bytes_are_as_a_download_never_as_a_page(client, node):
    dossier = receive_sample(node)
    token = login(client, "canbo01")
    polyglot = PDF + b"<html><script>alert(1)</script></html>"
    name = '"><img src=x onerror=alert(1)>.pdf'
    client.post(
        f"/dossiers/{dossier.id}/attachments",
        data={"csrf": token},
        files=[("scans", (name, polyglot, "text/html"))],
    )
    digest = hashlib.sha256(polyglot).hexdigest()
    served = client.get(f"/dossiers/{dossier.id}/attachments/{digest}")
    assert served.status_code == 200
    assert served.content == polyglot
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["x-content-type-options"] == "nosniff"
    # A download, its name quoted plainly and percent-encoded: nothing of it can break out.
    disposition = served.headers["content-disposition"]
    assert re.fullmatch(r"attachment; filename=\"[\w .()-]*\"; filename\*=UTF-8''[\w%.~-]*", disposition)


@pytest.mark.parametrize(
    "tail",
    [
        "../../node.key",
        "..%2F..%2Fnode.key",
        "%2e%2e%2f%2e%2e%2fnode.key",
        "0" * 64,
        "A" * 64,
        "../blobs/" + hashlib.sha256(PDF).hexdigest(),
    ],
)
def test_a_scan_url_cannot_read_any_other_file(client, node, tail):
    dossier = receive_sample(node)
    login(client, "canbo01")
    key = (node.data_dir / "node.key").read_bytes()
    response = client.get(f"/dossiers/{dossier.id}/attachments/{tail}")
    assert response.status_code == 404
    assert key not in response.content
    assert response.headers["content-type"].startswith("text/html")
