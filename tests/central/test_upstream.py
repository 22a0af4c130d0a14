"""Upstream, in process against a real simulated portal on loopback: the outbox written by the
fold, the sender's create/update/lookup, faults, dead letters, blocked configuration, receipts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from centralkit import CAI_KHE, NINH_KIEU, World, serving, sync_round
from edgekit import PASSWORD, actor, csrf_of, receive_sample
from starlette.testclient import TestClient

from central.app import create_central_app
from central.upstream import mapping
from central.upstream.adapter import Exchange, redact
from central.upstream.codes import parse_sector_codes, parse_unit_codes
from central.upstream.dvcqg import DvcqgAdapter
from central.upstream.lgsp import LgspAdapter
from central.upstream.outbox import pending_after
from central.upstream.receipts import verify_receipts
from central.upstream.sender import Sender
from central.upstream.simulator import create_simulator
from central.upstream.store import DEAD, UPSTREAM_FILE, AdapterConfig, UpstreamStore
from edge.dossiers import perform
from edge.errors import ConfigError
from edge.settings import load
from schema.procedures import PILOT_PROCEDURES
from sync.errors import BadSignature

UNIT_CODES = {NINH_KIEU: "000.31.35.H13", CAI_KHE: "000.31.20.H13"}
SECTORS = {p.sector: f"LV{i:03d}" for i, p in enumerate(PILOT_PROCEDURES, start=1)}
LGSP_KEYS = "access-key-1\nsecret-key-1"


_OPEN: list[UpstreamStore | Sender | LgspAdapter | DvcqgAdapter] = []


@pytest.fixture(autouse=True)
def close_what_was_opened() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def portal() -> Iterator[tuple[str, httpx.Client]]:
    with (
        serving(create_simulator("dvcqg", "motcua", "mat-khau-cong")) as url,
        httpx.Client(base_url=url) as control,
    ):
        yield url, control


def _store(world: World) -> UpstreamStore:
    _sync(world)  # the box learns the procedures
    store = UpstreamStore(Path(world.city.node.data_dir) / UPSTREAM_FILE)
    _OPEN.append(store)
    store.set_codes("unit", UNIT_CODES, 0)
    store.set_codes("sector", SECTORS, 0)
    return store


def _sender(
    world: World, store: UpstreamStore, url: str, kind: str = "dvcqg", clock: Clock | None = None
) -> Sender:
    config = AdapterConfig(kind, kind, url, "motcua", "unused", 1000.0)
    store.add_adapter(config, 0)

    def factory(on_exchange: object) -> object:
        if kind == "dvcqg":
            return DvcqgAdapter(url, "motcua", "mat-khau-cong", on_exchange)  # type: ignore[arg-type]
        return LgspAdapter(url, "motcua", LGSP_KEYS, on_exchange)  # type: ignore[arg-type]

    sender = Sender(
        config,
        store,
        world.city.node.replica,
        world.city.node.identity.sign,
        factory,  # type: ignore[arg-type]
        now_ms=clock or Clock(),
        rng=random.Random(7),
    )
    _OPEN.append(sender)
    return sender


def _sync(world: World, *units: str) -> None:
    for unit in units or (NINH_KIEU,):
        peer = world.peer(unit)
        sync_round(world.edges[unit], peer)


def held(control: httpx.Client) -> dict[str, dict]:
    return dict(control.get("/_sim/state").json()["dossiers"])


def test_the_fold_writes_the_outbox_coalesced_per_dossier_and_op(world):
    _sync(world)
    received = receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    with world.city.node.replica.reading() as conn:
        first = pending_after(conn, 0, 100)
    assert [(d, op) for d, op, _, _ in first] == [(received.id, "sync")]
    perform(world.edges[NINH_KIEU], actor("canbo01"), received.id, "accept")
    perform(world.edges[NINH_KIEU], actor("canbo01"), received.id, "start")
    _sync(world)
    with world.city.node.replica.reading() as conn:
        rows = pending_after(conn, 0, 100)
    # One row per (dossier, op), the newest stamp, past every serial before it.
    assert sorted(op for d, op, _, _ in rows) == ["progress", "sync"]
    state = world.city.node.replica.state("dossier", received.id)
    assert {stamp for _, _, stamp, _ in rows} == {state["_stamp"]}
    assert min(serial for *_, serial in rows) > first[0][3]


def test_a_dossier_reaches_the_portal_created_once_then_updated_with_its_steps(world, portal):
    url, control = portal
    store = _store(world)
    sender = _sender(world, store, url)
    received = receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    sender.round()
    code = f"000.31.35.H13-{received.code.rsplit('-', 2)[1]}-{received.code.rsplit('-', 1)[1]}"
    dossiers = held(control)
    assert list(dossiers) == [code]
    assert dossiers[code]["record"]["TrangThaiHoSo"] == "1"
    assert dossiers[code]["record"]["MaTTHC"] == "2.000720"
    for action in ("accept", "start", "processed"):
        who = "lanhdao01" if action == "processed" else "canbo01"
        perform(world.edges[NINH_KIEU], actor(who), received.id, action)
    _sync(world)
    sender.round()
    sender.round()
    after = held(control)[code]
    assert (after["creates"], after["updates"], after["record"]["TrangThaiHoSo"]) == (1, 1, "9")
    assert after["steps"][-1]["TrangThai"] == "9"
    assert store.items() == []
    records = store.receipts()
    assert verify_receipts(records, world.city.node.identity.public_raw) == len(records)
    assert all("mat-khau-cong" not in repr(r.receipt) for r in records)
    assert [r.receipt.service for r in store.receipts(received.id)] == [
        "auth",
        "DongBoHoSoMC",
        "DongBoHoSoMC",
        "CapNhatTienDoHoSoMC",
    ]


def test_a_cut_after_the_portal_committed_is_looked_up_and_updated_not_created_twice(world, portal):
    url, control = portal
    store = _store(world)
    clock = Clock()
    sender = _sender(world, store, url, clock=clock)
    received = receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    control.post("/_sim/faults", json={"cut_after_commit": 1})
    sender.round()
    assert store.delivered("dvcqg", received.id).created == "unknown"
    clock.ms += 3_600_000
    sender.round()
    dossiers = held(control)
    [code] = dossiers
    assert (dossiers[code]["creates"], dossiers[code]["updates"]) == (1, 1)
    services = [r.receipt.service for r in store.receipts(received.id)]
    assert services[-2:] == ["TraCuuHoSo", "DongBoHoSoMC"]
    assert store.items() == []


def test_faults_are_retried_and_refusals_become_dead_letters_with_the_portals_message(world, portal):
    url, control = portal
    store = _store(world)
    clock = Clock()
    sender = _sender(world, store, url, clock=clock)
    good = receive_sample(world.edges[NINH_KIEU])
    bad = receive_sample(world.edges[NINH_KIEU], applicant_name="Người Bị Từ Chối")
    _sync(world)
    control.post(
        "/_sim/faults", json={"refuse_names": ["Người Bị Từ Chối"], "rate_limit": 1, "retry_after": 30}
    )
    sender.round()
    # The 429 took the first request; the portal's Retry-After (30 s) is when it goes again.
    [waiting] = store.items(state="wait")
    assert "429" in (waiting.message or "")
    clock.ms += 29_000
    assert store.due("dvcqg", clock.ms) == []
    clock.ms += 2_000
    assert [i.dossier for i in store.due("dvcqg", clock.ms)] == [waiting.dossier]
    control.post("/_sim/faults", json={"expire_sessions": True, "fail": 1})
    for _ in range(3):
        sender.round()
        clock.ms += 600_000
    dead = store.items(state=DEAD)
    assert [(i.dossier, i.error_code) for i in dead] == [(bad.id, "02")]
    assert "từ chối" in (dead[0].message or "")
    assert [d["record"]["ChuHoSo"] for d in held(control).values()] == ["Nguyễn Văn An"]
    assert store.delivered("dvcqg", good.id).created == "yes"
    # Sent again after the portal stops refusing it.
    control.post("/_sim/faults", json={"refuse_names": []})
    assert store.retry(clock.ms, all_dead=True) == 1
    sender.round()
    assert len(held(control)) == 2
    assert store.items() == []


def test_a_unit_without_an_electronic_identifier_blocks_its_dossiers_until_imported(world, portal):
    url, control = portal
    _sync(world)
    store = UpstreamStore(Path(world.city.node.data_dir) / UPSTREAM_FILE)
    _OPEN.append(store)
    store.set_codes("sector", SECTORS, 0)
    sender = _sender(world, store, url)
    receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    sender.round()
    [item] = store.items()
    assert item.state == "blocked"
    assert "31135" in (item.message or "")
    store.set_codes("unit", UNIT_CODES, sender.now_ms())
    sender.round()
    assert store.items() == []
    assert len(held(control)) == 1


def test_the_lgsp_shape_speaks_through_the_same_seam(world):
    with serving(create_simulator("lgsp", "motcua", LGSP_KEYS)) as url, httpx.Client(base_url=url) as control:
        store = _store(world)
        clock = Clock()
        sender = _sender(world, store, url, "lgsp", clock)
        received = receive_sample(world.edges[NINH_KIEU])
        _sync(world)
        control.post("/_sim/faults", json={"cut_after_commit": 1})
        sender.round()
        clock.ms += 3_600_000
        perform(world.edges[NINH_KIEU], actor("canbo01"), received.id, "refuse", note="Thiếu giấy tờ")
        _sync(world)
        sender.round()
        sender.round()
        [record] = held(control).values()
        assert (record["creates"], record["record"]["TrangThaiHoSo"]) == (1, "3")
        assert store.items() == []
        # Wrong keys: 403, kept waiting (configuration), never a dead letter.
        bad = LgspAdapter(url, "motcua", "x\ny", _unused)
        _OPEN.append(bad)
        assert bad.lookup("000.31.35.H13", "x").verdict == "denied"


def test_receipts_that_were_altered_do_not_verify(world, portal):
    url, _ = portal
    store = _store(world)
    sender = _sender(world, store, url)
    receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    sender.round()
    second = store.receipts()[1]
    assert second.receipt.verdict == "ok"
    altered = msgspec.structs.replace(second.receipt, verdict="refused", message="never sent")
    store.conn.execute(
        "UPDATE receipt SET body = ? WHERE id = ?", (msgspec.msgpack.encode(altered), second.id)
    )
    with pytest.raises(BadSignature):
        verify_receipts(store.receipts(), world.city.node.identity.public_raw)


def test_mapping_dates_are_vietnam_time_and_codes_come_from_the_unit():
    codes = mapping.Codes({"31135": "000.31.35.H13"}, {"Đất đai": "G09"})
    assert mapping.stamp_text(1_767_225_600_000) == "20260101070000"  # 00:00 UTC is 07:00 in Hà Nội
    assert mapping.day_text("2026-02-17") == "20260217170000"
    state = {"code": "31135-260217-0001", "receiving_unit": "31135"}
    assert mapping.portal_code(state, codes) == "000.31.35.H13-260217-0001"
    with pytest.raises(mapping.MissingCode):
        mapping.portal_code({"code": "31120-260217-0001"}, codes)


def _unused(exchange: Exchange) -> None:
    pass


def test_city_it_sees_the_upstream_page_and_sends_a_refused_dossier_again(world, portal):
    url, control = portal
    store = _store(world)
    sender = _sender(world, store, url)
    good = receive_sample(world.edges[NINH_KIEU])
    bad = receive_sample(world.edges[NINH_KIEU], applicant_name="Người Bị Từ Chối")
    _sync(world)
    control.post("/_sim/faults", json={"refuse_names": ["Người Bị Từ Chối"]})
    sender.round()
    app = create_central_app(load(world.city.node.data_dir), world.hub, upstream=store)
    with TestClient(app) as client:
        form = client.get("/login")
        client.post("/login", data={"username": "quantri", "password": PASSWORD, "csrf": csrf_of(form.text)})
        page = client.get("/fleet/upstream")
        assert page.status_code == 200
        csrf = csrf_of(page.text)
        assert "Đồng bộ lên Cổng Dịch vụ công quốc gia" in page.text
        assert 'hx-get="/fleet/upstream/table"' in page.text
        dead_row = page.text.split(f'data-dossier="{bad.id}"')[1].split("</tr>")[0]
        assert "từ chối" in dead_row
        assert "Gửi lại" in dead_row
        # Decision 766's share, from receipts: one of the two dossiers is on the portal.
        share = page.text.split('data-unit="31135"')[1].split("</tr>")[0]
        assert "<td>2</td><td>1</td><td>50,0 %</td>" in share
        assert "Đã đồng bộ lên Cổng DVCQG (dvcqg) lúc" in client.get(f"/dossiers/{good.id}").text
        assert "Cổng DVCQG (dvcqg) từ chối: [02]" in client.get(f"/dossiers/{bad.id}").text
        metrics = client.get("/metrics").text
        assert 'motcua_upstream_dead_letters{adapter="dvcqg"} 1.0' in metrics
        assert 'motcua_upstream_synced{adapter="dvcqg"} 1.0' in metrics
        # A clerk may not see it; the form needs its CSRF token.
        assert client.post("/fleet/upstream/retry", data={"dossier": bad.id}).status_code == 403
        answer = client.post(
            "/fleet/upstream/retry", data={"dossier": bad.id, "csrf": csrf}, follow_redirects=False
        )
        assert answer.status_code == 303
    assert [i.state for i in store.items()] == ["wait"]
    control.post("/_sim/faults", json={"refuse_names": []})
    sender.round()
    assert len(held(control)) == 2


def test_a_portal_message_that_echoes_a_credential_is_stored_without_it(world):
    with serving(create_simulator("dvcqg", "motcua", "mat-khau-cong")) as url:
        store = _store(world)
        seen: list[Exchange] = []
        adapter = DvcqgAdapter(url, "motcua", "mat-khau-sai", seen.append)
        _OPEN.append(adapter)
        answer = adapter.lookup("000.31.35.H13", "x")
        assert answer.verdict == "denied"
    # The login was refused: the exchange is recorded, the password is not.
    assert [e.service for e in seen] == ["auth"]
    assert all("mat-khau-sai" not in (e.message or "") for e in seen)
    assert redact("sai mật khẩu mat-khau-sai cho motcua", "mat-khau-sai") == "sai mật khẩu *** cho motcua"
    assert store.receipts() == []


def test_code_files_are_checked_whole_and_every_problem_is_named():
    text = "# codes\nunit,electronic_id\n31135,000.31.35.H13\n99999,000.99\n31120,bad code!\n"
    text += "31135,000.31.35.H13\n"
    with pytest.raises(ConfigError) as refused:
        parse_unit_codes(text, {"31135", "31120"})
    message = str(refused.value)
    assert "line 4: unit '99999' is not a unit of the city" in message
    assert "line 5: 'bad code!' is not an electronic identifier code" in message
    assert "line 6: unit 31135 appears twice" in message
    assert parse_unit_codes("unit,electronic_id\n31135,000.31.35.H13\n", {"31135"}) == {
        "31135": "000.31.35.H13"
    }
    with pytest.raises(ConfigError, match="header sector,code"):
        parse_sector_codes("name,code\nĐất đai,G09\n")
    assert parse_sector_codes('sector,code\n"Đăng ký, quản lý cư trú",G01\n') == {
        "Đăng ký, quản lý cư trú": "G01"
    }


def test_a_portal_code_another_dossier_went_under_blocks_instead_of_overwriting(world, portal):
    url, control = portal
    store = _store(world)
    sender = _sender(world, store, url)
    first = receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    sender.round()
    [code] = held(control)
    # A second dossier whose clerk typed the first one's portal code.
    second = receive_sample(world.edges[NINH_KIEU], applicant_name="Trần Văn Bình")
    with world.edges[NINH_KIEU].replica.write() as w:
        w.append("dossier", second.id, "set", {"portal_code": code})
    _sync(world)
    sender.round()
    blocked = [i for i in store.items() if i.dossier == second.id]
    assert [i.state for i in blocked] == ["blocked"]
    assert first.id in (blocked[0].message or "")
    assert held(control)[code]["record"]["ChuHoSo"] == "Nguyễn Văn An"


def test_what_was_sent_for_a_dossier_is_printable_and_its_chain_verified(world, portal):
    url, control = portal
    store = _store(world)
    sender = _sender(world, store, url)
    received = receive_sample(world.edges[NINH_KIEU])
    _sync(world)
    control.post("/_sim/faults", json={"fail": 1})
    sender.round()
    store.retry(sender.now_ms(), dossier=received.id)
    sender.round()
    app = create_central_app(load(world.city.node.data_dir), world.hub, upstream=store)
    with TestClient(app) as client:
        form = client.get("/login")
        client.post("/login", data={"username": "quantri", "password": PASSWORD, "csrf": csrf_of(form.text)})
        assert f"/fleet/upstream/dossiers/{received.id}" in client.get(f"/dossiers/{received.id}").text
        page = client.get(f"/fleet/upstream/dossiers/{received.id}").text
        assert "nối tiếp nhau không đứt đoạn" in page
        assert page.count('data-verdict="retry"') == 1
        assert page.count('data-verdict="ok"') == 2  # the login and the record
        assert "HTTP 500" in page
        store.conn.execute("UPDATE receipt SET hash = zeroblob(32) WHERE id = 1")
        assert "không kiểm chứng được" in client.get(f"/fleet/upstream/dossiers/{received.id}").text
        assert client.get("/fleet/upstream/dossiers/nope").status_code == 404
