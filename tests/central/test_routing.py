"""Routing through the city: reference data out, dossiers to their handling unit and back."""

from __future__ import annotations

from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, sync_round
from edgekit import actor, receive_sample

from edge.accounts import add_account, set_password
from edge.auth import Throttle, authenticate
from edge.dossiers import perform
from schema import PILOT_PROCEDURES
from sync import wire


def test_first_round_brings_the_reference_data_and_digests_agree(world):
    edge = world.edges[NINH_KIEU]
    done = sync_round(edge, world.peer(NINH_KIEU))
    assert done.pulled > 100  # the province's units and the pilot procedures
    assert edge.replica.state("unit", CAI_KHE)["_created"]
    assert edge.replica.state("procedure", PILOT_PROCEDURES[0].code)["_created"]
    assert done.edge_digest == done.central_digest
    # The city's admin account is of unit 92: it stays at the city.
    assert edge.replica.state("account", "quantri") is None
    again = sync_round(edge, world.peer(NINH_KIEU))
    assert (again.pushed, again.pulled) == (0, 0)


def test_a_dossier_reaches_its_handling_unit_and_its_steps_flow_back(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    peer_a, peer_b = world.peer(NINH_KIEU), world.peer(CAI_KHE)
    sync_round(ninh_kieu, peer_a)
    sync_round(cai_khe, peer_b)

    received = receive_sample(ninh_kieu, handling_unit=CAI_KHE)
    pushed = sync_round(ninh_kieu, peer_a)
    assert pushed.pushed == 1
    assert len(pushed.acks) == 1
    assert pushed.acks[0].have == ninh_kieu.replica.vector()[ninh_kieu.identity.node]
    assert world.city.fleet.acks(ninh_kieu.identity.node) == pushed.acks

    routed = sync_round(cai_khe, peer_b)
    state = cai_khe.replica.state("dossier", received.id)
    assert state is not None
    assert state["handling_unit"] == CAI_KHE
    assert routed.edge_digest == routed.central_digest

    perform(cai_khe, actor("canbo_caikhe"), received.id, "accept")
    sync_round(cai_khe, peer_b)
    back = sync_round(ninh_kieu, peer_a)
    assert back.edge_digest == back.central_digest

    timelines = [
        [(s["action"], s["to"], s["node"]) for s in node.replica.state("dossier", received.id)["steps"]]
        for node in (ninh_kieu, cai_khe, world.city.node)
    ]
    assert timelines[0] == timelines[1] == timelines[2]
    assert [t[0] for t in timelines[0]] == ["create", "transition"]


def test_a_dossier_of_one_commune_stays_away_from_the_other(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    received = receive_sample(ninh_kieu)
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    done = sync_round(cai_khe, world.peer(CAI_KHE))
    assert cai_khe.replica.state("dossier", received.id) is None
    assert world.city.node.replica.state("dossier", received.id)["receiving_unit"] == NINH_KIEU
    assert done.edge_digest == done.central_digest


def test_an_account_made_at_the_city_logs_in_at_its_commune_only(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    add_account(world.city.node, "canbo_nk", "Nguyễn Thị Lan", "clerk", PASSWORD, NINH_KIEU)
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    sync_round(cai_khe, world.peer(CAI_KHE))
    with ninh_kieu.reader() as conn:
        assert authenticate(conn, Throttle(5, 60), "canbo_nk", PASSWORD) is not None
    assert cai_khe.replica.state("account", "canbo_nk") is None

    set_password(ninh_kieu, "canbo_nk", "Moi-matkhau-2025")
    done = sync_round(ninh_kieu, world.peer(NINH_KIEU))
    assert done.pushed == 1
    with world.city.node.reader() as conn:
        assert authenticate(conn, Throttle(5, 60), "canbo_nk", "Moi-matkhau-2025") is not None
        assert authenticate(conn, Throttle(5, 60), "canbo_nk", PASSWORD) is None


def test_hello_reports_the_node_to_the_fleet(world):
    edge = world.edges[NINH_KIEU]
    peer = world.peer(NINH_KIEU)
    sync_round(edge, peer)
    receive_sample(edge)
    receive_sample(edge)
    reply = peer.hello(
        wire.Hello(
            software="motcua 0.1.0",
            head=edge.replica.vector()[edge.identity.node],
            cursor=0,
            wall_ms=edge.clock.wall_ms() - 90_000,
            backup_age_s=3600,
            last_error="no route to host",
        )
    )
    assert 85_000 <= reply.drift_ms <= 120_000
    assert {c.node for c in reply.certs} == {
        world.city.node.identity.node,
        *(e.identity.node for e in world.edges.values()),
    }
    status = world.city.fleet.status(edge.identity.node)
    assert status.software == "motcua 0.1.0"
    assert status.edge_waiting == 2
    assert status.backup_age_s == 3600
    assert status.reported_error == "no route to host"
    assert status.central_waiting > 100  # from cursor 0: all the reference data
    assert status.last_contact_ms is not None
    assert status.last_ok_ms is not None


def test_two_communes_sync_at_the_same_time(world):
    import threading

    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    made = {
        NINH_KIEU: [receive_sample(world.edges[NINH_KIEU], handling_unit=CAI_KHE).id for _ in range(15)],
        CAI_KHE: [
            receive_sample(world.edges[CAI_KHE], "canbo_caikhe", address_unit=CAI_KHE).id for _ in range(15)
        ],
    }
    errors = []

    def run(unit):
        try:
            sync_round(world.edges[unit], world.peer(unit), max_ops=5)
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(unit,)) for unit in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for unit in made:
        done = sync_round(world.edges[unit], world.peer(unit))
        assert done.edge_digest == done.central_digest
    city = world.city.node.replica
    assert all(city.state("dossier", d) for ids in made.values() for d in ids)
    assert all(world.edges[CAI_KHE].replica.state("dossier", d) for d in made[NINH_KIEU])
    assert not any(world.edges[NINH_KIEU].replica.state("dossier", d) for d in made[CAI_KHE])
