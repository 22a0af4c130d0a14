"""The JSON API: tokens, dossiers, actions, attachments, catalogue, sync status, its OpenAPI document."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import string
import time
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from edgekit import HOUSEHOLD_BUSINESS, OTHER_UNIT, PASSWORD, UNIT, login, receive_sample
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from itsdangerous.timed import TimestampSigner
from starlette.routing import Route
from starlette.testclient import TestClient

from edge import api, openapi
from edge.app import create_app
from edge.settings import load
from schema import KINDS, migrate
from sync.clock import Clock, system_wall_ms
from sync.identity import Identity
from sync.replica import Replica

FORM_NAME = "Giấy đề nghị đăng ký hộ kinh doanh"
VALID = {
    "procedure": HOUSEHOLD_BUSINESS,
    "applicant_type": "citizen",
    "applicant_name": "Nguyễn Văn An",
    "citizen_id": "092085001234",
    "dob": "1985-03-14",
    "phone": "0912345678",
    "email": "an@example.vn",
    "address": "12 Mậu Thân",
    "address_unit": UNIT,
    "handling_unit": UNIT,
    "documents": [{"name": FORM_NAME, "form": "original", "count": 1}],
    "fee": 100000,
    "channel": "direct",
    "confirm_clock": False,
}


# --- helpers --------------------------------------------------------------------------------------


def token_for(client: TestClient, username: str = "canbo01") -> str:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def bearer(client: TestClient, username: str = "canbo01") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, username)}"}


def own_seq(node) -> int:
    """How many ops this node has authored: grows with every write, never otherwise."""
    return node.replica.vector()[node.identity.node]


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "field"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if field is not None:
        assert error.get("field") == field, error
    return dict(error)


def small_pdf() -> bytes:
    """A real one-page PDF, xref offsets and all."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length 35 >>\nstream\nBT /F1 12 Tf 20 100 Td (CCCD) Tj ET\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
FAKE_PDF = b"MZ\x90\x00 this is a program, not a scan"


# --- a small JSON Schema checker for the subset the OpenAPI document uses -------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = openapi.SPEC
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def conforms(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    schema = _resolve(schema)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        assert any(_is(value, k) for k in kinds), f"{path}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "const" in schema:
        assert value == schema["const"], path
    if isinstance(value, int) and not isinstance(value, bool):
        assert value >= schema.get("minimum", value), path
        assert value <= schema.get("maximum", value), path
    if isinstance(value, str) and schema.get("format") == "date":
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value), path
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{path}: missing {name}"
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                conforms(item, properties[name], f"{path}.{name}")
            elif extra is False:
                raise AssertionError(f"{path}: undocumented property {name}")
            elif isinstance(extra, dict):
                conforms(item, extra, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            conforms(item, schema["items"], f"{path}[{i}]")


def documented(response, operation_id: str) -> None:
    """The response is one the OpenAPI document promises for this operation, in its shape."""
    operation = next(
        op
        for item in openapi.SPEC["paths"].values()
        for op in item.values()
        if op["operationId"] == operation_id
    )
    status = str(response.status_code)
    assert status in operation["responses"], f"{operation_id} does not document {status}: {response.text}"
    described = _resolve(operation["responses"][status])
    content = described.get("content", {}).get("application/json")
    if content is not None:
        conforms(response.json(), content["schema"])
    for header in described.get("headers", {}):
        assert header.lower() in response.headers


# --- tokens ---------------------------------------------------------------------------------------


def test_token_is_issued_for_the_right_password(client, app):
    response = client.post("/api/v1/auth/token", json={"username": "canbo01", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == app.state.motcua.tokens.max_age_s
    assert app.state.motcua.tokens.username(body["token"]) == "canbo01"
    assert "set-cookie" not in response.headers
    documented(response, "issueToken")


@pytest.mark.parametrize(
    ("username", "password"), [("canbo01", "wrong-password"), ("nobody", PASSWORD), ("", "")]
)
def test_a_wrong_password_or_unknown_user_gets_401(client, username, password):
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert_error(response, 401, "not_authenticated")
    documented(response, "issueToken")


def test_a_locked_account_gets_429_even_with_the_right_password(client, app):
    throttle = app.state.motcua.throttle
    for _ in range(throttle.limit):
        client.post("/api/v1/auth/token", json={"username": "canbo01", "password": "wrong"})
    response = client.post("/api/v1/auth/token", json={"username": "canbo01", "password": PASSWORD})
    assert_error(response, 429, "locked_out")
    documented(response, "issueToken")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{", 400, None),
        (b'{"username": "canbo01"}', 422, "password"),
        (b'{"username": 1, "password": "x"}', 422, "username"),
        (b'{"username": "canbo01", "password": "x", "remember": true}', 422, "remember"),
    ],
)
def test_a_bad_token_request_is_a_json_error(client, body, status, field):
    response = client.post("/api/v1/auth/token", content=body)
    assert_error(response, status, field=field)


# --- every call needs a valid bearer token --------------------------------------------------------

PROTECTED = [
    ("get", "/api/v1/dossiers"),
    ("post", "/api/v1/dossiers"),
    ("get", "/api/v1/dossiers/{id}"),
    ("post", "/api/v1/dossiers/{id}/actions"),
    ("post", "/api/v1/dossiers/{id}/attachments"),
    ("get", "/api/v1/procedures"),
    ("get", "/api/v1/sync/status"),
]


def _expired_token(app, monkeypatch) -> str:
    tokens = app.state.motcua.tokens
    with monkeypatch.context() as m:
        m.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - tokens.max_age_s - 60)
        return str(tokens.issue("canbo01"))


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("kind", ["none", "garbage", "basic", "expired", "tampered", "unknown_user"])
def test_every_call_without_a_valid_token_gets_401(client, app, node, monkeypatch, method, path, kind):
    dossier = receive_sample(node)
    good = app.state.motcua.tokens.issue("canbo01")
    headers = {
        "none": {},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "basic": {"Authorization": "Basic Y2FuYm8wMTpNYXRraGF1MTIz"},
        "expired": {"Authorization": f"Bearer {_expired_token(app, monkeypatch)}"},
        "tampered": {"Authorization": f"Bearer {good[:-2]}{'AA' if not good.endswith('AA') else 'BB'}"},
        "unknown_user": {"Authorization": f"Bearer {app.state.motcua.tokens.issue('ghost')}"},
    }[kind]
    before = own_seq(node)
    url = path.format(id=dossier.id)
    if method == "get":
        response = client.get(url, headers=headers)
    elif path.endswith("/attachments"):
        response = client.post(
            url, headers=headers, files={"scans": ("a.pdf", small_pdf(), "application/pdf")}
        )
    elif path.endswith("/actions"):
        response = client.post(url, headers=headers, json={"action": "accept"})
    else:
        response = client.post(url, headers=headers, json=VALID)
    assert_error(response, 401, "not_authenticated")
    assert own_seq(node) == before


def test_a_session_cookie_alone_does_not_authenticate_the_api(client, node):
    login(client, "canbo01")
    assert client.get("/").status_code == 200  # the session works for pages
    before = own_seq(node)
    assert_error(client.get("/api/v1/dossiers"), 401)
    assert_error(client.post("/api/v1/dossiers", json=VALID), 401)
    assert own_seq(node) == before


# --- receiving a dossier --------------------------------------------------------------------------


def test_create_answers_201_with_code_status_due_date_and_location(client, node):
    headers = bearer(client)
    before = own_seq(node)
    response = client.post("/api/v1/dossiers", headers=headers, json=VALID)
    assert response.status_code == 201, response.text
    documented(response, "createDossier")
    body = response.json()
    assert re.fullmatch(rf"{UNIT}-\d{{6}}-0001", body["code"])
    assert body["status"] == 1
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["due_date"])
    assert body["clock_warning"] is None
    assert response.headers["location"] == f"/api/v1/dossiers/{body['id']}"
    # the write went through the change log: one create op, authored by this node
    assert own_seq(node) == before + 1
    ops = node.replica.ops_of("dossier", body["id"])
    assert [op.action for op in ops] == ["create"]
    assert ops[0].node == node.identity.node
    assert ops[0].payload["by"] == "canbo01"
    second = client.post("/api/v1/dossiers", headers=headers, json=VALID).json()
    assert second["code"].endswith("-0002")


def test_a_created_dossier_reads_back_as_sent(client):
    headers = bearer(client)
    created = client.post("/api/v1/dossiers", headers=headers, json=VALID).json()
    got = client.get(f"/api/v1/dossiers/{created['id']}", headers=headers)
    documented(got, "getDossier")
    dossier = got.json()
    assert dossier["code"] == created["code"]
    assert dossier["applicant_name"] == "Nguyễn Văn An"
    assert dossier["applicant_dob"] == "1985-03-14"
    assert dossier["receiving_unit"] == dossier["handling_unit"] == UNIT
    assert dossier["documents"] == VALID["documents"]
    assert dossier["fee"] == 100000
    assert [s["action"] for s in dossier["steps"]] == ["create"]
    assert dossier["attachments"] == []
    assert {"accept", "refuse"} <= {a["name"] for a in dossier["actions"]}


def test_a_minimal_body_takes_the_defaults(client):
    headers = bearer(client)
    body = {"procedure": HOUSEHOLD_BUSINESS, "applicant_name": "Lê Thị Bé", "citizen_id": "092190004321"}
    created = client.post("/api/v1/dossiers", headers=headers, json=body)
    assert created.status_code == 201, created.text
    dossier = client.get(f"/api/v1/dossiers/{created.json()['id']}", headers=headers).json()
    assert dossier["fee"] == 100000  # the procedure's fee
    assert dossier["channel"] == "direct"


def test_a_suspect_clock_needs_confirmation_before_a_due_date(client, node, monkeypatch):
    monkeypatch.setattr(node.clock, "wall_ms", lambda: 946_684_800_000)  # 01/01/2000: dead CMOS battery
    headers = bearer(client)
    before = own_seq(node)
    refused = client.post("/api/v1/dossiers", headers=headers, json=VALID)
    assert_error(refused, 422, "invalid", "confirm_clock")
    assert own_seq(node) == before
    status = client.get("/api/v1/sync/status", headers=headers).json()
    assert status["clock"]["suspect"] is True


def _with(**changes: Any) -> dict[str, Any]:
    body = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


BAD_BODIES = [
    pytest.param(b"{not json", 400, None, id="malformed"),
    pytest.param(b"", 422, None, id="empty"),
    pytest.param(b"[1, 2]", 422, None, id="array"),
    pytest.param(b'"x"', 422, None, id="string"),
    pytest.param(b"\xff\xfe", 400, None, id="not-utf8"),
    pytest.param(b'{"procedure": "2.000720", "applicant_name": "\\ud800"}', 400, None, id="lone-surrogate"),
    pytest.param(_with(procedure=...), 422, "procedure", id="missing-procedure"),
    pytest.param(_with(applicant_name=...), 422, "applicant_name", id="missing-name"),
    pytest.param(_with(applicant_name=42), 422, "applicant_name", id="name-not-a-string"),
    pytest.param(_with(applicant_name="   "), 422, "applicant_name", id="blank-name"),
    pytest.param(_with(fee="100000"), 422, "fee", id="fee-as-string"),
    pytest.param(_with(fee=-1), 422, "fee", id="negative-fee"),
    pytest.param(_with(fee=1.5), 422, "fee", id="fractional-fee"),
    pytest.param(_with(fee=10**30), 422, "fee", id="huge-fee"),
    pytest.param(_with(fee=True), 422, "fee", id="boolean-fee"),
    pytest.param(_with(nickname="An"), 422, "nickname", id="unknown-field"),
    pytest.param(_with(citizen_id="12345"), 422, "citizen_id", id="short-cccd"),
    pytest.param(_with(citizen_id="09208500123x"), 422, "citizen_id", id="cccd-with-letter"),
    pytest.param(_with(citizen_id=""), 422, "citizen_id", id="citizen-without-cccd"),
    pytest.param(_with(procedure="9.999999"), 422, "procedure", id="unknown-procedure"),
    pytest.param(_with(dob="1985-02-30"), 422, "dob", id="impossible-date"),
    pytest.param(_with(dob="14/03/1985"), 422, "dob", id="date-not-iso"),
    pytest.param(_with(dob="1990-03-14"), 422, "dob", id="dob-against-cccd-year"),
    pytest.param(_with(applicant_type="alien"), 422, "applicant_type", id="unknown-applicant-type"),
    pytest.param(_with(channel="fax"), 422, "channel", id="unknown-channel"),
    pytest.param(_with(phone="12345"), 422, "phone", id="bad-phone"),
    pytest.param(_with(handling_unit="99999"), 422, "handling_unit", id="unknown-handling-unit"),
    pytest.param(_with(address_unit="00000"), 422, "address_unit", id="unknown-address-unit"),
    pytest.param(_with(documents={"name": FORM_NAME}), 422, "documents", id="documents-not-a-list"),
    pytest.param(_with(documents=[{"name": "Hộ chiếu", "form": "copy"}]), 422, "documents", id="foreign-doc"),
    pytest.param(_with(documents=[{"name": FORM_NAME, "form": "fax"}]), 422, "documents", id="doc-form"),
    pytest.param(
        _with(documents=[{"name": FORM_NAME, "form": "copy", "count": 0}]), 422, "documents", id="doc-count"
    ),
    pytest.param(
        _with(documents=[{"name": FORM_NAME, "form": "copy", "x": 1}]), 422, "documents", id="doc-unknown-key"
    ),
    pytest.param(_with(confirm_clock="yes"), 422, "confirm_clock", id="confirm-not-boolean"),
    pytest.param(_with(applicant_name="A" * 500), 422, "applicant_name", id="name-too-long"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
def test_bad_input_is_a_json_error_and_writes_nothing(client, node, body, status, field):
    headers = bearer(client)
    before = own_seq(node)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(
        "/api/v1/dossiers", headers={**headers, "Content-Type": "application/json"}, content=content
    )
    assert_error(response, status, field=field)
    documented(response, "createDossier")
    assert own_seq(node) == before


def test_a_body_over_64_kb_is_refused_with_413(client, node):
    headers = bearer(client)
    before = own_seq(node)
    response = client.post("/api/v1/dossiers", headers=headers, json=_with(address="x" * (70 * 1024)))
    assert_error(response, 413, "too_large")
    chunked = client.post(
        "/api/v1/dossiers", headers=headers, content=iter([b'{"address": "', b"x" * (70 * 1024), b'"}'])
    )
    assert_error(chunked, 413, "too_large")
    assert own_seq(node) == before


# --- lists and search -----------------------------------------------------------------------------


def test_list_pages_and_filters(client, node):
    for name in ("Nguyễn Văn An", "Trần Thị Bích", "Đặng Văn Cường"):
        receive_sample(node, applicant_name=name)
    headers = bearer(client)
    everything = client.get("/api/v1/dossiers", headers=headers)
    documented(everything, "listDossiers")
    assert everything.json()["total"] == 3
    first = client.get("/api/v1/dossiers?page=1&page_size=2", headers=headers).json()
    second = client.get("/api/v1/dossiers?page=2&page_size=2", headers=headers).json()
    assert (len(first["items"]), len(second["items"]), first["total"]) == (2, 1, 3)
    assert (first["more"], second["more"]) == (True, False)
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in second["items"])
    beyond = client.get("/api/v1/dossiers?page=9&page_size=2", headers=headers).json()
    assert (beyond["items"], beyond["page"], beyond["total"], beyond["more"]) == ([], 9, 3, False)
    found = client.get("/api/v1/dossiers", headers=headers, params={"q": "dang van cuong"}).json()
    assert [i["applicant_name"] for i in found["items"]] == ["Đặng Văn Cường"]
    assert client.get("/api/v1/dossiers?status=2", headers=headers).json()["total"] == 0
    assert client.get("/api/v1/dossiers?status=1", headers=headers).json()["total"] == 3
    assert (
        client.get(f"/api/v1/dossiers?procedure={HOUSEHOLD_BUSINESS}", headers=headers).json()["total"] == 3
    )
    assert client.get("/api/v1/dossiers?procedure=1.004194", headers=headers).json()["total"] == 0
    assert client.get("/api/v1/dossiers?due=overdue", headers=headers).json()["total"] == 0
    assert client.get("/api/v1/dossiers?status=&q=", headers=headers).json()["total"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=99999999999999999999", "page"),
        ("page=%C2%B2", "page"),
        ("page_size=0", "page_size"),
        ("page_size=1000", "page_size"),
        ("status=11", "status"),
        ("status=open", "status"),
        ("due=tomorrow", "due"),
        ("sort=code", "sort"),
        ("page=1&page=2", "page"),
        ("q=" + "a" * 201, "q"),
        ("conflicts=2", "conflicts"),
        ("conflicts=yes", "conflicts"),
    ],
)
def test_bad_list_parameters_are_422(client, query, field):
    response = client.get(f"/api/v1/dossiers?{query}", headers=bearer(client))
    assert_error(response, 422, "invalid", field)
    documented(response, "listDossiers")


# --- one dossier and its actions ------------------------------------------------------------------


def test_an_absent_dossier_is_404(client):
    headers = bearer(client)
    response = client.get("/api/v1/dossiers/0123456789abcdef", headers=headers)
    assert_error(response, 404, "not_found")
    documented(response, "getDossier")


def test_an_action_moves_the_dossier_and_writes_its_op(client, node):
    dossier = receive_sample(node)
    headers = bearer(client)
    before = own_seq(node)
    response = client.post(
        f"/api/v1/dossiers/{dossier.id}/actions", headers=headers, json={"action": "accept"}
    )
    assert response.status_code == 200, response.text
    documented(response, "actOnDossier")
    body = response.json()
    assert body["status"] == 2
    assert [s["action"] for s in body["steps"]] == ["create", "transition"]
    assert "accept" not in {a["name"] for a in body["actions"]}
    assert own_seq(node) == before + 1
    ops = node.replica.ops_of("dossier", dossier.id)
    assert [op.action for op in ops] == ["create", "transition"]
    assert ops[-1].payload["by"] == "canbo01"


def test_a_dossier_goes_all_the_way_through_the_api(client, node):
    dossier = receive_sample(node)
    clerk, leader = bearer(client, "canbo01"), bearer(client, "lanhdao01")
    url = f"/api/v1/dossiers/{dossier.id}/actions"
    for who, action in [(clerk, "accept"), (clerk, "start"), (leader, "processed"), (clerk, "return_result")]:
        response = client.post(url, headers=who, json={"action": action})
        assert response.status_code == 200, (action, response.text)
    assert response.json()["status"] == 10
    assert len(node.replica.ops_of("dossier", dossier.id)) == 5


def test_a_clerk_may_not_take_a_leaders_action(client, node):
    dossier = receive_sample(node)
    clerk = bearer(client, "canbo01")
    url = f"/api/v1/dossiers/{dossier.id}/actions"
    client.post(url, headers=clerk, json={"action": "accept"})
    client.post(url, headers=clerk, json={"action": "start"})
    before = own_seq(node)
    for action, extra in [("processed", {}), ("stop", {"note": "Công dân không bổ sung"})]:
        response = client.post(url, headers=clerk, json={"action": action, **extra})
        assert_error(response, 403, "forbidden")
        documented(response, "actOnDossier")
    extend = client.post(
        url, headers=clerk, json={"action": "extend", "note": "Xin lỗi", "due_date": "2099-01-05"}
    )
    assert_error(extend, 403, "forbidden")
    assert own_seq(node) == before
    dossier_now = client.get(f"/api/v1/dossiers/{dossier.id}", headers=clerk).json()
    assert dossier_now["status"] == 4
    assert "processed" not in {a["name"] for a in dossier_now["actions"]}
    leader = bearer(client, "lanhdao01")
    assert "processed" in {
        a["name"] for a in client.get(f"/api/v1/dossiers/{dossier.id}", headers=leader).json()["actions"]
    }


def test_a_leader_extends_with_an_apology(client, node):
    dossier = receive_sample(node)
    leader = bearer(client, "lanhdao01")
    url = f"/api/v1/dossiers/{dossier.id}/actions"
    response = client.post(
        url, headers=leader, json={"action": "extend", "note": "Xin lỗi", "due_date": "2099-01-05"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["due_date"] == "2099-01-05"
    assert node.replica.ops_of("dossier", dossier.id)[-1].action == "extend"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"action": "teleport"}, 422, "action"),
        ({"action": "refuse"}, 422, "note"),
        ({"action": "refuse", "note": "   "}, 422, "note"),
        ({"action": "transfer", "handling_unit": "99999"}, 422, "handling_unit"),
        ({"action": "accept", "note": 5}, 422, "note"),
        ({"action": "accept", "by": "lanhdao01"}, 422, "by"),
        ({"note": "x"}, 422, "action"),
        ({"action": "extend", "note": "Xin lỗi", "due_date": "2000-01-01"}, 422, "due_date"),
        ({"action": "extend", "note": "Xin lỗi", "due_date": "soon"}, 422, "due_date"),
        ({"action": "extend", "note": "Xin lỗi"}, 422, "due_date"),
        ({"action": "return_result"}, 403, None),
    ],
)
def test_bad_actions_are_refused_and_write_nothing(client, node, body, status, field):
    dossier = receive_sample(node)
    headers = bearer(client, "lanhdao01")
    before = own_seq(node)
    response = client.post(f"/api/v1/dossiers/{dossier.id}/actions", headers=headers, json=body)
    assert_error(response, status, field=field)
    documented(response, "actOnDossier")
    assert own_seq(node) == before


def test_a_malformed_action_body_is_400(client, node):
    dossier = receive_sample(node)
    response = client.post(f"/api/v1/dossiers/{dossier.id}/actions", headers=bearer(client), content=b"{'a'")
    assert_error(response, 400, "bad_request")


# --- units see only their own dossiers ------------------------------------------------------------


def test_another_units_clerk_cannot_reach_the_dossier(client, node):
    dossier = receive_sample(node, applicant_name="Võ Thị Sáu")
    other = bearer(client, "canbo_caikhe")
    before = own_seq(node)
    assert_error(client.get(f"/api/v1/dossiers/{dossier.id}", headers=other), 404, "not_found")
    action = client.post(f"/api/v1/dossiers/{dossier.id}/actions", headers=other, json={"action": "accept"})
    assert_error(action, 404, "not_found")
    upload = client.post(
        f"/api/v1/dossiers/{dossier.id}/attachments",
        headers=other,
        files={"scans": ("a.pdf", small_pdf(), "application/pdf")},
    )
    assert_error(upload, 404, "not_found")
    assert own_seq(node) == before
    assert client.get("/api/v1/dossiers", headers=other).json()["total"] == 0
    for q in ("vo thi sau", dossier.code, "092085001234"):
        assert client.get("/api/v1/dossiers", headers=other, params={"q": q}).json()["items"] == []
    # ... while its own unit, and the city's admin, do see it
    assert (
        client.get("/api/v1/dossiers", headers=bearer(client), params={"q": "vo thi sau"}).json()["total"]
        == 1
    )
    assert client.get(f"/api/v1/dossiers/{dossier.id}", headers=bearer(client, "quantri")).status_code == 200


def test_a_dossier_transferred_to_another_unit_is_visible_there(client, node):
    dossier = receive_sample(node)
    response = client.post(
        f"/api/v1/dossiers/{dossier.id}/actions",
        headers=bearer(client),
        json={"action": "transfer", "handling_unit": OTHER_UNIT},
    )
    assert response.status_code == 200, response.text
    assert response.json()["handling_unit"] == OTHER_UNIT
    assert node.replica.ops_of("dossier", dossier.id)[-1].action == "transfer"
    other = client.get(f"/api/v1/dossiers/{dossier.id}", headers=bearer(client, "canbo_caikhe"))
    assert other.status_code == 200
    assert other.json()["receiving_unit"] == UNIT


# --- attachments ----------------------------------------------------------------------------------


def test_a_real_pdf_and_a_png_are_attached(client, node):
    dossier = receive_sample(node)
    headers = bearer(client)
    before = own_seq(node)
    pdf = small_pdf()
    response = client.post(
        f"/api/v1/dossiers/{dossier.id}/attachments",
        headers=headers,
        files=[
            ("scans", ("../../etc/Đơn đề nghị.pdf", pdf, "application/pdf")),
            ("scans", ("ảnh.png", PNG, "image/png")),
        ],
    )
    assert response.status_code == 201, response.text
    documented(response, "addAttachments")
    added = response.json()["attachments"]
    assert added[0] == {
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "name": "Đơn đề nghị.pdf",
        "mime": "application/pdf",
        "size": len(pdf),
    }
    assert added[1]["mime"] == "image/png"
    assert node.blobs.get(added[0]["sha256"]) == pdf
    assert own_seq(node) > before
    assert [op.action for op in node.replica.ops_of("dossier", dossier.id)].count("attach") == 2
    shown = client.get(f"/api/v1/dossiers/{dossier.id}", headers=headers).json()
    assert {a["sha256"] for a in shown["attachments"]} == {a["sha256"] for a in added}
    assert shown["digitised"] is True


@pytest.mark.parametrize(
    ("files", "status", "field"),
    [
        pytest.param({"scans": ("scan.pdf", FAKE_PDF, "application/pdf")}, 422, "scans", id="fake-pdf"),
        pytest.param({"scans": ("empty.pdf", b"", "application/pdf")}, 422, "scans", id="empty-file"),
        pytest.param({"other": ("a.pdf", b"%PDF-1.4", "application/pdf")}, 422, "other", id="wrong-field"),
    ],
)
def test_bad_scans_are_refused_and_write_nothing(client, node, files, status, field):
    dossier = receive_sample(node)
    before = own_seq(node)
    response = client.post(f"/api/v1/dossiers/{dossier.id}/attachments", headers=bearer(client), files=files)
    assert_error(response, status, field=field)
    documented(response, "addAttachments")
    assert own_seq(node) == before
    assert node.replica.ops_of("dossier", dossier.id)[-1].action == "create"


def test_an_upload_without_files_is_refused(client, node):
    dossier = receive_sample(node)
    headers = bearer(client)
    url = f"/api/v1/dossiers/{dossier.id}/attachments"
    assert_error(client.post(url, headers=headers, data={"scans": "not a file"}), 422, field="scans")
    assert_error(client.post(url, headers=headers, json={"scans": []}), 422, field="scans")
    broken = client.post(
        url,
        headers={**headers, "Content-Type": "multipart/form-data; boundary=xyz"},
        content=b"--xyz\r\ngarbage",
    )
    assert broken.status_code in (400, 422)
    assert_error(broken, broken.status_code)


def test_a_scan_over_the_size_limit_is_413(node, tmp_path):
    app = create_app(load(node.data_dir, max_upload_mb=1), node)
    dossier = receive_sample(node)
    with TestClient(app) as client:
        headers = bearer(client)
        before = own_seq(node)
        big = b"%PDF-1.4\n" + b"0" * (1024 * 1024)
        response = client.post(
            f"/api/v1/dossiers/{dossier.id}/attachments",
            headers=headers,
            files={"scans": ("big.pdf", big, "application/pdf")},
        )
        assert_error(response, 413, "too_large", "scans")
        documented(response, "addAttachments")
        whole = client.post(
            f"/api/v1/dossiers/{dossier.id}/attachments",
            headers=headers,
            files=[("scans", (f"{i}.pdf", big, "application/pdf")) for i in range(api.MAX_FILES + 1)],
        )
        assert_error(whole, 413, "too_large")
        assert own_seq(node) == before


# --- catalogue and sync status --------------------------------------------------------------------


@pytest.mark.parametrize("q", ["ho kinh doanh", "hộ kinh doanh", "HO KINH DOANH", "2.000720"])
def test_procedures_are_found_without_accents(client, q):
    response = client.get("/api/v1/procedures", headers=bearer(client), params={"q": q})
    assert response.status_code == 200
    documented(response, "listProcedures")
    assert [p["code"] for p in response.json()["items"]] == [HOUSEHOLD_BUSINESS]


def test_the_whole_catalogue_without_a_query(client):
    response = client.get("/api/v1/procedures", headers=bearer(client))
    items = response.json()["items"]
    assert len(items) == 4
    assert all(isinstance(p["documents"], list) and p["documents"] for p in items)
    assert_error(client.get("/api/v1/procedures?sector=x", headers=bearer(client)), 422, field="sector")


def test_sync_status_shows_the_badge_the_node_and_its_vector(client, node):
    headers = bearer(client)
    response = client.get("/api/v1/sync/status", headers=headers)
    assert response.status_code == 200
    documented(response, "getSyncStatus")
    status = response.json()
    assert status["node"] == node.identity.node
    assert status["unit"] == UNIT
    assert status["connected"] is False
    assert status["online"] is None
    assert status["vector"][node.identity.node] == own_seq(node)
    assert status["vector_size"] == 1
    assert status["waiting"] == own_seq(node)  # a standalone node: the city has none of them
    client.post("/api/v1/dossiers", headers=headers, json=VALID)
    assert client.get("/api/v1/sync/status", headers=headers).json()["waiting"] == status["waiting"] + 1


def test_a_wrong_method_is_a_json_405(client):
    assert_error(client.put("/api/v1/dossiers", headers=bearer(client)), 405)


# --- the OpenAPI document -------------------------------------------------------------------------


def _api_operations() -> set[tuple[str, str]]:
    found = set()
    for route in api.routes():
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((route.path, method.lower()))
    return found


def test_openapi_is_served_and_describes_every_route_and_nothing_else(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served == json.loads(msgspec.json.encode(openapi.SPEC))
    described = {(path, method) for path, item in served["paths"].items() for method in item}
    assert described == _api_operations()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_openapi_document_is_well_formed():
    try:
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:
        validate = None
    spec = json.loads(openapi.DOCUMENT)
    if validate is not None:
        validate(spec)
    assert spec["openapi"].startswith("3.1.")
    assert spec["info"]["title"]
    assert spec["info"]["version"]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    for requirement in spec["security"]:
        assert set(requirement) <= set(schemes)
    for ref in _refs(spec):
        assert ref.startswith("#/"), ref
        _resolve({"$ref": ref})  # resolves, or KeyError
    operation_ids = []
    for path, item in spec["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in {"get", "post", "put", "patch", "delete"}
            operation_ids.append(operation["operationId"])
            assert operation["summary"]
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), path
            assert all(re.fullmatch(r"[1-5]\d\d", s) for s in statuses)
            if path.startswith("/api/") and "security" not in operation:
                assert "401" in statuses, (path, method)
            template = set(re.findall(r"{(\w+)}", path))
            declared = {
                _resolve(p)["name"] for p in operation.get("parameters", []) if _resolve(p)["in"] == "path"
            }
            assert template == declared, (path, method)
            for parameter in map(_resolve, operation.get("parameters", [])):
                assert parameter["in"] in {"path", "query", "header", "cookie"}
                assert "schema" in parameter
                if parameter["in"] == "path":
                    assert parameter["required"] is True
            for status, response in operation["responses"].items():
                response = _resolve(response)
                assert response["description"]
                if status[0] in "45":
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"
                    }
    assert len(operation_ids) == len(set(operation_ids))
    for name, schema in spec["components"]["schemas"].items():
        for prop, required in [(r, True) for r in schema.get("required", [])]:
            assert prop in schema.get("properties", {}), (name, prop, required)


def test_openapi_request_schemas_list_exactly_the_fields_the_api_decodes():
    for name, struct in api.BODIES.items():
        schema = openapi.SCHEMAS[name]
        fields = msgspec.structs.fields(struct)
        assert set(schema["properties"]) == {f.name for f in fields}, name
        assert set(schema["required"]) == {f.name for f in fields if f.required}, name
        assert schema["additionalProperties"] is False
    assert _refs(openapi.SCHEMAS["DossierCreate"]) == ["#/components/schemas/Document"]


# --- random input never breaks the API ------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
plausible = {
    "procedure": st.sampled_from([HOUSEHOLD_BUSINESS, "1.004194", "9.999999", ""]),
    "applicant_type": st.sampled_from(["citizen", "organisation", "household"]),
    "citizen_id": st.sampled_from(["092085001234", "001099012345", "123", ""]) | st.text(max_size=14),
    "dob": st.dates().map(str) | st.sampled_from(["1985-03-14", "1985-13-01", ""]),
    "handling_unit": st.sampled_from([UNIT, OTHER_UNIT, "00000", ""]),
    "address_unit": st.sampled_from([UNIT, OTHER_UNIT, "00000", ""]),
    "documents": st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from([FORM_NAME, "x"]), "form": st.sampled_from(["original", "copy", "fax"])},
            optional={"count": st.integers(-2, 120)},
        ),
        max_size=2,
    ),
    "fee": st.integers(-5, 10**13) | st.none(),
    "channel": st.sampled_from(["direct", "online", "post"]),
    "confirm_clock": st.booleans(),
}
field_names = st.sampled_from([*VALID, "unknown", "by", "status"])


@st.composite
def dossier_bodies(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40))
    body: dict[str, Any] = dict(VALID) if draw(st.booleans()) else {}
    for name in draw(st.lists(field_names, max_size=5)):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            body.pop(name, None)
        elif choice == 1 and name in plausible:
            body[name] = draw(plausible[name])
        else:
            body[name] = draw(json_values)
    return json.dumps(body).encode()


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(content=dossier_bodies())
def test_random_dossier_bodies_never_break_the_api(client, node, content):
    headers = {"Authorization": f"Bearer {client.app.state.motcua.tokens.issue('canbo01')}"}
    before = own_seq(node)
    response = client.post("/api/v1/dossiers", headers=headers, content=content)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.text
    documented(response, "createDossier")
    if response.status_code == 201:
        assert own_seq(node) == before + 1
        assert node.replica.ops_of("dossier", response.json()["id"])[0].action == "create"
    else:
        assert 400 <= response.status_code < 500
        assert own_seq(node) == before


query_names = st.sampled_from(["status", "q", "procedure", "due", "page", "page_size", "sort", ""])
query_values = (
    st.text(max_size=12)
    | st.integers(-(10**12), 10**12).map(str)
    | st.sampled_from(["overdue", "soon", "1", "10", "0", HOUSEHOLD_BUSINESS, "nguyen", '"AND', "*"])
)
raw_queries = st.text(alphabet=string.ascii_letters + string.digits + "=&%-_.~+,;:!*'()", max_size=40)


@FUZZ
@given(params=st.lists(st.tuples(query_names, query_values), max_size=4), raw=raw_queries)
def test_random_list_queries_never_break_the_api(client, node, params, raw):
    headers = {"Authorization": f"Bearer {client.app.state.motcua.tokens.issue('canbo01')}"}
    before = own_seq(node)
    for response in (
        client.get("/api/v1/dossiers", headers=headers, params=params),
        client.get(f"/api/v1/dossiers?{raw}", headers=headers),
    ):
        event(f"status {response.status_code}")
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            body = response.json()
            assert body["page"] >= 1
            assert 1 <= body["page_size"] <= api.MAX_PAGE_SIZE
        else:
            assert_error(response, response.status_code)
        documented(response, "listDossiers")
    assert own_seq(node) == before


# --- retries: the Idempotency-Key ------------------------------------------------------------------


def test_a_receipt_sent_again_with_its_idempotency_key_gets_the_same_dossier(client, node):
    headers = {**bearer(client), "Idempotency-Key": "may-tinh-1:0001"}
    first = client.post("/api/v1/dossiers", json=VALID, headers=headers)
    assert first.status_code == 201
    ops = node.replica.op_count()
    again = client.post("/api/v1/dossiers", json=VALID, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["code"] == first.json()["code"]
    assert node.replica.op_count() == ops  # nothing written the second time
    other = client.post(
        "/api/v1/dossiers", json=VALID, headers={**headers, "Idempotency-Key": "may-tinh-1:0002"}
    )
    assert other.json()["id"] != first.json()["id"]


def test_the_same_key_from_another_account_is_another_request(client):
    key = {"Idempotency-Key": "shared-key-123"}
    mine = client.post("/api/v1/dossiers", json=VALID, headers={**bearer(client, "canbo01"), **key})
    theirs = client.post("/api/v1/dossiers", json=VALID, headers={**bearer(client, "lanhdao01"), **key})
    assert theirs.json()["id"] != mine.json()["id"]


def test_a_malformed_idempotency_key_is_refused_with_its_field(client, node):
    ops = node.replica.op_count()
    answer = client.post("/api/v1/dossiers", json=VALID, headers={**bearer(client), "Idempotency-Key": "x"})
    assert_error(answer, 422, field="request_key")
    assert node.replica.op_count() == ops


# --- where writes run -------------------------------------------------------------------------------


def test_api_writes_run_off_the_event_loop_as_the_pages_do(client, node, monkeypatch):
    """A write's fsync (seconds on an old disk) must not stall every clerk's page: the API's
    writes run in a worker thread, like the pages', never on the event loop."""
    where: list[str] = []
    write = node.replica.write

    @contextmanager
    def watched():
        try:
            asyncio.get_running_loop()
            where.append("event loop")
        except RuntimeError:
            where.append("thread")
        with write() as w:
            yield w

    monkeypatch.setattr(node.replica, "write", watched)
    headers = bearer(client)
    created = client.post("/api/v1/dossiers", headers=headers, json=VALID)
    assert created.status_code == 201, created.text
    dossier_id = created.json()["id"]
    acted = client.post(f"/api/v1/dossiers/{dossier_id}/actions", headers=headers, json={"action": "accept"})
    assert acted.status_code == 200, acted.text
    attached = client.post(
        f"/api/v1/dossiers/{dossier_id}/attachments",
        headers=headers,
        files=[("scans", ("a.pdf", small_pdf(), "application/pdf"))],
    )
    assert attached.status_code == 201, attached.text
    assert where == ["thread"] * 3  # receive, act, attach


# --- conflicts kept by sync -------------------------------------------------------------------------


def test_a_dossiers_conflicts_are_in_its_json_with_the_pages_reason(client, node, tmp_path):
    """Two boxes act on one dossier while apart: the later action is kept as a conflict, and an
    API client sees what it was, who did it, the note the citizen was told and why it lost."""
    clock = Clock(wall=lambda: system_wall_ms() + 60_000)  # the other box acts later in HLC order
    other = Replica(
        tmp_path / "caikhe.db", Identity.generate(OTHER_UNIT), KINDS, clock=clock, migrate=migrate
    )
    try:
        other.trust(node.identity.node, node.identity.public_raw)
        node.replica.trust(other.identity.node, other.identity.public_raw)
        disputed = receive_sample(node, applicant_name="Võ Thị Sáu", handling_unit=OTHER_UNIT).id
        settled = receive_sample(node, applicant_name="Trần Văn Bình").id
        for batch in node.replica.batches(other.vector()):
            other.merge(batch)
        headers = bearer(client)
        accepted = client.post(
            f"/api/v1/dossiers/{disputed}/actions", headers=headers, json={"action": "accept"}
        )
        assert accepted.status_code == 200
        with other.write() as w:
            w.append(
                "dossier",
                disputed,
                "transition",
                {"to": 2, "by": "canbo_caikhe", "role": "clerk", "note": "Hẹn trả ngày 20"},
            )
        for batch in other.batches(node.replica.vector()):
            node.replica.merge(batch)
        lost = node.replica.ops_of("dossier", disputed)[-1]
        assert lost.node == other.identity.node
    finally:
        other.close()

    response = client.get(f"/api/v1/dossiers/{disputed}", headers=headers)
    documented(response, "getDossier")
    body = response.json()
    assert body["conflict_count"] == 1
    assert body["conflicts"] == [
        {
            "node": lost.node,
            "seq": lost.seq,
            "action": "transition",
            "actor": "canbo_caikhe",
            "role": "clerk",
            "at": lost.hlc.wall,
            "note": "Hẹn trả ngày 20",
            "reason": "hồ sơ đã ở trạng thái 2 (Được tiếp nhận)",
            "to_status": 2,
            "handling_unit": None,
            "due_date": None,
        }
    ]
    client.cookies.set("lang", "en")
    english = client.get(f"/api/v1/dossiers/{disputed}", headers=headers).json()
    assert english["conflicts"][0]["reason"] == "the dossier is already in status 2 (accepted)"
    assert client.get(f"/api/v1/dossiers/{settled}", headers=headers).json()["conflicts"] == []

    only = client.get("/api/v1/dossiers?conflicts=1", headers=headers)
    documented(only, "listDossiers")
    assert [item["id"] for item in only.json()["items"]] == [disputed]
    everything = client.get("/api/v1/dossiers?conflicts=0", headers=headers).json()
    assert {item["id"] for item in everything["items"]} == {disputed, settled}


# The body decodes straight into schema.dossier's Draft: a bad one is refused in the very words
# (and field) of the hand-copied Struct the API decoded before.
SAME_ERRORS = [
    (_with(channel="fax"), "Invalid enum value 'fax' - at `$.channel`", "channel"),
    (_with(applicant_type=3), "Expected `str`, got `int` - at `$.applicant_type`", "applicant_type"),
    (
        _with(documents=[{"name": FORM_NAME, "form": "fax"}]),
        "Invalid enum value 'fax' - at `$.documents[0].form`",
        "documents",
    ),
    (_with(procedure=...), "Object missing required field `procedure`", "procedure"),
    (_with(fee=-1), "Expected `int` >= 0 - at `$.fee`", "fee"),
    (_with(phone="0" * 201), "Expected `str` of length <= 200 - at `$.phone`", "phone"),
]


@pytest.mark.parametrize(("body", "reason", "field"), SAME_ERRORS)
def test_a_bad_dossier_body_is_refused_as_before(client, body, reason, field):
    response = client.post("/api/v1/dossiers", headers=bearer(client), json=body)
    assert response.status_code == 422
    assert response.json() == {
        "error": {"code": "invalid", "message": f"Nội dung yêu cầu không hợp lệ: {reason}.", "field": field}
    }
