"""A conflict is readable wherever the dossier is: at both boxes and at the city, page and API."""

from __future__ import annotations

import time

import httpx
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, sync_round
from edgekit import actor, receive_sample
from starlette.testclient import TestClient

from edge.accounts import add_account
from edge.app import create_app
from edge.dossiers import perform
from edge.settings import load


def token(client: httpx.Client | TestClient, username: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_two_boxes_accept_one_routed_dossier_apart_and_every_replica_shows_the_loser(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    add_account(world.city.node, "canbo01", "Nguyễn Thị Lan", "clerk", PASSWORD, NINH_KIEU)
    add_account(world.city.node, "canbo_caikhe", "Phạm Thu Hà", "clerk", PASSWORD, CAI_KHE)
    peers = {unit: world.peer(unit) for unit in (NINH_KIEU, CAI_KHE)}
    sync_round(ninh_kieu, peers[NINH_KIEU])
    sync_round(cai_khe, peers[CAI_KHE])
    received = receive_sample(ninh_kieu, handling_unit=CAI_KHE)
    sync_round(ninh_kieu, peers[NINH_KIEU])
    sync_round(cai_khe, peers[CAI_KHE])

    # The link is down: Ninh Kiều accepts it, then Cái Khế, offline, accepts it too and tells the
    # citizen when to come back.
    perform(ninh_kieu, actor("canbo01"), received.id, "accept")
    time.sleep(0.01)
    perform(cai_khe, actor("canbo_caikhe"), received.id, "accept", note="Hẹn trả kết quả ngày 20")
    for _ in range(2):  # the link heals
        sync_round(cai_khe, peers[CAI_KHE])
        sync_round(ninh_kieu, peers[NINH_KIEU])

    lost = cai_khe.replica.ops_of("dossier", received.id)[-1]
    assert lost.node == cai_khe.identity.node
    seen = {}
    with httpx.Client(base_url=world.url, timeout=30) as city:
        seen["city"] = city.get(f"/api/v1/dossiers/{received.id}", headers=token(city, "quantri")).json()
    for unit, node, clerk in ((NINH_KIEU, ninh_kieu, "canbo01"), (CAI_KHE, cai_khe, "canbo_caikhe")):
        with TestClient(create_app(load(node.data_dir), node)) as box:
            seen[unit] = box.get(f"/api/v1/dossiers/{received.id}", headers=token(box, clerk)).json()

    expected = [
        {
            "node": lost.node,
            "seq": lost.seq,
            "action": "transition",
            "actor": "canbo_caikhe",
            "role": "clerk",
            "at": lost.hlc.wall,
            "note": "Hẹn trả kết quả ngày 20",
            "reason": "hồ sơ đã ở trạng thái 2 (Được tiếp nhận)",
            "to_status": 2,
            "handling_unit": None,
            "due_date": None,
        }
    ]
    assert seen["city"]["conflicts"] == seen[NINH_KIEU]["conflicts"] == seen[CAI_KHE]["conflicts"] == expected
    assert seen["city"]["status"] == 2
