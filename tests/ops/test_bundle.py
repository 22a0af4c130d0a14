"""Sneakernet: bundles on a USB stick between a commune's box and the city."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from central.city import City, init_central
from central.hub import Caller, Hub
from central.registry import add_node, revoke_node, write_node_file
from edge import auth
from edge.dossiers import receive
from edge.node import Node, init_from_node_file
from edge.syncstate import CENTRAL, CURSOR
from edge.uploads import Scan
from ops import bundle
from ops.cli import main
from sync import attempts, correction, wire
from sync.errors import BadSignature, ClockDriftError, CorruptBatch, RevokedNode, SyncError
from sync.feed import EVERYWHERE
from sync.wire import ScopeViolation

PASSWORD = "Matkhau123"
UNIT, OTHER = "31135", "31120"


@pytest.fixture(autouse=True, scope="module")
def cheap_password_hashing() -> None:
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Stick:
    city: City
    edge: Node
    tmp: Path

    def city_log(self) -> tuple[int, dict[str, int], bytes]:
        replica = self.city.node.replica
        return replica.op_count(), dict(replica.vector()), replica.state_digest()

    def edge_log(self) -> tuple[int, dict[str, int], bytes, object]:
        replica = self.edge.replica
        return replica.op_count(), dict(replica.vector()), replica.state_digest(), replica.meta(CURSOR)

    def to_edge(self, name: str = "to-edge.bundle") -> bundle.ImportReport:
        path = self.tmp / name
        bundle.export_from_city(self.city, self.edge.identity.node, path)
        return bundle.import_at_edge(self.edge, path)

    def from_edge(self, name: str = "from-edge.bundle") -> Path:
        path = self.tmp / name
        bundle.export_from_edge(self.edge, path)
        return path

    def digests(self) -> tuple[bytes, bytes]:
        keys = {UNIT, EVERYWHERE}
        return self.edge.replica.scope_digest(keys), self.city.node.replica.scope_digest(keys)


@pytest.fixture
def stick(tmp_path: Path) -> Iterator[Stick]:
    city, _ = init_central(tmp_path / "city", "92", PASSWORD)
    new = add_node(city, UNIT, "http://127.0.0.1:1")
    write_node_file(tmp_path / "edge.node.json", new.node_file)
    edge = init_from_node_file(tmp_path / "edge", tmp_path / "edge.node.json")
    s = Stick(city, edge, tmp_path)
    s.to_edge("provision.bundle")  # reference data and accounts, as the first sync brings them
    try:
        yield s
    finally:
        edge.close()
        city.close()


def receive_dossier(node: Node, name: str, scan: bytes | None = None) -> str:
    # Imported here: edgekit is on pytest's pythonpath (tests/edge), not an installed module.
    from edgekit import CLOCK_OK, actor, sample_input

    scans = [Scan(f"{name}.pdf", "application/pdf", b"%PDF-1.4\n" + scan)] if scan else []
    return receive(node, actor("canbo01"), sample_input(applicant_name=name), scans, CLOCK_OK).id


def bundle_attempts(node: Node) -> list[attempts.Attempt]:
    with node.reader() as conn:
        return [r.attempt for r in attempts.records(conn) if r.attempt.channel == "bundle"]


def test_export_at_edge_import_at_city_converge(stick: Stick) -> None:
    assert stick.edge.replica.state("procedure", "2.000720") is not None  # the first bundle arrived
    ids = [receive_dossier(stick.edge, f"Nguyễn Văn {i}", scan=bytes([i]) * 2000) for i in range(3)]
    me = stick.edge.identity.node
    path = stick.from_edge()

    report = bundle.import_at_city(stick.city, path)
    assert report.applied == report.ops > 0
    assert report.have == stick.edge.replica.vector()[me]
    for dossier in ids:
        assert stick.city.node.replica.state("dossier", dossier) == stick.edge.replica.state(
            "dossier", dossier
        )
    assert report.blobs == 3
    assert sum(1 for _ in stick.city.node.blobs.digests()) == 3
    rows = stick.city.fleet.attempts(me)
    assert rows[0].endpoint == "bundle"
    assert rows[0].outcome == "ok"
    assert rows[0].ops_in == report.ops

    # The receipt goes back on the stick: the box now knows what the city holds, with proof.
    assert report.ack_path is not None
    assert report.ack_path.exists()
    receipt = bundle.import_at_edge(stick.edge, report.ack_path)
    assert receipt.acks
    assert stick.edge.replica.peer_vector(CENTRAL)[me] == report.have

    # The city's outgoing bundle brings what it holds for this unit: both sides agree.
    stick.to_edge()
    mine, theirs = stick.digests()
    assert mine == theirs
    assert stick.edge.replica.state_digest() != b""
    log = bundle_attempts(stick.edge)
    assert [a.ops_sent > 0 for a in log] == [False, True, False, False]
    assert set(ids) <= set(log[1].entities)
    assert log[2].acks  # the receipt's proof is in the transmission record
    # Nothing more to send: an export now carries no ops.
    assert bundle.export_from_edge(stick.edge, stick.tmp / "empty.bundle").ops == 0


def test_double_import_is_harmless(stick: Stick) -> None:
    receive_dossier(stick.edge, "Trần Thị Bình", scan=b"x" * 100)
    path = stick.from_edge()
    first = bundle.import_at_city(stick.city, path)
    after_first = stick.city_log()
    second = bundle.import_at_city(stick.city, path)
    assert stick.city_log() == after_first
    assert second.applied == 0
    assert second.duplicates == first.ops
    out = stick.tmp / "again.bundle"
    bundle.export_from_city(stick.city, stick.edge.identity.node, out)
    bundle.import_at_edge(stick.edge, out)
    edge_after = stick.edge_log()
    bundle.import_at_edge(stick.edge, out)
    assert stick.edge_log() == edge_after


def damaged(path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "last byte cut":  # the zstd frame's checksum: everything else reads whole
        data = data[:-1]
    elif how == "bytes appended":
        data += b"\0" * 8
    elif how == "empty":
        data = bytearray()
    else:
        position = {"head": 3, "middle": len(data) // 2, "tail": len(data) - 2}[how]
        data[position] ^= 0x01
    out = path.with_name(f"{path.name}.{how}")
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    "how", ["head", "middle", "tail", "truncated", "last byte cut", "bytes appended", "empty"]
)
def test_damaged_bundle_from_edge_is_refused_whole(stick: Stick, how: str) -> None:
    for i in range(2):
        receive_dossier(stick.edge, f"Lê Văn {i}", scan=bytes([i + 1]) * 500)
    path = damaged(stick.from_edge(), how)
    before = stick.city_log()
    with pytest.raises((CorruptBatch, BadSignature)):
        bundle.import_at_city(stick.city, path)
    assert stick.city_log() == before
    assert list(stick.city.node.blobs.digests()) == []
    assert stick.city.fleet.attempts()[0].outcome == "refused"


@pytest.mark.parametrize("how", ["middle", "truncated", "last byte cut"])
def test_damaged_bundle_from_city_is_refused_whole(stick: Stick, how: str) -> None:
    receive_dossier(stick.edge, "Phạm Văn Cường")
    bundle.import_at_city(stick.city, stick.from_edge())
    # Another commune's dossier transferred here would arrive too; central's own ops suffice.
    from edge.accounts import add_account

    add_account(stick.city.node, "canbo02", "Võ Thị Dung", "clerk", PASSWORD, UNIT)
    out = stick.tmp / "city.bundle"
    bundle.export_from_city(stick.city, stick.edge.identity.node, out)
    before = stick.edge_log()
    with pytest.raises((CorruptBatch, BadSignature)):
        bundle.import_at_edge(stick.edge, damaged(out, how))
    assert stick.edge_log()[:3] == before[:3]
    assert stick.edge_log()[3] == before[3]
    assert bundle_attempts(stick.edge)[-1].outcome == "failed"
    bundle.import_at_edge(stick.edge, out)  # the undamaged copy still goes in
    assert stick.edge.replica.state("account", "canbo02") is not None


def test_bundle_of_a_revoked_node_is_refused(stick: Stick) -> None:
    receive_dossier(stick.edge, "Đỗ Thị Em")
    path = stick.from_edge()
    revoke_node(stick.city, stick.edge.identity.node)
    before = stick.city_log()
    with pytest.raises(RevokedNode):
        bundle.import_at_city(stick.city, path)
    assert stick.city_log() == before


def test_ops_outside_the_write_scope_refuse_the_whole_bundle(stick: Stick) -> None:
    good = receive_dossier(stick.edge, "Hoàng Văn Giang")
    with stick.edge.replica.write() as w:
        w.append("procedure", "2.000720", "upsert", {"name": "changed at a commune"})
    path = stick.from_edge()
    before = stick.city_log()
    with pytest.raises(ScopeViolation):
        bundle.import_at_city(stick.city, path)
    assert stick.city_log() == before
    assert stick.city.node.replica.state("dossier", good) is None
    assert stick.city.fleet.attempts()[0].error_code == "outside_write_scope"


def test_bundle_for_another_node_is_refused(stick: Stick, tmp_path: Path) -> None:
    other = add_node(stick.city, OTHER, "http://127.0.0.1:1")
    out = tmp_path / "other.bundle"
    bundle.export_from_city(stick.city, other.identity.node, out)
    before = stick.edge_log()
    with pytest.raises(SyncError):
        bundle.import_at_edge(stick.edge, out)
    assert stick.edge_log() == before


def test_cli_export_and_import(stick: Stick, capsys: pytest.CaptureFixture[str]) -> None:
    receive_dossier(stick.edge, "Bùi Thị Hoa", scan=b"y" * 300)
    city_dir, edge_dir = str(stick.city.node.data_dir), str(stick.edge.data_dir)
    me = stick.edge.identity.node
    stick.edge.close()
    stick.city.close()
    out = stick.tmp / "stick" / "ninhkieu.bundle"
    assert main(["sync", "export", "--data", edge_dir, "--out", str(out)]) == 0
    assert main(["sync", "import", str(out), "--data", city_dir]) == 0
    assert main(["sync", "import", str(out) + ".ack", "--data", edge_dir]) == 0
    back = stick.tmp / "stick" / "city.bundle"
    assert main(["sync", "export", "--data", city_dir, "--unit", UNIT, "--out", str(back)]) == 0
    assert main(["sync", "import", str(back), "--data", edge_dir]) == 0
    since = stick.tmp / "since.json"
    since.write_text(f'{{"{me}": 0}}', encoding="utf-8")
    again = stick.tmp / "stick" / "all.bundle"
    assert (
        main(["sync", "export", "--data", edge_dir, "--out", str(again), "--since-vector", str(since)]) == 0
    )
    assert main(["sync", "export", "--data", city_dir, "--out", str(again)]) == 2
    damaged_copy = damaged(out, "middle")
    assert main(["sync", "import", str(damaged_copy), "--data", city_dir]) == 2
    printed = capsys.readouterr()
    assert "wrote" in printed.out
    assert "imported bundle of" in printed.out
    assert "motcua:" in printed.err
    # Reopened for the fixture's teardown.
    from central.city import open_central
    from edge.node import open_node

    stick.city = open_central(city_dir)
    stick.edge = open_node(edge_dir)
    mine, theirs = stick.digests()
    assert mine == theirs


def test_a_bundle_written_before_the_box_corrected_its_clock_is_refused_whole(stick: Stick) -> None:
    """Decision 0008: a box whose clock ran days ahead exports its changes; the city refuses the
    bundle (stamped days ahead). Its next network round re-stamps them; the bundle from before
    the correction is then superseded, and refused whole as such, never as an attack."""
    edge, city = stick.edge, stick.city
    me = edge.identity.node
    edge.clock.offset_ms += 3 * 86_400_000  # booted three days ahead, offline
    receive_dossier(edge, "Lê Văn Cường")
    old = stick.from_edge("before-correction.bundle")
    before = stick.city_log()
    with pytest.raises(ClockDriftError) as ahead:
        bundle.import_at_city(city, old)
    assert "ahead of the city's clock" in ahead.value.message
    assert stick.city_log() == before

    # The network round's correction (edge/syncclient.py; tests/integration show it end to end).
    edge.clock.calibrate(city.node.clock.wall_ms())
    done = edge.replica.restamp_tail(
        city.node.replica.vector()[me], city.node.clock.wall_ms(), shift_ms=3 * 86_400_000
    )
    assert done is not None
    report = bundle.import_at_city(city, stick.from_edge("corrected.bundle"))
    assert report.have == edge.replica.vector()[me]

    for later in (0, 4 * 86_400_000):  # at once, and once real time passed the old stamps
        city.node.clock.offset_ms = later
        held = stick.city_log()
        with pytest.raises(bundle.Superseded) as refused:
            bundle.import_at_city(city, old)
        assert "superseded by the box's corrected log" in refused.value.message
        assert stick.city_log() == held
    assert city.fleet.attempts(me)[0].error_code == "bundle_superseded"


def test_a_city_bundle_carrying_ops_of_a_node_the_box_holds_revoked_is_refused_whole(stick: Stick) -> None:
    """The box checks every batch of a city bundle with the keys and revocations it will hold
    once the bundle's certificates are applied, the revocations it already holds included; the
    merges then take what that check verified."""
    from edgekit import CLOCK_OK, actor, sample_input

    new = add_node(stick.city, OTHER, "http://127.0.0.1:1")
    write_node_file(stick.tmp / "other.node.json", new.node_file)
    other = init_from_node_file(stick.tmp / "other", stick.tmp / "other.node.json")
    try:
        path = stick.tmp / "provision-other.bundle"
        bundle.export_from_city(stick.city, other.identity.node, path)
        bundle.import_at_edge(other, path)
        draft = sample_input(handling_unit=UNIT, address_unit=OTHER)
        dossier = receive(other, actor("canbo_caikhe"), draft, [], CLOCK_OK).id
        path = stick.tmp / "from-other.bundle"
        bundle.export_from_edge(other, path)
        bundle.import_at_city(stick.city, path)
    finally:
        other.close()
    stick.edge.replica.trust(new.identity.node, new.identity.public_raw)
    stick.edge.replica.revoke(new.identity.node, 0)  # learnt before; the city's bundle does not say so
    before = stick.edge_log()
    with pytest.raises(RevokedNode):
        stick.to_edge()
    assert stick.edge_log() == before
    assert stick.edge.replica.state("dossier", dossier) is None


def test_a_bundle_written_before_the_hello_that_gave_its_bodies_up_is_refused_whole(stick: Stick) -> None:
    """Decision 0008's former hole: the box's network round gives up the bodies stamped ahead in
    its hello, then is cut before it re-stamps and pushes; days later, once real time has passed
    the old stamps, the stick written before the correction reaches the city. Before the fix
    the city took it and kept bodies the box then re-stamped (two bodies of one op for good);
    now it is refused whole as superseded, and the box's next round goes through."""
    edge, city = stick.edge, stick.city
    me = edge.identity.node
    edge.clock.offset_ms += 3 * 86_400_000  # booted three days ahead, offline
    receive_dossier(edge, "Lê Văn Cường")
    old = stick.from_edge("before-correction.bundle")

    hub = Hub(city)
    caller = Caller(me, edge.config.unit, wire.PROTOCOL)
    edge.clock.calibrate(city.node.clock.wall_ms())
    known = city.node.replica.vector()[me]
    given = correction.to_give_up(edge.replica, known, edge.clock.wall_ms())
    assert given
    hello = wire.Hello(software="test", head=edge.replica.vector()[me], cursor=0, wall_ms=0, give_up=given)
    assert hub.hello(caller, hello).given_up  # the round is cut here: no re-stamp, no push

    city.node.clock.offset_ms = 4 * 86_400_000  # the stick arrives once real time passed the stamps
    held = stick.city_log()
    with pytest.raises(bundle.Superseded) as refused:
        bundle.import_at_city(city, old)
    assert "superseded by the box's corrected log" in refused.value.message
    assert stick.city_log() == held

    edge.clock.calibrate(city.node.clock.wall_ms())  # the next round: given up again, re-stamped
    again = correction.to_give_up(edge.replica, known, edge.clock.wall_ms())
    reply = hub.hello(caller, msgspec.structs.replace(hello, give_up=again))
    assert correction.apply(edge.replica, again, reply.have, reply.given_up, edge.clock.wall_ms()) is not None
    report = bundle.import_at_city(city, stick.from_edge("corrected.bundle"))
    assert report.have == edge.replica.vector()[me]
