"""The edge's sync client against a real hub replica behind a fake link (tests/edge/synckit.py):
rounds that work, rounds cut at every step, refusals, blobs, certificates, the signed attempt
log, clock calibration, anti-entropy, and the background loop's timing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime

import pytest
from edgekit import OTHER_UNIT, UNIT, receive_sample
from synckit import Break, FakeHub

from edge import clockcheck, syncclient
from edge.dossiers import receive
from edge.node import Node, open_node
from edge.settings import load
from edge.syncclient import (
    NO_CONNECTION,
    REVOKED,
    RoundResult,
    reference_skew_ms,
    sync_once,
)
from edge.syncloop import SyncLoop, next_delay_s
from edge.syncstate import CENTRAL, COMPARED_AT, CURSOR, badge
from edge.uploads import Scan
from sync import attempts, wire
from sync.batch import encode_batch
from sync.clock import Clock, system_wall_ms
from sync.errors import BadSignature, PeerRefused, PeerTimeout, PeerUnavailable, PeerUnreachable, RevokedNode

CHUNK = 64 * 1024


@pytest.fixture
def hub(tmp_path):
    h = FakeHub(tmp_path / "city")
    yield h
    h.close()


@pytest.fixture
def edges(tmp_path, hub):
    made: list[Node] = []

    def make(unit: str = UNIT, clock: Clock | None = None) -> Node:
        node = hub.make_edge(tmp_path / f"edge-{unit}-{len(made)}", unit, clock)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


@pytest.fixture
def edge(edges):
    return edges()


def settings_of(node: Node, **overrides):
    """The node's settings; every round compares digests unless a test says otherwise."""
    return load(node.data_dir, **{"blob_chunk_bytes": CHUNK, "digest_interval_s": 0, **overrides})


def round_(node: Node, peer, **overrides) -> RoundResult:
    return sync_once(node, peer, settings_of(node, **overrides))


def records(node: Node) -> list[attempts.Record]:
    with node.reader() as conn:
        return attempts.records(conn)


def agree(hub: FakeHub, node: Node) -> bool:
    return hub.scope_digest(node.config.unit) == node.replica.scope_digest({node.config.unit, "*"})


def pdf(size: int, seed: int = 1) -> Scan:
    body = os.urandom(8) + bytes((seed * i) % 251 for i in range(size))
    return Scan(f"scan-{seed}.pdf", "application/pdf", b"%PDF-1.4\n" + body)


def received_with_scan(node: Node, scan: Scan, **overrides: object) -> str:
    from edgekit import CLOCK_OK, actor, sample_input

    return receive(node, actor("canbo01"), sample_input(**overrides), [scan], CLOCK_OK).id


# --- rounds that work ------------------------------------------------------------------------------


def test_the_first_round_brings_reference_data_and_the_units_accounts(hub, edge):
    peer = hub.peer(edge)
    result = round_(edge, peer)
    assert result.outcome == "ok", result.summary()
    assert result.error is None
    assert result.digest_match is True
    assert edge.replica.state("unit", UNIT)["_created"]
    assert edge.replica.state("procedure", "2.000720")["_created"]
    assert edge.replica.state("account", "canbo01")["unit"] == UNIT
    assert edge.replica.state("account", "canbo_caikhe") is None  # another unit's clerk
    assert result.ops_received > 100
    assert result.bytes_received > 0
    assert result.bytes_sent > 0
    assert edge.replica.meta(CURSOR) == hub.replica.feed_head()
    assert agree(hub, edge)
    [record] = records(edge)
    assert record.attempt.outcome == "ok"
    assert record.attempt.peer == CENTRAL
    assert record.attempt.channel == "http"
    assert record.attempt.ops_received == result.ops_received
    assert record.attempt.bytes_received == result.bytes_received


def test_a_received_dossier_is_pushed_and_acknowledged_by_the_city(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    received = receive_sample(edge)
    assert badge(edge).waiting == 1
    result = round_(edge, peer)
    assert result.outcome == "ok", result.summary()
    assert result.ops_sent == 1
    assert result.entities == [received.id]
    assert hub.replica.state("dossier", received.id)["code"] == received.code
    [ack] = result.acks
    wire.check_ack(ack, hub.identity.public_raw)
    assert ack.node == edge.identity.node
    assert ack.have == edge.replica.vector()[edge.identity.node]
    assert badge(edge).waiting == 0
    record = records(edge)[-1]
    assert record.attempt.entities == [received.id]
    assert [wire.decode(a, wire.Ack) for a in record.attempt.acks] == [ack]
    assert agree(hub, edge)


def test_a_failed_round_is_recorded_with_its_reason_and_changes_nothing_committed(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    received = receive_sample(edge)
    before = (edge.replica.digest(), edge.replica.meta(CURSOR), edge.replica.peer_vector(CENTRAL))
    hub_before = hub.replica.digest()
    peer.down = True
    result = round_(edge, peer)
    assert result.outcome == "failed"
    assert result.error == NO_CONNECTION
    assert result.retryable
    assert (edge.replica.digest(), edge.replica.meta(CURSOR), edge.replica.peer_vector(CENTRAL)) == before
    assert hub.replica.digest() == hub_before
    record = records(edge)[-1]
    assert record.attempt.outcome == "failed"
    assert record.attempt.error == NO_CONNECTION
    assert record.attempt.entities == [received.id]  # the dossier's proof of the attempt
    assert badge(edge).online is False
    assert badge(edge).last_error == NO_CONNECTION

    peer.down = False
    healed = round_(edge, peer)
    assert healed.outcome == "ok"
    assert healed.ops_sent == 1
    assert hub.replica.state("dossier", received.id) is not None
    assert agree(hub, edge)
    assert badge(edge).online is True


@pytest.mark.parametrize("method", ["time", "hello", "push", "pull", "digest"])
@pytest.mark.parametrize("after", [False, True], ids=["request-lost", "reply-lost"])
def test_a_cut_at_any_request_loses_nothing_and_the_next_round_converges(hub, edges, method, after):
    edge = edges()
    peer = hub.peer(edge, max_ops=40)
    round_(edge, peer)
    ids = [receive_sample(edge).id for _ in range(3)]
    with hub.replica.write() as w:  # the city changes reference data meanwhile
        for n in range(60):
            w.append("procedure", "2.000720", "upsert", {"fee": 1000 * n})
    peer.breaks.append(Break(method, peer.calls[method] + 1, after=after))
    cut = round_(edge, peer, batch_bytes=200)
    assert cut.error is not None
    assert cut.retryable
    assert records(edge)[-1].attempt.outcome in ("failed", "partial")
    healed = round_(edge, peer, batch_bytes=200)
    assert healed.outcome == "ok", healed.summary()
    assert all(hub.replica.state("dossier", i) for i in ids)
    assert edge.replica.state("procedure", "2.000720")["fee"] == 59000
    assert agree(hub, edge)
    assert badge(edge).waiting == 0
    total_received = cut.ops_received + healed.ops_received
    assert total_received == 60  # every op once: none lost, none applied twice


def test_a_cut_in_the_middle_of_a_pull_resumes_from_the_persisted_cursor(hub, edge):
    peer = hub.peer(edge, max_ops=10)
    round_(edge, peer)
    start = hub.replica.feed_head()
    with hub.replica.write() as w:
        for n in range(35):
            w.append("procedure", "2.000720", "upsert", {"fee": n})
    peer.breaks.append(Break("pull", peer.calls["pull"] + 3))
    cut = round_(edge, peer)
    assert cut.outcome == "partial"
    assert cut.ops_received == 20  # two slices merged before the cut
    cursor = edge.replica.meta(CURSOR)
    assert cursor == start + 20
    logged = len(peer.log)
    healed = round_(edge, peer)
    pulls = [c for m, c in peer.log[logged:] if m == "pull"]
    assert pulls[0] == cursor  # resumed where it stopped, not from 0
    assert healed.ops_received == 15  # the rest, once
    assert edge.replica.state("procedure", "2.000720")["fee"] == 34
    assert agree(hub, edge)


def test_a_push_whose_ack_was_lost_is_not_sent_again(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    received = receive_sample(edge)
    peer.breaks.append(Break("push", 1, after=True))
    cut = round_(edge, peer)
    assert cut.outcome == "failed"
    assert hub.replica.state("dossier", received.id) is not None  # it did arrive
    healed = round_(edge, peer)
    assert healed.ops_sent == 0  # the city said it holds them: nothing is pushed twice
    assert badge(edge).waiting == 0


# --- refusals --------------------------------------------------------------------------------------


def test_a_revoked_box_is_refused_for_good_and_backs_off_the_longest(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    receive_sample(edge)
    hub.revoke(edge.identity.node)
    result = round_(edge, peer)
    assert result.outcome == "failed"
    assert result.error == REVOKED
    assert not result.retryable
    settings = settings_of(edge)
    assert next_delay_s(result, 1, settings) == settings.sync_max_backoff_s
    assert badge(edge).last_error == REVOKED
    assert badge(edge).waiting == 1


def test_a_refusal_of_the_batch_applies_nothing(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    receive_sample(edge)
    peer.breaks.append(Break("push", 1, wire.ScopeViolation("outside the write scope")))
    result = round_(edge, peer)
    assert result.outcome == "failed"
    assert not result.retryable
    assert "scope" in (result.error or "")
    assert badge(edge).waiting == 1


# --- attachments -----------------------------------------------------------------------------------


def test_a_scan_upload_resumes_after_a_cut(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    scan = pdf(5 * CHUNK + 1234)
    sha = edge.blobs.put(scan.data)
    received_with_scan(edge, scan)
    peer.breaks.append(Break("put_blob", 3))
    cut = round_(edge, peer)
    assert cut.outcome == "partial"
    assert cut.ops_sent == 2  # create + attach reached the city
    assert len(hub.parts[sha]) == 2 * CHUNK
    assert not hub.store.has(sha)
    offsets_before = len([o for m, o in peer.log if m == "put_blob"])
    healed = round_(edge, peer)
    assert healed.outcome == "ok", healed.summary()
    resumed = [o for m, o in peer.log if m == "put_blob"][offsets_before:]
    assert resumed[0] == 2 * CHUNK  # from what the city held, not from byte 0
    assert hub.store.get(sha) == scan.data
    assert healed.blobs_sent == 1


def test_a_scan_routed_from_another_commune_is_fetched_resumably_and_checked(hub, edges):
    here, there = edges(UNIT), edges(OTHER_UNIT)
    p_here, p_there = hub.peer(here), hub.peer(there)
    round_(here, p_here)
    round_(there, p_there)
    scan = pdf(3 * CHUNK + 10, seed=7)
    sha = there.blobs.put(scan.data)
    dossier = received_with_scan(there, scan, handling_unit=UNIT)  # non-territorial
    assert round_(there, p_there).outcome == "ok"
    p_here.breaks.append(Break("get_blob", 2))
    cut = round_(here, p_here)
    assert cut.outcome == "partial"
    assert here.replica.state("dossier", dossier)["handling_unit"] == UNIT
    part = here.data_dir / "incoming" / f"{sha}.part"
    assert part.stat().st_size == CHUNK
    assert not here.blobs.has(sha)
    healed = round_(here, p_here)
    assert healed.outcome == "ok", healed.summary()
    offsets = [o for m, o in p_here.log if m == "get_blob"]
    assert offsets == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]  # the cut chunk, then on from the .part
    assert here.blobs.get(sha) == scan.data
    assert not part.exists()


def test_a_damaged_scan_is_refused_and_fetched_again(hub, edges):
    here, there = edges(UNIT), edges(OTHER_UNIT)
    p_here, p_there = hub.peer(here), hub.peer(there)
    round_(here, p_here)
    round_(there, p_there)
    scan = pdf(CHUNK // 2, seed=3)
    sha = there.blobs.put(scan.data)
    received_with_scan(there, scan, handling_unit=UNIT)
    round_(there, p_there)
    part = here.data_dir / "incoming" / f"{sha}.part"
    part.parent.mkdir(exist_ok=True)
    part.write_bytes(b"garbage from an earlier cut")  # a damaged partial download
    first = round_(here, p_here)
    assert first.outcome == "partial"
    assert not here.blobs.has(sha)
    assert not part.exists()
    assert round_(here, p_here).outcome == "ok"
    assert here.blobs.get(sha) == scan.data


def test_a_scan_the_city_does_not_hold_yet_is_fetched_at_a_later_round(hub, edges):
    here, there = edges(UNIT), edges(OTHER_UNIT)
    p_here, p_there = hub.peer(here), hub.peer(there)
    round_(here, p_here)
    round_(there, p_there)
    scan = pdf(1000, seed=5)
    sha = there.blobs.put(scan.data)
    received_with_scan(there, scan, handling_unit=UNIT)
    p_there.breaks.append(Break("blob_size", p_there.calls["blob_size"] + 1))
    round_(there, p_there)  # the ops arrived, the scan did not
    early = round_(here, p_here)
    assert early.outcome == "ok"
    assert early.blobs_waiting == 1
    assert round_(there, p_there).blobs_sent == 1
    later = round_(here, p_here)
    assert later.blobs_received == 1
    assert here.blobs.get(sha) == scan.data


# --- certificates ----------------------------------------------------------------------------------


def test_a_revoked_cert_for_another_node_is_applied(hub, edges):
    here, there = edges(UNIT), edges(OTHER_UNIT)
    p_here, p_there = hub.peer(here), hub.peer(there)
    round_(there, p_there)
    received_with_scan(there, pdf(100), handling_unit=UNIT)
    round_(there, p_there)
    hub.revoke(there.identity.node)
    assert round_(here, p_here).outcome == "ok"
    # What the revoked box writes from now on is refused here too, whoever forwards it.
    receive_sample(there, handling_unit=UNIT)
    me = there.identity.node
    head = here.replica.vector()[me]
    [batch] = list(there.replica.batches({me: head}, nodes=[me]))
    with pytest.raises(RevokedNode):
        here.replica.merge(encode_batch(batch))


def test_a_forged_cert_stops_the_round(hub, edge):
    peer = hub.peer(edge)
    stranger = FakeHub(edge.data_dir.parent / "stranger")
    try:
        forged = stranger.register(stranger.identity)
        hub.certs[stranger.identity.node] = forged  # signed by another city key
        hub.units[stranger.identity.node] = "92"
        result = round_(edge, peer)
    finally:
        stranger.close()
    assert result.outcome == "failed"
    assert isinstance(result.detail, str)
    assert not result.retryable


# --- the attempt log -------------------------------------------------------------------------------


def test_the_attempt_log_verifies_and_a_tampered_record_is_detected(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    receive_sample(edge)
    peer.down = True
    round_(edge, peer)
    peer.down = False
    round_(edge, peer)
    log = records(edge)
    assert attempts.verify_chain(log, edge.identity.public_raw) == 3
    raw = sqlite3.connect(edge.data_dir / "motcua.db")
    try:
        raw.execute("UPDATE sync_attempt SET error = NULL, outcome = 'ok' WHERE id = 2")
        raw.commit()
    finally:
        raw.close()
    with pytest.raises(BadSignature, match="altered"):
        attempts.verify_chain(records(edge), edge.identity.public_raw)


# --- clocks ----------------------------------------------------------------------------------------


def test_a_box_that_woke_up_in_2000_is_calibrated_by_the_city(hub, edges):
    y2000 = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)
    edge = edges(UNIT, Clock(wall=lambda: y2000))
    assert clockcheck.check(edge.clock, 300_000).suspect
    assert reference_skew_ms(edge) is None
    result = round_(edge, hub.peer(edge))
    assert result.outcome == "ok", result.summary()  # the city's ops were not refused as "future"
    assert abs(edge.clock.wall_ms() - hub.now()) < 5_000
    skew = reference_skew_ms(edge)
    assert skew is not None
    assert skew > 25 * 365 * 86_400_000
    status = clockcheck.check(edge.clock, 300_000, reference_skew_ms=skew)
    assert status.suspect
    assert "city" in (status.reason or "")
    assert records(edge)[-1].attempt.at_ms > y2000 + 25 * 365 * 86_400_000  # recorded in city time
    received = receive_sample(edge)
    assert abs(edge.replica.state("dossier", received.id)["received_at"] - hub.now()) < 5_000


DAY_MS = 86_400_000


def test_a_clock_days_ahead_after_the_box_was_off_is_suspect_until_the_city_confirms(hub, tmp_path):
    box = hub.make_edge(tmp_path / "box", UNIT)
    assert round_(box, hub.peer(box)).outcome == "ok"  # the box's last sign of life: now
    receive_sample(box)
    box.close()

    def four_days_on() -> Node:
        return open_node(tmp_path / "box", Clock(wall=lambda: system_wall_ms() + 4 * DAY_MS))

    box = four_days_on()
    try:
        status = clockcheck.for_node(box, 300_000)
        assert status.suspect
        assert status.params == {"days": 4}
        box.close()
        box = four_days_on()  # a restart while still offline does not forget it
        assert clockcheck.for_node(box, 300_000).suspect
        # The city says what time it is: the box's time is corrected and trusted again.
        assert round_(box, hub.peer(box)).outcome == "ok"
        assert not clockcheck.for_node(box, 300_000).suspect
        assert abs(box.clock.wall_ms() - hub.now()) < 5_000
        box.close()
        box = four_days_on()  # the battery-backed clock is still 4 days ahead after a restart
        assert clockcheck.for_node(box, 300_000).suspect
        assert round_(box, hub.peer(box)).outcome == "ok"
        assert not clockcheck.for_node(box, 300_000).suspect
    finally:
        box.close()


@pytest.mark.parametrize("minutes", [-20, 20])
def test_a_clock_changed_after_the_city_set_it_is_suspect_until_the_next_round(hub, tmp_path, minutes):
    shift = [0]
    box = hub.make_edge(tmp_path / "box", UNIT, Clock(wall=lambda: system_wall_ms() + shift[0]))
    try:
        assert round_(box, hub.peer(box)).outcome == "ok"
        assert not clockcheck.for_node(box, 300_000).suspect
        shift[0] = minutes * 60_000  # someone sets the box's clock while it runs, offline
        status = clockcheck.for_node(box, 300_000)
        assert status.suspect
        assert status.params == {"minutes": abs(minutes)}
        assert round_(box, hub.peer(box)).outcome == "ok"  # the city's time sets it again
        assert not clockcheck.for_node(box, 300_000).suspect
    finally:
        box.close()


def test_a_box_switched_off_for_a_weekend_is_not_asked_about_its_clock(hub, tmp_path):
    box = hub.make_edge(tmp_path / "box", UNIT)
    assert round_(box, hub.peer(box)).outcome == "ok"
    receive_sample(box)  # Friday evening
    box.close()
    box = open_node(tmp_path / "box", Clock(wall=lambda: system_wall_ms() + int(2.6 * DAY_MS)))
    try:
        assert not clockcheck.for_node(box, 300_000).suspect  # Monday morning, no link yet
    finally:
        box.close()


def test_a_box_in_time_shows_no_drift(hub, edge):
    round_(edge, hub.peer(edge))
    skew = reference_skew_ms(edge)
    assert skew is not None
    assert abs(skew) < 5_000
    assert not clockcheck.check(edge.clock, 300_000, reference_skew_ms=skew).suspect


# --- anti-entropy ----------------------------------------------------------------------------------


def test_a_lost_slice_is_found_by_the_digests_and_exchanged_again(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    with hub.replica.write() as w:
        w.append("procedure", "2.000720", "upsert", {"fee": 4242})
    edge.replica.set_meta(CURSOR, hub.replica.feed_head())  # as if a slice had been skipped
    found = round_(edge, peer)
    assert found.digest_match is False
    assert found.outcome == "partial"
    assert "disagree" in (found.error or "")
    assert edge.replica.meta(CURSOR) == 0
    assert "disagree" in (records(edge)[-1].attempt.error or "")
    again = round_(edge, peer)
    assert again.outcome == "ok"
    assert again.digest_match is True
    assert edge.replica.state("procedure", "2.000720")["fee"] == 4242
    assert agree(hub, edge)


def test_digests_are_compared_every_digest_interval_not_every_round(hub, edge):
    peer = hub.peer(edge)
    first = round_(edge, peer, digest_interval_s=900)
    assert first.digest_match is True  # a box that never compared compares at once
    asked = peer.calls["digest"]
    receive_sample(edge)
    soon = round_(edge, peer, digest_interval_s=900)
    assert soon.outcome == "ok"
    assert soon.ops_sent == 1
    assert soon.digest_match is None
    assert peer.calls["digest"] == asked  # the city was not asked to hash the scope either
    edge.replica.set_meta(COMPARED_AT, hub.now() - 901_000)  # fifteen minutes on
    later = round_(edge, peer, digest_interval_s=900)
    assert later.digest_match is True
    assert peer.calls["digest"] == asked + 1
    edge.replica.set_meta(COMPARED_AT, hub.now() + 3_600_000)  # the clock went back since
    assert round_(edge, peer, digest_interval_s=900).digest_match is True


def test_after_a_mismatch_the_next_round_compares_whatever_the_interval(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer, digest_interval_s=900)
    with hub.replica.write() as w:
        w.append("procedure", "2.000720", "upsert", {"fee": 4242})
    edge.replica.set_meta(CURSOR, hub.replica.feed_head())  # as if a slice had been skipped
    edge.replica.set_meta(COMPARED_AT, hub.now() - 901_000)
    found = round_(edge, peer, digest_interval_s=900)
    assert found.digest_match is False
    again = round_(edge, peer, digest_interval_s=900)
    assert again.digest_match is True
    assert edge.replica.state("procedure", "2.000720")["fee"] == 4242
    assert agree(hub, edge)


def test_ops_arriving_during_the_round_do_not_count_as_a_mismatch(hub, edge):
    peer = hub.peer(edge)
    round_(edge, peer)
    original = peer.digest

    def digest_after_a_write():
        if peer.calls["digest"] == 1:
            with hub.replica.write() as w:
                w.append("procedure", "2.000720", "upsert", {"fee": 1})
        return original()

    peer.digest = digest_after_a_write  # type: ignore[method-assign]
    result = round_(edge, peer)
    assert result.outcome == "ok"
    assert result.digest_match is True
    assert edge.replica.state("procedure", "2.000720")["fee"] == 1


def test_a_node_without_a_city_records_why_it_cannot_sync(tmp_path, hub):
    from edge.node import init_node

    node = init_node(tmp_path / "alone", UNIT)
    try:
        result = sync_once(node, hub.peer(hub.make_edge(tmp_path / "x", UNIT)), load(node.data_dir))
    finally:
        node.close()
    assert result.outcome == "failed"
    assert result.error == syncclient.NOT_CONFIGURED
    assert not result.retryable


# --- the loop --------------------------------------------------------------------------------------


def test_back_off_grows_with_jitter_up_to_the_ceiling(edge):
    settings = settings_of(edge)
    ok = RoundResult(outcome="ok")
    down = RoundResult(error=NO_CONNECTION, retryable=True)
    fatal = RoundResult(error=REVOKED, retryable=False)
    assert next_delay_s(ok, 0, settings) == 60
    assert next_delay_s(down, 1, settings, rand=lambda: 1.0) == 60
    assert next_delay_s(down, 1, settings, rand=lambda: 0.0) == 30
    assert next_delay_s(down, 3, settings, rand=lambda: 1.0) == 240
    assert next_delay_s(down, 30, settings, rand=lambda: 1.0) == 900
    assert next_delay_s(fatal, 1, settings) == 900
    assert next_delay_s(None, 1, settings) == 900


def test_the_loop_runs_at_start_wakes_on_demand_and_stops(hub, edge):
    peer = hub.peer(edge)
    settings = settings_of(edge, sync_interval_s=3600)

    async def scenario() -> tuple[RoundResult | None, int]:
        loop = SyncLoop(edge, settings, lambda node: peer)
        loop.start()
        for _ in range(200):
            if loop.last is not None:
                break
            await asyncio.sleep(0.02)
        receive_sample(edge)
        woken = await asyncio.wait_for(loop.wake(), 10)
        await loop.stop()
        return woken, peer.calls["time"]

    woken, rounds = asyncio.run(scenario())
    assert rounds == 2
    assert woken is not None
    assert woken.ops_sent == 1
    assert [r.attempt.outcome for r in records(edge)] == ["ok", "ok"]


def test_the_loop_backs_off_while_the_link_is_down(hub, edge):
    peer = hub.peer(edge)
    peer.down = True
    loop_settings = settings_of(edge, sync_interval_s=3600)

    async def scenario() -> SyncLoop:
        loop = SyncLoop(edge, loop_settings, lambda node: peer)
        loop.start()
        await asyncio.wait_for(loop.wake(), 10)
        await asyncio.wait_for(loop.wake(), 10)
        await loop.stop()
        return loop

    loop = asyncio.run(scenario())
    assert loop.failures >= 2
    assert loop.last is not None
    assert loop.last.error == NO_CONNECTION
    assert all(r.attempt.outcome == "failed" for r in records(edge))


def test_peer_unreachable_errors_are_told_apart_by_class():
    assert syncclient.explain(PeerTimeout("the city server did not answer in time (ReadTimeout)")) == (
        syncclient.TIMED_OUT,
        True,
    )
    assert syncclient.explain(PeerUnavailable("the city server is in trouble (HTTP 502)"))[0] == (
        syncclient.CITY_TROUBLE
    )
    # The text no longer decides: a connection error worded like a timeout is still one.
    assert syncclient.explain(PeerUnreachable("did not answer in time")) == (syncclient.NO_CONNECTION, True)
    assert syncclient.explain(PeerRefused("no", 418)) == (syncclient.REFUSED, False)
    assert syncclient.explain(wire.ReplayedRequest("twice")) == (syncclient.REPLAYED, True)
    assert syncclient.explain(wire.ProtocolMismatch("old")) == (syncclient.TOO_OLD, False)
    assert syncclient.explain(OSError("disk full")) == (syncclient.DISK, False)


# --- the shell ---------------------------------------------------------------------------------------


def test_sync_now_from_the_shell_exits_1_when_the_link_is_down(edge, capsys):
    from ops.cli import main

    edge.close()  # the command opens the node itself
    assert main(["sync", "now", "--data", str(edge.data_dir)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("failed: 0 ops sent")
    assert NO_CONNECTION in out


def test_sync_now_from_the_shell_exits_2_without_a_city(tmp_path, capsys):
    from edge.node import init_node
    from ops.cli import main

    init_node(tmp_path / "alone", UNIT).close()
    assert main(["sync", "now", "--data", str(tmp_path / "alone")]) == 2
    assert "no city server" in capsys.readouterr().err
