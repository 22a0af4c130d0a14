"""The city's own pages under attack: a clerk account at the city reaching for city IT's fleet
dashboard, and a box revoked from a forged form. Refused, audited in the city's audit log,
nothing revoked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from centralkit import CAI_KHE, NINH_KIEU
from edgekit import PASSWORD, csrf_of, login
from starlette.testclient import TestClient

from central.app import create_central_app
from central.city import City, init_central
from central.hub import Hub
from central.registry import add_node
from edge.accounts import add_account
from edge.settings import load


@pytest.fixture
def city(tmp_path: Path) -> Iterator[tuple[City, str]]:
    made, _ = init_central(tmp_path / "city", "92", PASSWORD)
    add_account(made.node, "canbo01", "Nguyễn Thị Lan", "clerk", PASSWORD, NINH_KIEU)
    node = add_node(made, CAI_KHE, "http://127.0.0.1:1").identity.node
    yield made, node
    made.close()


@pytest.fixture
def client(city) -> Iterator[TestClient]:
    made, _ = city
    app = create_central_app(load(made.node.data_dir), Hub(made))
    with TestClient(app, follow_redirects=False) as c:
        yield c


def test_a_clerk_at_the_city_is_refused_the_fleet_and_audited(client, city):
    made, node = city
    login(client, "canbo01")
    for path in ("/fleet", "/fleet/table", "/fleet/routing", "/fleet/indicators", f"/fleet/nodes/{node}"):
        response = client.get(path)
        assert response.status_code == 403, path
        [entry] = made.node.audit.entries(event="forbidden", limit=1)
        assert (entry.actor, entry.path) == ("canbo01", path)


def test_revoking_a_box_needs_an_admin_and_the_forms_token(client, city):
    made, node = city
    token = login(client, "canbo01")
    as_clerk = client.post(f"/fleet/nodes/{node}/revoke", data={"csrf": token, "confirm": node})
    assert as_clerk.status_code == 403
    assert made.node.audit.entries(event="forbidden")[0].path == f"/fleet/nodes/{node}/revoke"
    client.post("/logout", data={"csrf": token})

    login(client, "quantri")
    forged = client.post(f"/fleet/nodes/{node}/revoke", data={"confirm": node})
    assert forged.status_code == 403
    [entry] = made.node.audit.entries(event="csrf")
    assert (entry.actor, entry.path) == ("quantri", f"/fleet/nodes/{node}/revoke")
    assert not made.fleet.registration(node).revoked

    # The real form still works: the refusals above were the token and the role, nothing else.
    page = client.get(f"/fleet/nodes/{node}")
    done = client.post(f"/fleet/nodes/{node}/revoke", data={"csrf": csrf_of(page.text), "confirm": node})
    assert done.status_code == 303
    assert made.fleet.registration(node).revoked
