"""Two communes and a city converge through a bad link (issue 4, "Tests").

A real ``motcua central serve`` process; Phường Ninh Kiều (31135) and Phường Cái Khế (31120),
each behind its own fault proxy, either as ``motcua edge serve`` processes used through their
JSON API (background sync loop on), or driven here with the real sync client. After every
scenario the link heals, rounds run to quiescence and :func:`servers.assert_converged` checks
the invariants: equal scope digests, dense logs (no op lost, none twice), every acknowledged
dossier at the city and at its units with the same timeline.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from datetime import date

import pytest
from servers import CAI_KHE, NINH_KIEU, Clerk, assert_converged, held, run_cli

from edge.auth import Actor
from edge.clockcheck import ClockStatus
from edge.dossiers import perform, receive
from edge.syncclient import INCOMING, NO_CONNECTION, TIMED_OUT, sync_once
from edge.syncstate import badge
from edge.uploads import check_scan
from schema.dossier import Draft
from sync.batch import encode_batch

CLOCK_OK = ClockStatus(False, 0, None)
ROUND_BYTES = 4500
"""About what a round of a few dossiers moves each way here (headers included): cuts drawn
below it land inside the round, most of them inside a push or a pull."""
CLERKS = {NINH_KIEU: "canbo01", CAI_KHE: "canbo_caikhe"}


def clerk(unit: str) -> Actor:
    return Actor(CLERKS[unit], f"Cán bộ {unit}", unit, "clerk")


def dossier(unit: str, applicant: str = "Nguyễn Văn An", handling: str = "") -> Draft:
    return Draft(
        procedure="2.000720",
        applicant_name=applicant,
        citizen_id="092085001234",
        dob=date(1985, 3, 14),
        phone="0912345678",
        address="12 Mậu Thân",
        address_unit=unit,
        handling_unit=handling,
    )


def receive_at(world, unit: str, handling: str = "", scans=(), applicant: str = "Nguyễn Văn An") -> str:
    return receive(
        world.open(unit), clerk(unit), dossier(unit, applicant, handling), list(scans), CLOCK_OK
    ).id


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- clerks at work while the link is down -----------------------------------------------------


def test_clerks_receive_through_the_api_while_the_link_is_down(world):
    """Two edge processes with their sync loops; the links go down, clerks receive and act
    through the JSON API, the badge counts what waits; the links come back and everything
    reaches the city, including a dossier handled by the other commune."""
    world.settle()  # accounts and reference data on disk before the boxes open
    world.close_nodes()
    servers = {unit: world.serve_edge(unit) for unit in world.units}
    for unit in world.units:
        world.edges[unit].proxy.set(down=True)

    expected: dict[str, tuple[str, ...]] = {}
    with (
        Clerk(servers[NINH_KIEU].url, CLERKS[NINH_KIEU]) as lan,
        Clerk(servers[CAI_KHE].url, CLERKS[CAI_KHE]) as ha,
    ):
        for i in range(4):
            made = lan.receive(f"Nguyễn Văn Bình {i}", address_unit=NINH_KIEU)
            lan.act(str(made["id"]), "accept")
            expected[str(made["id"])] = (NINH_KIEU,)
        routed = str(lan.receive("Trần Thị Cúc", handling_unit=CAI_KHE)["id"])
        expected[routed] = (NINH_KIEU, CAI_KHE)
        for i in range(3):
            made = ha.receive(f"Lê Văn Dũng {i}", address_unit=CAI_KHE)
            expected[str(made["id"])] = (CAI_KHE,)
        assert lan.status()["waiting"] == 9
        assert ha.status()["waiting"] == 3
        wait_until(lambda: lan.status()["online"] is False, what="the badge to say offline")

        for unit in world.units:
            world.edges[unit].proxy.heal()
        wait_until(lambda: lan.status()["waiting"] == 0, what="31135's ops to reach the city")
        wait_until(lambda: ha.client.get(f"/api/v1/dossiers/{routed}").status_code == 200, what="routing")
        assert ha.status()["waiting"] == 0
        ha.act(routed, "accept")
        wait_until(lambda: lan.client.get(f"/api/v1/dossiers/{routed}").json()["status"] == 2, what="back")

    for unit in world.units:
        world.stop_edge(unit)
    assert_converged(world, expected)


def test_an_edge_restarted_mid_outage_sends_what_it_queued(world):
    """Data is on disk: a box that loses power while the link is down comes back with its queue
    and delivers it once the link returns."""
    world.settle()
    world.close_nodes()
    link = world.edges[NINH_KIEU].proxy
    server = world.serve_edge(NINH_KIEU)
    link.set(down=True)
    with Clerk(server.url, CLERKS[NINH_KIEU]) as lan:
        ids = [str(lan.receive(f"Phạm Văn Em {i}")["id"]) for i in range(3)]
        assert lan.status()["waiting"] == 3
    server.kill()  # a power cut, not a shutdown
    server.start()
    with Clerk(server.url, CLERKS[NINH_KIEU]) as lan:
        assert lan.status()["waiting"] == 3
        assert lan.client.get(f"/api/v1/dossiers/{ids[0]}").status_code == 200
        link.heal()
        wait_until(lambda: lan.status()["waiting"] == 0, what="the queue to drain after the restart")
    world.stop_edge(NINH_KIEU)
    assert_converged(world, {i: (NINH_KIEU,) for i in ids})


# --- cuts at random byte offsets -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [4, 92])
def test_cuts_at_random_offsets_mid_push_and_mid_pull(world, seed):
    """Many cuts in a row, each at a random byte of a round's traffic, upstream (push, scans
    up) or downstream (acks, pull replies); clerks keep writing between rounds. What the city
    acknowledged is never lost, and after the link heals everything converges."""
    rng = random.Random(seed)
    world.settle()
    expected: dict[str, tuple[str, ...]] = {}
    for unit in world.units:
        settings = world.settings(unit)
        assert settings.batch_bytes == 2048  # small batches: many per round, cuts land inside them
    acked = {unit: 0 for unit in world.units}
    cuts = 0
    for step in range(16):
        unit = rng.choice(world.units)
        other = CAI_KHE if unit == NINH_KIEU else NINH_KIEU
        for i in range(rng.randint(2, 6)):
            handling = other if rng.random() < 0.3 else ""
            made = receive_at(world, unit, handling, applicant=f"Hồ Văn Phúc {step} {i}")
            expected[made] = (unit, other) if handling else (unit,)
            if rng.random() < 0.5:
                perform(world.open(unit), clerk(unit), made, "accept")
        proxy = world.edges[unit].proxy
        before = proxy.stats.cuts
        if rng.random() < 0.5:
            proxy.set(cut_upstream_after=rng.randint(1, ROUND_BYTES))
        else:
            proxy.set(cut_downstream_after=rng.randint(1, ROUND_BYTES))
        result = world.round(unit)
        cuts += proxy.stats.cuts - before
        node = world.open(unit)
        known = node.replica.peer_vector("central")[node.identity.node]
        assert known >= acked[unit], "what the city acknowledged went backwards"
        acked[unit] = known
        assert result.ok or result.error in (NO_CONNECTION, TIMED_OUT), result.summary()
    assert cuts >= 8, f"only {cuts} cuts landed"
    for unit in world.units:
        world.edges[unit].proxy.heal()
    assert_converged(world, expected)


def test_a_cut_mid_batch_costs_at_most_that_batch(world):
    """A push cut inside a batch: the batches acknowledged before the cut are never sent again,
    the cut one is sent whole next time, nothing else."""
    world.settle()
    for i in range(60):
        receive_at(world, NINH_KIEU, applicant=f"Vũ Thị Giang {i}")
    node = world.open(NINH_KIEU)
    settings = world.settings(NINH_KIEU)
    sizes = [
        len(encode_batch(b))
        for b in node.replica.batches(
            {node.identity.node: 0},
            nodes=[node.identity.node],
            max_bytes=settings.batch_bytes,
            grow_to=settings.batch_bytes_max,
        )
    ]
    assert len(sizes) >= 4  # 2, 4, then 8 KiB: batches grow as the city acknowledges them
    proxy = world.edges[NINH_KIEU].proxy
    proxy.set(cut_upstream_after=sum(sizes[:2]) + sizes[2] // 2)
    cut = world.round(NINH_KIEU)
    assert not cut.ok, cut.summary()
    assert 0 < len(cut.acks) < len(sizes), cut.summary()
    resumed = world.round(NINH_KIEU)
    assert resumed.ok, resumed.summary()
    assert cut.ops_sent + resumed.ops_sent == 60  # no acknowledged op sent twice
    pushed_again = sum(sizes[len(cut.acks) :])
    small_requests = 600  # hello, pull and digest bodies of the resumed round
    assert pushed_again <= resumed.bytes_sent <= pushed_again + small_requests
    assert_converged(world)


# --- stalls, delays, resets, duplicates ------------------------------------------------------------


def test_a_stall_beyond_the_client_timeout_then_recovery(world):
    world.settle()
    made = receive_at(world, NINH_KIEU)
    proxy = world.edges[NINH_KIEU].proxy
    proxy.set(stall_s=2.5)
    peer_timeout = 1.0
    peer = world.peer(NINH_KIEU, timeout=peer_timeout)
    try:
        stalled = sync_once(world.open(NINH_KIEU), peer, world.settings(NINH_KIEU))
    finally:
        peer.close()
    assert stalled.error == TIMED_OUT, stalled.summary()
    assert badge(world.open(NINH_KIEU)).waiting == 1
    proxy.heal()
    proxy.set(delay_s=0.02)  # a slow link that still answers in time
    slow = world.round(NINH_KIEU)
    assert slow.ok, slow.summary()
    proxy.heal()
    assert_converged(world, {made: (NINH_KIEU,)})


def test_a_tcp_reset_fails_the_round_and_the_next_one_delivers(world):
    world.settle()
    made = receive_at(world, CAI_KHE)
    proxy = world.edges[CAI_KHE].proxy
    proxy.set(reset=True)
    reset = world.round(CAI_KHE)
    assert reset.error == NO_CONNECTION, reset.summary()
    assert "reset" in proxy.stats.events
    assert badge(world.open(CAI_KHE)).waiting == 1
    assert world.round(CAI_KHE).ok
    assert badge(world.open(CAI_KHE)).waiting == 0
    assert_converged(world, {made: (CAI_KHE,)})


def test_a_duplicated_request_is_refused_and_nothing_is_applied_twice(world):
    """A middlebox replays a whole connection (hello, pushes, pulls) on a fresh one: the signed
    requests are refused as replays; the city's log stays dense."""
    world.settle()
    ids = [receive_at(world, NINH_KIEU, applicant=f"Đặng Văn Hải {i}") for i in range(5)]
    proxy = world.edges[NINH_KIEU].proxy
    proxy.set(duplicate_next=True)
    first = world.round(NINH_KIEU)
    assert first.ok, first.summary()
    assert first.ops_sent == 5
    wait_until(lambda: proxy.stats.duplicates == 1, what="the replay")
    again = world.round(NINH_KIEU)
    assert again.ok, again.summary()
    assert again.ops_sent == 0
    assert_converged(world, {i: (NINH_KIEU,) for i in ids})
    with world.city.opened() as city:
        me = world.open(NINH_KIEU).identity.node
        refused = [a for a in city.fleet.attempts(me, limit=1000) if a.error_code == "replayed_request"]
        assert refused, "the replayed requests were not refused as replays"
        assert len(city.fleet.acks(me)) == len(first.acks)  # each batch acknowledged once


# --- non-territorial dossiers ------------------------------------------------------------------------


def test_a_non_territorial_dossier_reaches_its_handling_unit_and_back(world):
    world.settle()
    routed = receive_at(world, NINH_KIEU, handling=CAI_KHE, applicant="Ngô Thị Kim")
    cai_khe = world.open(CAI_KHE)
    assert world.round(CAI_KHE).ok
    assert cai_khe.replica.state("dossier", routed) is None  # 31135 has not synced yet
    assert world.round(NINH_KIEU).ok
    got = world.round(CAI_KHE)
    assert got.ok, got.summary()
    assert got.ops_received >= 1
    assert cai_khe.replica.state("dossier", routed)["handling_unit"] == CAI_KHE
    perform(cai_khe, clerk(CAI_KHE), routed, "accept")
    perform(cai_khe, clerk(CAI_KHE), routed, "start")
    assert world.round(CAI_KHE).ok
    assert world.round(NINH_KIEU).ok
    ninh_kieu = world.open(NINH_KIEU)
    assert ninh_kieu.replica.state("dossier", routed)["status"] == 4
    assert ninh_kieu.replica.ops_of("dossier", routed) == cai_khe.replica.ops_of("dossier", routed)

    # A transfer made offline is queued, shown as waiting, and delivered when the link returns.
    local = receive_at(world, NINH_KIEU, applicant="Lý Văn Long")
    link = world.edges[NINH_KIEU].proxy
    link.set(down=True)
    perform(ninh_kieu, clerk(NINH_KIEU), local, "transfer", handling_unit=CAI_KHE)
    down = world.round(NINH_KIEU)
    assert down.error == NO_CONNECTION, down.summary()
    assert local in down.entities  # the transmission record lists the dossier it tried to send
    assert badge(ninh_kieu).waiting == 2  # the receipt and the transfer
    assert world.round(CAI_KHE).ok
    assert cai_khe.replica.state("dossier", local) is None
    link.heal()
    assert world.round(NINH_KIEU).ok
    assert badge(ninh_kieu).waiting == 0
    assert world.round(CAI_KHE).ok
    assert cai_khe.replica.state("dossier", local)["handling_unit"] == CAI_KHE
    assert_converged(world, {routed: (NINH_KIEU, CAI_KHE), local: (NINH_KIEU, CAI_KHE)})


# --- attachments --------------------------------------------------------------------------------------


def test_a_scan_crosses_cuts_mid_upload_and_mid_download(world):
    """A ~500 KB scan, received at 31135 for 31120: the upload is cut halfway and resumes from
    what the city holds; the download is cut halfway and resumes from the .part file; both
    ends check the sha256."""
    world.settle()
    data = b"%PDF-1.4\n" + os.urandom(500_000)
    sha = hashlib.sha256(data).hexdigest()
    chunk = world.settings(NINH_KIEU).blob_chunk_bytes
    scan = check_scan("giay-to.pdf", data, 15 << 20)
    routed = receive_at(world, NINH_KIEU, handling=CAI_KHE, scans=[scan])

    up = world.edges[NINH_KIEU].proxy
    up.set(cut_upstream_after=260_000)
    cut = world.round(NINH_KIEU)
    assert not cut.ok, cut.summary()
    assert (cut.ops_sent, cut.blobs_sent) == (2, 0), cut.summary()
    direct = world.peer(NINH_KIEU, direct=True)
    partial = direct.blob_size(sha)
    assert 0 < partial < len(data), partial
    assert partial % chunk == 0, partial  # only whole chunks are kept
    before = up.stats.upstream_bytes
    resumed = world.round(NINH_KIEU)
    assert resumed.ok, resumed.summary()
    assert resumed.blobs_sent == 1
    assert up.stats.upstream_bytes - before < len(data) - partial + 20_000  # resumed, not restarted
    assert direct.blob_size(sha) == len(data)

    down = world.edges[CAI_KHE].proxy
    down.set(cut_downstream_after=300_000)
    cut = world.round(CAI_KHE)
    assert not cut.ok, cut.summary()
    assert cut.blobs_received == 0
    part = world.edges[CAI_KHE].dir / INCOMING / f"{sha}.part"
    assert 0 < part.stat().st_size < len(data)
    held_part = part.stat().st_size
    before = down.stats.downstream_bytes
    fetched = world.round(CAI_KHE)
    assert fetched.ok, fetched.summary()
    assert fetched.blobs_received == 1
    assert down.stats.downstream_bytes - before < len(data) - held_part + 20_000
    assert not part.exists()
    cai_khe = world.open(CAI_KHE)
    assert hashlib.sha256(cai_khe.blobs.get(sha)).hexdigest() == sha
    assert_converged(world, {routed: (NINH_KIEU, CAI_KHE)})
    with world.city.opened() as city:
        assert hashlib.sha256(city.node.blobs.get(sha)).hexdigest() == sha


def test_the_city_log_is_dense_after_everything(world):
    """A guard on the checker itself: a fresh world is converged and dense."""
    assert_converged(world)
    with world.city.opened() as city:
        assert held(city.node).pending == 0


# --- the shell, and the city losing power -------------------------------------------------------------


def test_sync_now_from_the_shell_says_whether_the_link_works(world):
    """``motcua sync now`` through the commune's link: exit 1 with the reason while it is down,
    0 once it is back (the node file names the proxy as the city's address)."""
    world.settle()
    made = receive_at(world, CAI_KHE)
    world.close_nodes()
    link = world.edges[CAI_KHE].proxy
    link.set(down=True)
    down = run_cli("sync", "now", "--data", str(world.edges[CAI_KHE].dir))
    assert down.returncode == 1, down.stdout + down.stderr
    assert NO_CONNECTION in down.stdout
    link.heal()
    up = run_cli("sync", "now", "--data", str(world.edges[CAI_KHE].dir))
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.startswith("ok: 1 ops sent")
    assert_converged(world, {made: (CAI_KHE,)})


def test_what_the_city_acknowledged_survives_its_power_cut(world):
    """The city loses power in the middle of a long push: every batch it had acknowledged is in
    its log after the restart, and the commune's next rounds deliver the rest exactly once."""
    world.settle()
    ids = [receive_at(world, NINH_KIEU, applicant=f"Bùi Thị Mai {i}") for i in range(80)]
    link = world.edges[NINH_KIEU].proxy
    link.set(delay_s=0.03)  # a slow link: the push takes a while
    done: list = []
    worker = threading.Thread(target=lambda: done.append(world.round(NINH_KIEU, timeout=5)))
    worker.start()
    wait_until(lambda: link.stats.upstream_bytes > 12_000, timeout=30, what="the push under way")
    world.central.kill()
    worker.join(30)
    cut = done[0]
    assert not cut.ok, cut.summary()
    link.heal()
    world.start_central()
    acknowledged = max((ack.have for ack in cut.acks), default=0)
    assert acknowledged > 0, "no batch was acknowledged before the power cut"
    assert_converged(world, {i: (NINH_KIEU,) for i in ids})
    with world.city.opened() as city:
        me = world.open(NINH_KIEU).identity.node
        assert city.node.replica.vector()[me] >= acknowledged
        assert city.node.replica.vector()[me] == 80
