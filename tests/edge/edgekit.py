"""Helpers for the edge tests (importable: tests/edge is on pytest's pythonpath).

Accounts (password PASSWORD): canbo01 (clerk, Phường Ninh Kiều 31135), lanhdao01 (leader, 31135),
quantri (admin), canbo_caikhe (clerk of another unit, Phường Cái Khế 31120).
"""

from __future__ import annotations

import re
from datetime import date

from starlette.testclient import TestClient

from edge.auth import Actor
from edge.clockcheck import ClockStatus
from edge.dossiers import Received, receive
from edge.node import Node
from schema.dossier import Draft

PASSWORD = "Matkhau123"
UNIT = "31135"
OTHER_UNIT = "31120"
HOUSEHOLD_BUSINESS = "2.000720"
ACCOUNTS = {
    "canbo01": ("Nguyễn Thị Lan", "clerk", UNIT),
    "lanhdao01": ("Trần Văn Hùng", "leader", UNIT),
    "quantri": ("Lê Minh Quân", "admin", UNIT),
    "canbo_caikhe": ("Phạm Thu Hà", "clerk", OTHER_UNIT),
}
CLOCK_OK = ClockStatus(False, 0, None)


def actor(username: str) -> Actor:
    name, role, unit = ACCOUNTS[username]
    return Actor(username, name, unit, role)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


def login(client: TestClient, username: str = "canbo01") -> str:
    """Log in through the real form; returns the session's CSRF token."""
    page = client.get("/login")
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"}
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


def sample_input(**overrides: object) -> Draft:
    values: dict[str, object] = dict(
        procedure=HOUSEHOLD_BUSINESS,
        applicant_name="Nguyễn Văn An",
        citizen_id="092085001234",
        dob=date(1985, 3, 14),
        phone="0912345678",
        address="12 Mậu Thân",
        address_unit=UNIT,
    )
    values.update(overrides)
    return Draft(**values)  # type: ignore[arg-type]


def receive_sample(node: Node, username: str = "canbo01", **overrides: object) -> Received:
    """A dossier received through the real service layer (ops and all)."""
    return receive(node, actor(username), sample_input(**overrides), [], CLOCK_OK)
