"""Fuzzing what a clerk's browser or an API client sends: scans, forms, queries, JSON bodies.

``check_scan`` decides what a file is from its bytes and makes its name harmless: any name and
any bytes give a scan whose type matches its first bytes and whose name has no path, no control
character and a bounded length, or a typed refusal. Through the real form (the edge app in
process, a clerk logged in): a damaged multipart body, odd file names and contents, odd field
values never make the box answer 500, and a refused form writes no op and stores no scan. The
same holds for odd query parameters on the pages and for damaged JSON bodies of the API.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterator

import httpx
import pytest
from edgekit import ACCOUNTS, PASSWORD, UNIT, login
from fuzzing import ODD_TEXT, assert_clear, examples, mutated_bytes, refusal
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from edge.accounts import add_account
from edge.app import create_app
from edge.errors import EdgeError
from edge.node import Node, init_node
from edge.settings import load
from edge.uploads import MAX_NAME, check_scan, sniff

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(40))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(40))
MAX_BYTES = 4096
EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}

NAMES = st.text(max_size=200) | st.sampled_from(
    (
        "",
        ".",
        "..",
        "../../etc/passwd",
        "..\\..\\boot.ini",
        "/abs/path.pdf",
        "giấy đề nghị.pdf",
        "\x00.pdf",
        "a\x00b.png",
        "\u202etxt.exe",
        "\ud800.pdf",
        "con.jpg",
        " .hidden.pdf ",
        "x" * 1000 + ".pdf",
        "<script>.png",
        "name.pdf.exe",
    )
)
CONTENTS = st.sampled_from((PDF, JPEG, PNG, b"", b"GIF89a", b"MZ\x90\x00")).flatmap(
    lambda base: st.just(base) | mutated_bytes(base) | st.binary(max_size=64).map(lambda tail: base + tail)
)


@examples(250)
@given(name=NAMES, data=CONTENTS)
def test_any_name_and_bytes_give_a_harmless_scan_or_a_typed_refusal(name, data):
    found = []
    error = refusal(lambda: found.append(check_scan(name, data, MAX_BYTES)), EdgeError)
    if error is not None:
        assert_clear(error)
        assert error.field == "scans"
        return
    scan = found[0]
    assert scan.data == data
    assert scan.mime == sniff(data)
    assert scan.name.endswith(
        {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}[scan.mime]
    )
    assert 4 < len(scan.name) <= MAX_NAME
    assert "/" not in scan.name
    assert "\\" not in scan.name
    assert not scan.name.startswith(".")
    assert not any(unicodedata.category(ch)[0] == "C" for ch in scan.name)


# --- through the receive form -------------------------------------------------------------------


class Desk:
    def __init__(self, node: Node, client: TestClient, token: str) -> None:
        self.node, self.client, self.token = node, client, token

    def written(self) -> tuple[object, ...]:
        return self.node.replica.vector()[self.node.identity.node], sorted(self.node.blobs.digests())


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    node = init_node(tmp_path_factory.mktemp("uploads") / "node", UNIT)
    for username, (name, role, unit) in ACCOUNTS.items():
        add_account(node, username, name, role, PASSWORD, unit)
    app = create_app(load(node.data_dir), node)
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        yield Desk(node, client, login(client))
    node.close()


def fields(token: str) -> dict[str, str]:
    return {
        "csrf": token,
        "procedure": "2.000720",
        "applicant_type": "citizen",
        "applicant_name": "Nguyễn Văn An",
        "citizen_id": "092085001234",
        "dob": "14/03/1985",
        "phone": "0912 345 678",
        "address": "12 Mậu Thân",
        "address_unit": UNIT,
        "handling_unit": UNIT,
        "doc_0_form": "original",
        "doc_0_count": "1",
        "fee": "100.000",
        "channel": "direct",
    }


def post(desk: Desk, body: bytes, content_type: str) -> httpx.Response:
    before = desk.written()
    answer = desk.client.post("/dossiers", content=body, headers={"content-type": content_type})
    assert answer.status_code < 500, f"the box failed on a form: {answer.text[:300]}"
    if answer.status_code != 303:
        assert desk.written() == before, "a refused form wrote something"
    return answer


def multipart(values: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    request = httpx.Request(
        "POST",
        "http://box/dossiers",
        data=values,
        files=[("scans", (name, data, "application/octet-stream")) for name, data in files],
    )
    return request.read(), request.headers["content-type"]


@examples(60)
@given(name=NAMES.filter(lambda n: "\ud800" not in n), data=CONTENTS)
def test_the_receive_form_takes_any_file_without_failing(desk, name, data):
    body, content_type = multipart(fields(desk.token), [(name, data)])
    before = set(desk.node.blobs.digests())
    answer = post(desk, body, content_type)
    stored = set(desk.node.blobs.digests()) - before
    if sniff(data) is None:
        assert answer.status_code != 303 or not name, "a file that is not a scan was received"
        assert not stored, "a file that is not a scan was stored"
    elif answer.status_code == 303 and name:
        assert hashlib.sha256(data).hexdigest() in set(desk.node.blobs.digests()), "a received scan was lost"


@examples(80)
@given(data=st.data())
def test_a_damaged_multipart_body_is_refused_without_failing(desk, data):
    body, content_type = multipart(fields(desk.token), [("giấy đề nghị.pdf", PDF)])
    post(desk, data.draw(mutated_bytes(body)), content_type)


@examples(50)
@given(data=st.data())
def test_odd_field_values_are_refused_without_failing(desk, data):
    values = fields(desk.token)
    key = data.draw(st.sampled_from(sorted(k for k in values if k != "csrf")))
    values[key] = data.draw(ODD_TEXT.filter(lambda t: "\x00" not in t))
    body, content_type = multipart(values, [])
    post(desk, body, content_type)


QUERY_NAMES = ("status", "page", "q", "year", "month", "unit", "procedure", "from", "to", "event", "next")


@examples(50)
@given(
    path=st.sampled_from(("/", "/dossiers", "/reports", "/audit", "/dossiers/new")),
    name=st.sampled_from(QUERY_NAMES),
    value=ODD_TEXT,
)
def test_odd_query_parameters_are_answered_without_failing(desk, path, name, value):
    answer = desk.client.get(path, params={name: value})
    assert answer.status_code < 500, f"{path}?{name}={value[:40]!r}: {answer.text[:300]}"


@pytest.fixture(scope="module")
def token(desk) -> str:
    answer = desk.client.post("/api/v1/auth/token", json={"username": "canbo01", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


API_BODY = json.dumps(
    {
        "procedure": "2.000720",
        "applicant_name": "Nguyễn Văn An",
        "citizen_id": "092085001234",
        "dob": "1985-03-14",
        "phone": "0912345678",
        "address": "12 Mậu Thân",
        "address_unit": "31135",
        "documents": [{"name": "Giấy đề nghị", "form": "original", "count": 1}],
        "fee": 100000,
    },
    ensure_ascii=False,
).encode()


@examples(100)
@given(data=st.data())
def test_a_damaged_json_body_is_refused_by_the_api_without_failing(desk, token, data):
    before = desk.written()
    answer = desk.client.post(
        "/api/v1/dossiers",
        content=data.draw(mutated_bytes(API_BODY)),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert answer.status_code < 500, answer.text[:300]
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert error["code"]
        assert error["message"].strip()
        assert desk.written() == before, "a refused API request wrote something"


@pytest.fixture(scope="module")
def dossier(desk, token) -> str:
    document = {k: v for k, v in json.loads(API_BODY).items() if k != "documents"}
    answer = desk.client.post("/api/v1/dossiers", json=document, headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


@examples(40)
@given(data=st.data())
def test_an_attachment_upload_cut_anywhere_stores_every_scan_or_none(desk, token, dossier, data):
    """A body cut short (a client that stops sending) must not attach the first scan and
    silently drop the second."""
    first, second = PDF + data.draw(st.binary(max_size=16)), PNG + data.draw(st.binary(max_size=16))
    body, content_type = multipart({}, [("a.pdf", first), ("b.png", second)])
    cut = data.draw(st.integers(0, len(body)))
    before = desk.written()
    answer = desk.client.post(
        f"/api/v1/dossiers/{dossier}/attachments",
        content=body[:cut],
        headers={"authorization": f"Bearer {token}", "content-type": content_type},
    )
    assert answer.status_code < 500, answer.text[:300]
    if answer.status_code >= 400:
        assert desk.written() == before, "a refused upload attached something"
        return
    held = set(desk.node.blobs.digests())
    for scan in (first, second):
        assert hashlib.sha256(scan).hexdigest() in held, "an upload succeeded without one of its scans"
