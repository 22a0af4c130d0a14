"""The city's commands: central init/serve, node add/revoke, edge init --node."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import httpx
import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, free_port, serving, sync_round
from edgekit import receive_sample

from central.app import create_central_app
from central.city import open_central
from central.hub import Hub
from edge.node import init_from_node_file
from edge.settings import load
from ops.cli import main
from sync.errors import RevokedNode
from sync.identity import Identity
from sync.transport import HttpPeer


@pytest.fixture
def city_dir(tmp_path, capsys):
    password = tmp_path / "pw"
    password.write_text(PASSWORD + "\n", encoding="utf-8")
    assert main(["central", "init", "--data", str(tmp_path / "city"), "--province", "92",
                 "--admin-password-file", str(password)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "quantri" in out
    assert PASSWORD not in out
    return tmp_path / "city"


def test_central_init_makes_the_city_and_refuses_to_overwrite_it(city_dir, capsys):
    city = open_central(city_dir)
    try:
        assert city.node.config.role == "central"
        assert city.node.config.unit == "92"
        states = city.node.replica.states("unit")
        assert ("unit", "31135") in states
        assert ("unit", "92-SO-TP") in states
        assert city.node.replica.state("account", "quantri")["role"] == "admin"
        assert (city_dir / "fleet.db").exists()
    finally:
        city.close()
    assert main(["central", "init", "--data", str(city_dir), "--province", "92"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_each_kind_of_node_opens_with_its_own_shape_and_edge_names_no_other(city_dir, tmp_path):
    """Edge opens commune boxes only; the city passes its own shape (a hub) to open its node."""
    from edge.errors import ConfigError
    from edge.node import init_node, open_node

    with pytest.raises(ConfigError, match="'central' node, not one of edge"):
        open_node(city_dir)
    city = open_central(city_dir)
    try:
        assert city.node.shape.feed
        assert not city.node.shape.partial
        assert city.node.authors_reference_data
        assert city.node.replica.feed
        assert not city.node.replica.partial
    finally:
        city.close()
    init_node(tmp_path / "box", "31135").close()
    with pytest.raises(ConfigError, match="'edge' node, not one of central"):
        open_node(tmp_path / "box", shapes={"central": city.node.shape}).close()
    box = open_node(tmp_path / "box")
    try:
        assert box.replica.partial
        assert not box.replica.feed
    finally:
        box.close()


def test_central_init_generates_and_prints_the_admin_password_once(tmp_path, capsys):
    assert main(["central", "init", "--data", str(tmp_path / "c"), "--province", "92"]) == 0
    assert "password of quantri:" in capsys.readouterr().out
    assert main(["central", "init", "--data", str(tmp_path / "d"), "--province", "99"]) == 2


def test_node_add_writes_a_private_node_file_and_edge_init_uses_it(city_dir, tmp_path, capsys):
    out = tmp_path / "ninhkieu.json"
    assert main(["node", "add", "--data", str(city_dir), "--unit", NINH_KIEU,
                 "--central-url", "http://127.0.0.1:8800", "--out", str(out)]) == 0  # fmt: skip
    assert "PRIVATE KEY" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = json.loads(out.read_text())
    assert data["unit"] == NINH_KIEU
    assert data["central_url"] == "http://127.0.0.1:8800"
    assert {"node", "private_key", "central_key", "central_node", "province"} <= set(data)
    assert main(["node", "add", "--data", str(city_dir), "--unit", NINH_KIEU,
                 "--central-url", "http://x", "--out", str(out)]) == 2  # fmt: skip
    assert main(["node", "add", "--data", str(city_dir), "--unit", "01234",
                 "--central-url", "http://x", "--out", str(tmp_path / "n")]) == 2  # fmt: skip
    assert main(["edge", "init", "--data", str(tmp_path / "edge"), "--node", str(out)]) == 0
    assert data["node"] in capsys.readouterr().out
    city = open_central(city_dir)
    try:
        assert city.fleet.registration(data["node"]).unit == NINH_KIEU
        key = Identity.from_private_bytes(NINH_KIEU, bytes.fromhex(data["private_key"])).public_raw
        assert city.node.replica.public_key(data["node"]) == key
        assert data["central_key"] == city.node.identity.public_raw.hex()
    finally:
        city.close()


def test_nodes_added_and_revoked_while_the_city_serves(city_dir, tmp_path):
    """``node add/revoke`` run beside the server (their own handles on the city's files)."""
    city = open_central(city_dir)
    hub = Hub(city)
    edges = []
    try:
        with serving(create_central_app(load(city_dir), hub)) as url:
            out = tmp_path / "caikhe.json"
            assert main(["node", "add", "--data", str(city_dir), "--unit", CAI_KHE,
                         "--central-url", url, "--out", str(out)]) == 0  # fmt: skip
            edge = init_from_node_file(tmp_path / "edge", out)
            edges.append(edge)
            peer = HttpPeer(url, edge.identity, edge.clock)
            try:
                sync_round(edge, peer)
                receive_sample(edge, "canbo_caikhe", address_unit=CAI_KHE)
                assert sync_round(edge, peer).pushed == 1
                assert main(["node", "revoke", "--data", str(city_dir), edge.identity.node]) == 0
                with pytest.raises(RevokedNode):
                    sync_round(edge, peer)
                assert city.fleet.status(edge.identity.node).last_error_code == "revoked_node"
            finally:
                peer.close()
    finally:
        for edge in edges:
            edge.close()
        city.close()


def test_central_serve_answers_sync_and_the_clerks_pages(city_dir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "central", "serve", "--data", str(city_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/sync/v1/time", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200
        refused = httpx.post(f"http://127.0.0.1:{port}/sync/v1/hello", timeout=5)
        assert refused.status_code == 426
        assert refused.json()["error"]["code"] == "protocol_version"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
