"""A tampered USB stick: sneakernet bundles that were damaged, cut short, re-signed by someone
else, carried for another box, or from a revoked box. Each is refused whole, audited as
``bundle_refused`` on the side that imported it (naming the sender the bundle claimed), and
changes nothing; the honest copy still goes in afterwards. (tests/ops/test_bundle.py proves the
refusals themselves in more shapes; this file adds the audit log and the impostor.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from centralkit import CAI_KHE, NINH_KIEU
from edgekit import PASSWORD, receive_sample

from central.city import City, init_central
from central.registry import add_node, revoke_node, write_node_file
from edge.accounts import add_account
from edge.node import Node, init_from_node_file
from ops import bundle
from sync.errors import SyncError
from sync.identity import Identity


@dataclass
class Stick:
    city: City
    edge: Node
    tmp: Path

    def city_log(self) -> tuple[int, dict[str, int], bytes]:
        replica = self.city.node.replica
        return replica.op_count(), dict(replica.vector()), replica.state_digest()

    def edge_log(self) -> tuple[int, dict[str, int], bytes]:
        replica = self.edge.replica
        return replica.op_count(), dict(replica.vector()), replica.state_digest()


@pytest.fixture
def stick(tmp_path: Path) -> Iterator[Stick]:
    city, _ = init_central(tmp_path / "city", "92", PASSWORD)
    new = add_node(city, NINH_KIEU, "http://127.0.0.1:1")
    write_node_file(tmp_path / "edge.node.json", new.node_file)
    edge = init_from_node_file(tmp_path / "edge", tmp_path / "edge.node.json")
    first = tmp_path / "provision.bundle"
    bundle.export_from_city(city, edge.identity.node, first)
    bundle.import_at_edge(edge, first)
    try:
        yield Stick(city, edge, tmp_path)
    finally:
        edge.close()
        city.close()


def damaged(path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    if how == "cut short":
        data = data[: len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0x01
    out = path.with_name(f"{path.name}.{how.replace(' ', '-')}")
    out.write_bytes(bytes(data))
    return out


def audited_refusal(node: Node, path: Path, actor: str | None = None) -> None:
    [entry] = node.audit.entries(event="bundle_refused")
    assert entry.path == str(path)
    assert entry.detail["code"]
    if actor is not None:
        assert entry.actor == actor


@pytest.mark.parametrize("how", ["flipped byte", "cut short"])
def test_a_damaged_bundle_from_a_box_is_refused_at_the_city_audited_and_changes_nothing(stick, how):
    receive_sample(stick.edge, applicant_name="Lê Văn Tám")
    good = stick.tmp / "from-edge.bundle"
    bundle.export_from_edge(stick.edge, good)
    bad = damaged(good, how)
    before = stick.city_log()
    with pytest.raises(SyncError):
        bundle.import_at_city(stick.city, bad)
    assert stick.city_log() == before
    audited_refusal(stick.city.node, bad)
    bundle.import_at_city(stick.city, good)
    assert stick.city_log() != before


@pytest.mark.parametrize("how", ["flipped byte", "cut short"])
def test_a_damaged_bundle_from_the_city_is_refused_at_the_box_audited_and_changes_nothing(stick, how):
    add_account(stick.city.node, "canbo02", "Võ Thị Dung", "clerk", PASSWORD, NINH_KIEU)
    good = stick.tmp / "to-edge.bundle"
    bundle.export_from_city(stick.city, stick.edge.identity.node, good)
    bad = damaged(good, how)
    before = stick.edge_log()
    with pytest.raises(SyncError):
        bundle.import_at_edge(stick.edge, bad)
    assert stick.edge_log() == before
    audited_refusal(stick.edge, bad)
    bundle.import_at_edge(stick.edge, good)
    assert stick.edge.replica.state("account", "canbo02") is not None


def test_a_bundle_re_signed_by_an_impostor_is_refused_and_audited_under_the_claimed_sender(stick):
    """Someone copies the stick, changes what it carries and signs with a key of their own under
    the box's id: the city knows the box's real key."""
    receive_sample(stick.edge, applicant_name="Lê Văn Tám")
    real = stick.edge.identity
    stick.edge.identity = Identity(real.node, Identity.generate(NINH_KIEU).private)
    forged = stick.tmp / "forged.bundle"
    try:
        bundle.export_from_edge(stick.edge, forged)
    finally:
        stick.edge.identity = real
    before = stick.city_log()
    with pytest.raises(SyncError) as caught:
        bundle.import_at_city(stick.city, forged)
    assert caught.value.code == "bad_signature"
    assert stick.city_log() == before
    audited_refusal(stick.city.node, forged, actor=real.node)


def test_a_bundle_of_a_revoked_box_is_refused_and_audited(stick):
    receive_sample(stick.edge, applicant_name="Đỗ Thị Em")
    path = stick.tmp / "stolen.bundle"
    bundle.export_from_edge(stick.edge, path)
    revoke_node(stick.city, stick.edge.identity.node)
    before = stick.city_log()
    with pytest.raises(SyncError) as caught:
        bundle.import_at_city(stick.city, path)
    assert caught.value.code == "revoked_node"
    assert stick.city_log() == before
    audited_refusal(stick.city.node, path, actor=stick.edge.identity.node)


def test_a_bundle_carried_to_the_wrong_box_is_refused_and_audited(stick):
    other = add_node(stick.city, CAI_KHE, "http://127.0.0.1:1")
    path = stick.tmp / "for-cai-khe.bundle"
    bundle.export_from_city(stick.city, other.identity.node, path)
    before = stick.edge_log()
    with pytest.raises(SyncError):
        bundle.import_at_edge(stick.edge, path)
    assert stick.edge_log() == before
    audited_refusal(stick.edge, path, actor=stick.city.node.identity.node)


def test_ops_outside_the_write_scope_on_a_stick_refuse_the_whole_bundle_and_are_audited(stick):
    good = receive_sample(stick.edge, applicant_name="Hoàng Văn Giang")
    with stick.edge.replica.write() as w:
        w.append("procedure", "2.000720", "upsert", {"name": "changed at a commune"})
    path = stick.tmp / "rogue.bundle"
    bundle.export_from_edge(stick.edge, path)
    before = stick.city_log()
    with pytest.raises(SyncError) as caught:
        bundle.import_at_city(stick.city, path)
    assert caught.value.code == "outside_write_scope"
    assert stick.city_log() == before
    assert stick.city.node.replica.state("dossier", good.id) is None
    audited_refusal(stick.city.node, path, actor=stick.edge.identity.node)
