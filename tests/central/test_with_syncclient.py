"""The edge's real sync client (edge/syncclient.py) against the real city server."""

from __future__ import annotations

import hashlib
import os

from centralkit import CAI_KHE, NINH_KIEU
from edgekit import CLOCK_OK, actor, sample_input

from edge.dossiers import perform, receive
from edge.settings import load
from edge.syncclient import sync_once
from edge.uploads import check_scan


def test_two_communes_and_the_city_converge_with_the_real_client(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]

    def round_of(unit):
        edge = world.edges[unit]
        result = sync_once(edge, world.peer(unit), load(edge.data_dir, digest_interval_s=0))
        assert result.ok, result.summary()
        assert result.digest_match is True
        return result

    round_of(NINH_KIEU)
    round_of(CAI_KHE)
    data = b"%PDF-1.4\n" + os.urandom(300_000)
    scan = check_scan("don.pdf", data, 15 << 20)
    received = receive(ninh_kieu, actor("canbo01"), sample_input(handling_unit=CAI_KHE), [scan], CLOCK_OK)
    sent = round_of(NINH_KIEU)
    assert sent.blobs_sent == 1
    assert len(sent.acks) == 1
    got = round_of(CAI_KHE)
    assert got.blobs_received == 1
    assert cai_khe.blobs.get(hashlib.sha256(data).hexdigest()) == data

    perform(cai_khe, actor("canbo_caikhe"), received.id, "accept")
    round_of(CAI_KHE)
    round_of(NINH_KIEU)
    assert ninh_kieu.replica.state("dossier", received.id)["status"] == 2
    assert world.city.node.replica.state("dossier", received.id) == cai_khe.replica.state(
        "dossier", received.id
    )
