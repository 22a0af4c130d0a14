"""The city verifies a box's transmission record: the screenshot of the field report, replaced."""

from __future__ import annotations

import base64
import json

import pytest
from centralkit import NINH_KIEU
from edgekit import receive_sample

from central.records import verify_record
from edge.settings import load
from edge.syncclient import sync_once
from edge.views.sync import record_json
from ops.cli import main
from sync import attempts
from sync.errors import BadSignature, PeerUnreachable, UnknownNode


class Down:
    """A link that is down: every call fails as a cut cable does."""

    sent = received = 0

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise PeerUnreachable("no connection to the city server (ConnectError)")

        return fail


def exported(edge, dossier):
    with edge.reader() as conn:
        log = attempts.records(conn)
    return record_json(edge.identity.node, edge.identity.public_raw, dossier, log)


@pytest.fixture
def record(world):
    edge = world.edges[NINH_KIEU]
    settings = load(edge.data_dir)
    assert sync_once(edge, world.peer(NINH_KIEU), settings).ok  # the reference data arrives
    dossier = receive_sample(edge).id
    assert not sync_once(edge, Down(), settings).ok
    assert sync_once(edge, world.peer(NINH_KIEU), settings).ok
    return exported(edge, dossier), dossier


def test_the_city_verifies_a_record_with_the_failure_and_its_own_acknowledgement(world, record):
    document, dossier = record
    result = verify_record(world.city, document)
    assert result.dossier == dossier
    assert [r.attempt.outcome for r in result.concerning] == ["failed", "ok"]
    assert result.acks == 1
    assert result.records >= 2


def test_an_edited_record_is_refused(world, record):
    document, _ = record
    edited = json.loads(json.dumps(document))
    edited["records"][-2]["attempt"]["error"] = None  # hide the failure
    with pytest.raises(BadSignature):
        verify_record(world.city, edited)


def test_a_record_signed_by_another_key_is_refused(world, record):
    document, _ = record
    forged = dict(document, public_key=base64.b64encode(b"\x01" * 32).decode())
    with pytest.raises(BadSignature, match="never registered"):
        verify_record(world.city, forged)
    with pytest.raises(UnknownNode):
        verify_record(world.city, dict(document, node="31135-0000000000000000"))


def test_the_cli_prints_the_verified_record(world, record, tmp_path, capsys):
    document, dossier = record
    path = tmp_path / "record.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    world.city.close()  # the CLI opens the city directory itself
    assert main(["record", "verify", str(path), "--data", str(world.city.node.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "chain intact" in out
    assert f"dossier {dossier}: 2 attempt(s), 1 city acknowledgement(s)" in out
