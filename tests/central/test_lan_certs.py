"""The boxes' HTTPS certificates for the office LAN: expiry on the fleet page, renewal at sync.

A real city (uvicorn on 127.0.0.1) and a box made from a real kit. The box's certificate is
made to end in 20 days (as if issued a year ago); the fleet page names it before it ends; the
box's next sync brings a renewed certificate over the same key, which the box installs for its
server's next start; the fleet page stops naming it.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import httpx
import pytest
from centralkit import PASSWORD, serving
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from edgekit import csrf_of

from central.app import create_central_app
from central.city import ADMIN_USERNAME, City, init_central
from central.hub import Hub
from central.tls import issue_server_cert, open_ca
from edge.accounts import add_account
from edge.i18n import format_datetime
from edge.lantls import install_renewed
from edge.node import open_node
from edge.settings import load
from edge.syncclient import sync_once
from ops import kit
from sync.transport import HttpPeer

UNIT = "31135"
PASSPHRASE = "cum tu bi mat cua bo kit"


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def fleet_page(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        client.cookies.set("lang", "en")
        page = client.get("/login")
        client.post(
            "/login",
            data={"username": ADMIN_USERNAME, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"},
        )
        return client.get("/fleet").text


def make_box(city: City, root: Path) -> tuple[Path, str]:
    """A box made from a kit of the city; (its certificate file, its node id)."""
    add_account(city.node, "canbo_nk", "Nguyễn Thị Lan", "clerk", PASSWORD, UNIT)
    made = kit.create_kit(city, UNIT, "http://127.0.0.1:1", root / "kit", PASSPHRASE, insecure_lan_test=True)
    kit.apply_kit(kit.verify_kit(root / "kit"), root / "box", PASSPHRASE)
    return root / "box" / "tls" / "box.pem", str(made["node"])


def test_a_certificate_near_its_end_is_on_the_fleet_page_and_renewed_at_the_next_sync(tmp_path: Path) -> None:
    city, _ = init_central(tmp_path / "city", "92", PASSWORD)
    try:
        box_pem, node_id = make_box(city, tmp_path)
        kept = city.node.data_dir / "tls" / "boxes" / f"{node_id}.pem"
        # Issued a year ago: it ends in 20 days, at the city and on the box alike.
        ca = open_ca(city.node.data_dir)
        old = leaf(box_pem)
        year_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=345)
        aged = issue_server_cert(
            ca,
            old.public_key(),
            ["motcua-31135", "localhost"],
            common_name="old",
            days=365,
            not_before=year_ago,
        )
        kept.write_bytes(aged)
        box_pem.write_bytes(aged + ca.pem)
        ends = leaf(box_pem).not_valid_after_utc

        with serving(create_central_app(load(city.node.data_dir), Hub(city))) as url:
            page = fleet_page(url)
            listed = re.search(r'<section id="certs-expiring".*?</section>', page, flags=re.S)
            assert listed, "the fleet page does not name the certificate about to end"
            assert node_id in listed.group(0)
            assert format_datetime(int(ends.timestamp() * 1000)) in listed.group(0)

            node = open_node(tmp_path / "box")
            try:
                peer = HttpPeer(url, node.identity, node.clock, timeout=30)
                try:
                    assert sync_once(node, peer, load(node.data_dir)).ok
                finally:
                    peer.close()
            finally:
                node.close()
            assert 'id="certs-expiring"' not in fleet_page(url)

        renewed = leaf(box_pem)
        assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
            days=390
        )
        assert renewed.public_key() == old.public_key()  # the same key: the city never had the private one
        renewed.verify_directly_issued_by(ca.cert)
        key = load_pem_private_key((tmp_path / "box" / "tls" / "box.key").read_bytes(), password=None)
        assert key.public_key() == renewed.public_key()
        assert leaf(kept) == renewed
        assert x509.load_pem_x509_certificates(box_pem.read_bytes())[1] == ca.cert
    finally:
        city.close()


def test_a_certificate_from_another_ca_or_for_another_key_is_not_installed(tmp_path: Path) -> None:
    city, _ = init_central(tmp_path / "city", "92", PASSWORD)
    try:
        box_pem, _ = make_box(city, tmp_path)
        before = box_pem.read_bytes()
        mine = leaf(box_pem).public_key()
        stranger = open_ca(tmp_path / "stranger")
        forged = issue_server_cert(stranger, mine, ["localhost"], common_name="forged", days=800)
        other_key = issue_server_cert(
            open_ca(city.node.data_dir), stranger.key.public_key(), ["localhost"], common_name="x", days=800
        )
        for chain, why in ((forged, "not the city CA's"), (other_key, "not for this box's key")):
            with pytest.raises(ValueError, match=why):
                install_renewed(tmp_path / "box", chain)
            assert box_pem.read_bytes() == before
    finally:
        city.close()
