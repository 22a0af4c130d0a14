"""Prometheus metrics at /metrics: per-node series with the fleet's values, sync latencies."""

from __future__ import annotations

import httpx
import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, sync_round
from edgekit import csrf_of, receive_sample
from prometheus_client.parser import text_string_to_metric_families

from central.app import create_central_app
from central.metrics import TOKEN_FILE, endpoint_of
from central.registry import revoke_node
from edge.accounts import add_account
from edge.settings import load
from sync import wire
from sync.errors import RevokedNode


def token_of(world) -> str:
    return (world.city.node.data_dir / TOKEN_FILE).read_text(encoding="ascii").strip()


def scrape(world) -> dict[str, list]:
    headers = {"Authorization": f"Bearer {token_of(world)}"}  # as Prometheus' credentials_file
    response = httpx.get(world.url + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family.samples for family in text_string_to_metric_families(response.text)}
    families["_text"] = [response.text]
    return families


def value(families, name: str, sample: str | None = None, **labels: str) -> float:
    found = [
        s.value
        for s in families[name]
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return float(found[0])


def test_metrics_carry_each_nodes_status(world):
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit), backup_age_s=None)
    edge = world.edges[NINH_KIEU]
    receive_sample(edge)
    world.peer(NINH_KIEU).hello(
        wire.Hello(
            software="motcua 0.3.0",
            head=edge.replica.vector()[edge.identity.node],
            cursor=0,
            wall_ms=edge.clock.wall_ms() - 120_000,
            backup_age_s=900,
            last_error="Nguyễn Văn An's scan failed",
        )
    )
    gone = world.edges[CAI_KHE].identity.node
    revoke_node(world.city, gone)
    with pytest.raises(RevokedNode):
        sync_round(world.edges[CAI_KHE], world.peer(CAI_KHE))

    families = scrape(world)
    me = edge.identity.node
    status = world.city.fleet.status(me)
    assert value(families, "motcua_node_last_contact_timestamp_seconds", node=me) == pytest.approx(
        status.last_contact_ms / 1000
    )
    assert value(families, "motcua_node_last_sync_success_timestamp_seconds", node=me) == pytest.approx(
        status.last_ok_ms / 1000
    )
    assert value(families, "motcua_node_lag_ops", node=me, side="edge") == 1
    assert value(families, "motcua_node_lag_ops", node=me, side="central") == status.central_waiting > 100
    assert 119 <= value(families, "motcua_node_clock_drift_seconds", node=me) <= 150
    assert value(families, "motcua_node_backup_age_seconds", node=me) == 900
    assert value(families, "motcua_node_revoked", node=me, unit=NINH_KIEU) == 0
    assert value(families, "motcua_node_info", node=me, software="motcua 0.3.0") == 1
    assert value(families, "motcua_node_errors", "motcua_node_errors_total", node=me) == 0
    assert value(families, "motcua_node_silent", node=me) == 0

    assert value(families, "motcua_node_revoked", node=gone, unit=CAI_KHE) == 1
    assert value(families, "motcua_node_errors", "motcua_node_errors_total", node=gone) == 1
    assert not [s for s in families["motcua_node_backup_age_seconds"] if s.labels["node"] == gone]

    # Latency of the sync endpoints, by endpoint name (never by blob digest or offset).
    latency = "motcua_sync_request_seconds"
    assert value(families, latency, latency + "_count", endpoint="hello") >= 3
    assert value(families, latency, latency + "_count", endpoint="pull") >= 1
    names = {"time", "hello", "push", "pull", "digest", "blob_size", "blob_put", "blob_get", "other"}
    assert {s.labels["endpoint"] for s in families[latency]} <= names

    # Nothing personal: the node's own error text and the applicant's name stay out.
    assert "Nguyễn" not in families["_text"][0]
    assert "scan failed" not in families["_text"][0]


def test_a_node_that_never_synced_is_silent_without_made_up_times(world):
    families = scrape(world)
    me = world.edges[NINH_KIEU].identity.node
    assert value(families, "motcua_node_silent", node=me) == 1
    assert not [s for s in families["motcua_node_last_contact_timestamp_seconds"] if s.labels["node"] == me]
    assert not [s for s in families["motcua_node_lag_ops"] if s.labels["node"] == me]


def test_metrics_need_the_scrape_token_or_an_admin(world):
    """Not for anyone who reaches the port: the fleet pages need the admin, and so does this."""
    url = world.url + "/metrics"
    assert httpx.get(url, timeout=30).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer " + "x" * 43}, timeout=30)
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert "motcua_node" not in wrong.text
    token = token_of(world)
    assert len(token) >= 40
    assert (world.city.node.data_dir / TOKEN_FILE).stat().st_mode & 0o077 == 0
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200

    add_account(world.city.node, "canbo_nk", "Nguyễn Thị Lan", "clerk", PASSWORD, NINH_KIEU)
    for username, expected in (("canbo_nk", 401), ("quantri", 200)):
        with httpx.Client(base_url=world.url, timeout=30) as client:
            page = client.get("/login")
            form = {"username": username, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"}
            client.post("/login", data=form)
            assert client.get("/metrics").status_code == expected, username


def test_two_apps_in_one_process_do_not_collide(world):
    first = create_central_app(load(world.city.node.data_dir), world.hub)
    second = create_central_app(load(world.city.node.data_dir), world.hub)  # no duplicate series
    assert first.state.metrics.registry is not second.state.metrics.registry


def test_endpoint_names_are_a_fixed_set():
    assert endpoint_of("/sync/v1/hello") == "hello"
    assert endpoint_of("/sync/v1/blobs/" + "a" * 64 + "/chunks/262144") == "blob_put"
    assert endpoint_of("/sync/v1/blobs/abc/read/0/1024") == "blob_get"
    assert endpoint_of("/sync/v1/blobs/abc/size") == "blob_size"
    assert endpoint_of("/sync/v1/whatever/../x") == "other"
    assert endpoint_of("/fleet") is None
