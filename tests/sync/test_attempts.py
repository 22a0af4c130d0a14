"""The sync attempt log: hash-chained, signed, verifiable by anyone with the node's key."""

import msgspec
import pytest

from sync.attempts import Attempt, append, latest, records, verify_chain
from sync.errors import BadSignature
from sync.identity import Identity
from sync.replica import Replica


def attempt(at: int, outcome: str = "failed", entities: list[str] | None = None) -> Attempt:
    return Attempt(
        at_ms=at,
        peer="92-city",
        channel="http",
        ops_sent=0 if outcome == "failed" else 3,
        ops_received=0,
        bytes_sent=0,
        bytes_received=0,
        duration_ms=1200,
        outcome=outcome,
        error="Không kết nối được máy chủ thành phố" if outcome == "failed" else None,
        entities=entities or ["d1"],
    )


@pytest.fixture
def replica(tmp_path):
    r = Replica(tmp_path / "a.db", Identity.generate("31135"), [])
    yield r
    r.close()


def test_records_chain_and_verify(replica):
    for i in range(4):
        append(replica.conn, attempt(i, "failed" if i < 3 else "ok"), replica.identity.sign)
    log = records(replica.conn)
    assert [r.attempt.at_ms for r in log] == [0, 1, 2, 3]
    assert log[1].prev_hash == log[0].hash
    assert verify_chain(log, replica.identity.public_raw) == 4
    assert log[0].attempt.error == "Không kết nối được máy chủ thành phố"


def test_the_last_success_is_the_latest_one_even_when_the_clock_went_back(replica):
    """A round that succeeded while the city's clock read 2000 is still the last sync."""
    now, dead_battery = 1_795_000_000_000, 975_000_000_000
    append(replica.conn, attempt(now, "ok"), replica.identity.sign)
    append(replica.conn, attempt(dead_battery, "ok"), replica.identity.sign)
    last, last_ok = latest(replica.conn)
    assert last is not None
    assert last_ok == last.at_ms == dead_battery


def test_a_dossiers_record_lists_only_attempts_that_carried_it(replica):
    append(replica.conn, attempt(1, entities=["d1", "d2"]), replica.identity.sign)
    append(replica.conn, attempt(2, entities=["d3"]), replica.identity.sign)
    assert [r.attempt.at_ms for r in records(replica.conn, entity="d2")] == [1]


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE sync_attempt SET error = 'ok' WHERE id = 2",
        "UPDATE sync_attempt SET outcome = 'ok' WHERE id = 1",
        "DELETE FROM sync_attempt WHERE id = 2",
        "UPDATE sync_attempt SET at_ms = at_ms + 1 WHERE id = 3",
    ],
)
def test_editing_or_removing_a_record_is_detected(replica, tamper):
    for i in range(3):
        append(replica.conn, attempt(i), replica.identity.sign)
    replica.conn.execute(tamper)
    with pytest.raises(BadSignature):
        verify_chain(records(replica.conn), replica.identity.public_raw)


def test_a_log_rewritten_with_another_key_is_refused(replica):
    forger = Identity.generate("31135")
    append(replica.conn, attempt(1), forger.sign)
    with pytest.raises(BadSignature):
        verify_chain(records(replica.conn), replica.identity.public_raw)


def test_record_round_trips_through_msgpack(replica):
    record = append(replica.conn, attempt(5), replica.identity.sign)
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(record), type=type(record))
    assert again == record
