"""The fleet store's contract (central.fleet.FleetStore), held by both implementations.

Every test taking ``backend`` runs twice: on SQLite (``DIR/fleet.db``, the embedded default) and
on a real PostgreSQL (a fresh database of the test server, opened the way a city whose ``central
init`` was given ``--database`` opens it). The tests at the end are one backend's own: SQLite's
migration of an older fleet.db and its durability choices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from central.database import DatabaseConfig, open_fleet, write_config
from central.fleet import MIGRATIONS, AttemptRow, FleetStore, SqliteFleet
from sync import wire
from sync.db import connect
from sync.identity import Identity
from sync.migrations import apply as apply_migrations

DAY_MS = 86_400_000
NOW_MS = 1_795_000_000_000
CITY = Identity.generate("92")

Opener = Callable[[], FleetStore]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path) -> Iterator[Opener]:
    """Opens the store under test: each call a new store (its own connections) on the same data,
    as another process of the city would open it. Every store opened is closed at the end."""
    directory = tmp_path / "city"
    directory.mkdir()
    if request.param == "postgres":
        write_config(directory, DatabaseConfig(request.getfixturevalue("postgres_url")))
    opened: list[FleetStore] = []

    def open_store() -> FleetStore:
        store = open_fleet(directory)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: Opener) -> FleetStore:
    return backend()


def cert_for(
    node_id: str | None = None, unit: str = "31135", issued_ms: int = NOW_MS - 60 * DAY_MS
) -> wire.Cert:
    box = Identity.generate(unit)
    return wire.issue_cert(CITY, node_id or box.node, unit, box.public_raw, issued_ms, None)


def register(store: FleetStore, unit: str = "31135") -> str:
    cert = cert_for(unit=unit)
    store.register(cert)
    return cert.node


def attempt(
    node: str, at_ms: int, refused: bool = False, endpoint: str = "pull", ops: tuple[int, int] = (0, 1)
) -> AttemptRow:
    outcome, code, error = ("refused", "stale_request", "too old") if refused else ("ok", None, None)
    return AttemptRow(node, at_ms, endpoint, ops[0], ops[1], 100, 200, 5, outcome, code, error)


def times(store: FleetStore, node: str) -> list[int]:
    return [a.at_ms for a in reversed(store.attempts(node, limit=1_000_000))]


# --- registry ----------------------------------------------------------------------------------


def test_a_registered_node_is_seen_by_every_store_on_the_same_data(backend) -> None:
    first, second = backend(), backend()
    cert = cert_for(unit="31120")
    first.register(cert)
    other = register(first, "31135")
    for store in (first, second):
        found = store.registration(cert.node)
        assert found is not None
        assert (found.node, found.unit, found.public_key, found.registered_ms) == (
            cert.node,
            "31120",
            cert.public_key,
            cert.issued_ms,
        )
        assert found.cert == cert
        assert not found.revoked
        assert found.revoked_after is None
        assert [r.unit for r in store.registrations()] == ["31120", "31135"]  # by unit, then node
        assert [c.node for c in store.certs()] == sorted([cert.node, other])
        assert store.status(cert.node) == store.status(cert.node).__class__(cert.node)  # empty status
        assert store.registration("no-such-node") is None
        assert store.status("no-such-node") is None


def test_a_revocation_holds_from_the_next_read_of_any_store(backend) -> None:
    first, second = backend(), backend()
    node = register(first)
    assert second.registration(node) is not None  # read before the revocation
    registration = first.registration(node)
    assert registration is not None
    revoked_cert = wire.issue_cert(CITY, node, "31135", registration.public_key, NOW_MS, 7)
    first.mark_revoked(node, NOW_MS, 7, revoked_cert)
    seen = second.registration(node)
    assert seen is not None
    assert seen.revoked
    assert (seen.revoked_ms, seen.revoked_after) == (NOW_MS, 7)
    assert seen.cert == revoked_cert
    assert second.certs() == [revoked_cert]


# --- status ------------------------------------------------------------------------------------


def test_report_sets_the_named_fields_only(store) -> None:
    node = register(store)
    store.report(node, software="motcua 0.1.0", protocol=2, drift_ms=-1500, have=12, cursor=40)
    store.report(node, have=13, reported_error="đĩa đầy", oldest_waiting_ms=NOW_MS - 5)
    store.report(node)  # nothing to say: nothing changes
    status = store.status(node)
    assert status is not None
    assert (status.software, status.protocol, status.drift_ms, status.have, status.cursor) == (
        "motcua 0.1.0",
        2,
        -1500,
        13,
        40,
    )
    assert status.reported_error == "đĩa đầy"
    assert status.oldest_waiting_ms == NOW_MS - 5
    assert status.last_contact_ms is None
    store.report(node, reported_error=None)
    assert store.status(node).reported_error is None


def test_report_refuses_a_name_that_is_not_a_status_field(store) -> None:
    node = register(store)
    with pytest.raises(KeyError, match="not status fields"):
        store.report(node, **{"have = 0, last_error": "x"})  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="last_error"):
        store.report(node, last_error="only record_attempt writes the city's refusals")  # type: ignore[call-arg]


def test_statuses_are_every_registered_node_by_id(store) -> None:
    nodes = sorted(register(store) for _ in range(3))
    store.report(nodes[1], have=5)
    statuses = store.statuses()
    assert [s.node for s in statuses] == nodes
    assert [s.have for s in statuses] == [None, 5, None]


# --- requests ----------------------------------------------------------------------------------


def test_a_request_updates_the_nodes_status_by_its_outcome(store) -> None:
    node = register(store)
    store.record_attempt(attempt(node, NOW_MS, endpoint="hello"), contact=True)
    store.record_attempt(attempt(node, NOW_MS + 1, endpoint="push"), contact=True)
    store.record_attempt(attempt(node, NOW_MS + 2, refused=True), contact=False)
    status = store.status(node)
    assert status is not None
    assert (status.hello_ms, status.last_ok_ms, status.last_contact_ms) == (NOW_MS, NOW_MS + 1, NOW_MS + 1)
    assert (status.last_error, status.last_error_code, status.last_error_ms) == (
        "too old",
        "stale_request",
        NOW_MS + 2,
    )
    assert store.errors_by_node() == {node: 1}
    latest = store.attempts(node, limit=2)
    assert [(a.at_ms, a.endpoint, a.outcome) for a in latest] == [
        (NOW_MS + 2, "pull", "refused"),
        (NOW_MS + 1, "push", "ok"),
    ]
    assert latest[0] == attempt(node, NOW_MS + 2, refused=True)


def test_a_request_under_a_claimed_or_hostile_node_id_is_logged_and_touches_no_status(store) -> None:
    node = register(store)
    hostile = "kẻ\x00lạ" + "x" * 200
    store.record_attempt(
        AttemptRow(hostile, NOW_MS, "push", 0, 0, 0, 0, 1, "refused", "unknown_node", "bad\x00" * 200),
        contact=False,
    )
    logged = store.attempts(limit=1)[0]
    assert logged.node.startswith("kẻ")
    assert len(logged.node) == 100  # cut: a claim is not trusted with the table's space
    assert len(logged.error or "") == 500
    assert logged.error_code == "unknown_node"
    assert store.errors_by_node() == {node: 0}
    assert store.status(node).last_error is None


def test_the_node_page_reads_its_attempts_by_page_newest_first(store) -> None:
    node, other = register(store), register(store)
    for i in range(23):
        store.record_attempt(attempt(node, NOW_MS + i), contact=True)
    store.record_attempt(attempt(other, NOW_MS + 100), contact=True)
    rows, total = store.attempt_page(node, 1, 10)
    assert total == 23
    assert [a.at_ms for a in rows] == [NOW_MS + 22 - i for i in range(10)]
    rows, _ = store.attempt_page(node, 3, 10)
    assert [a.at_ms for a in rows] == [NOW_MS + 2, NOW_MS + 1, NOW_MS]
    assert store.attempt_page(node, 99, 10)[0] == rows  # past the end: the last page
    assert store.attempt_page(node, -1, 10)[0][0].at_ms == NOW_MS + 22  # before the start: the first
    assert store.attempt_page("nobody", 1, 10) == ([], 0)


def test_traffic_adds_up_the_ops_of_successful_requests_per_day(store) -> None:
    node, other = register(store), register(store)
    start = NOW_MS - 3 * DAY_MS
    store.record_attempt(attempt(node, start - 1, ops=(100, 100)), contact=True)  # the day before
    store.record_attempt(attempt(node, start, endpoint="push", ops=(5, 0)), contact=True)
    store.record_attempt(attempt(node, start + DAY_MS - 1, ops=(0, 7)), contact=True)
    store.record_attempt(attempt(node, start + 2 * DAY_MS + 5, ops=(2, 3)), contact=True)
    store.record_attempt(attempt(node, start + 2 * DAY_MS + 6, refused=True, ops=(50, 50)), contact=True)
    store.record_attempt(attempt(other, start + 5, ops=(9, 9)), contact=True)
    assert store.traffic(node, start, 3) == [(5, 7), (0, 0), (2, 3)]
    assert store.traffic(node, start, 0) == []


def test_successful_syncs_are_pushes_and_pulls_that_succeeded(store) -> None:
    node = register(store)
    store.record_attempt(attempt(node, NOW_MS - 10, endpoint="pull"), contact=True)
    store.record_attempt(attempt(node, NOW_MS - 5, endpoint="hello"), contact=True)
    store.record_attempt(attempt(node, NOW_MS + 1, endpoint="push"), contact=True)
    store.record_attempt(attempt(node, NOW_MS + 2, refused=True), contact=True)
    store.record_attempt(attempt(node, NOW_MS + 3, endpoint="pull"), contact=True)
    assert store.successful_syncs(node, NOW_MS) == (NOW_MS - 10, [NOW_MS + 1, NOW_MS + 3])
    assert store.successful_syncs(node, NOW_MS - 100) == (None, [NOW_MS - 10, NOW_MS + 1, NOW_MS + 3])


def test_attempts_older_than_the_kept_days_are_let_go_and_the_error_counter_stays(backend) -> None:
    store = backend()
    store.keep_attempts_ms = 30 * DAY_MS
    node = register(store)
    for i in range(1500):  # six weeks ago
        store.record_attempt(attempt(node, NOW_MS - 42 * DAY_MS + i, i % 3 == 0), contact=True)
    assert len(times(store, node)) == 1500  # none older than 30 days before the newest request
    for i in range(1500):  # today
        store.record_attempt(attempt(node, NOW_MS + i, i % 5 == 0), contact=True)
    kept = times(store, node)
    assert min(kept) >= NOW_MS - 30 * DAY_MS  # the six-week-old ones are gone
    assert kept[-1500:] == [NOW_MS + i for i in range(1500)]  # today's are all there
    assert store.errors_by_node()[node] == 500 + 300  # refusals counted, old ones too
    assert store.attempts(node, limit=1)[0].at_ms == NOW_MS + 1499


# --- acknowledgements --------------------------------------------------------------------------


def test_acks_are_kept_per_node_in_order(store) -> None:
    node, other = register(store), register(store)
    acks = [wire.sign_ack(CITY, node, have, b"batch %d" % have, NOW_MS + have) for have in (3, 9, 12)]
    for ack in acks:
        store.store_ack(ack)
    store.store_ack(wire.sign_ack(CITY, other, 1, b"other", NOW_MS))
    assert store.acks(node) == acks
    assert [a.node for a in store.acks(other)] == [other]
    assert store.acks("nobody") == []


# --- nonces ------------------------------------------------------------------------------------


def test_a_nonce_is_used_once_per_node_and_forgotten_after_two_windows(backend) -> None:
    first, second = backend(), backend()
    node, other = register(first), register(first)
    at = NOW_MS + 1  # not a multiple of 64: no clean-up at this request
    assert first.use_nonce(node, "n-1", at)
    assert not first.use_nonce(node, "n-1", at + 1)
    assert not second.use_nonce(node, "n-1", at + 2)  # another store (process): still a replay
    assert second.use_nonce(other, "n-1", at)  # another node's nonce
    later = at - at % 64 + 64 + 2 * wire.WINDOW_MS  # a request that cleans up
    assert first.use_nonce(node, "n-2", later)
    assert first.use_nonce(node, "n-1", later + 1)  # out of every window: forgotten


def test_of_requests_racing_with_one_nonce_on_separate_connections_exactly_one_wins(backend) -> None:
    """Two city processes (here: stores with connections of their own, used from threads) get
    the same requests at once; for every nonce exactly one of them accepts it."""
    stores = [backend(), backend()]
    node = register(stores[0])
    nonces = [f"nonce-{i}" for i in range(60)]
    threads_per_store = 3
    start = threading.Barrier(len(stores) * threads_per_store)
    wins: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def racer(store: FleetStore) -> None:
        try:
            start.wait()
            for i, nonce in enumerate(nonces):
                if store.use_nonce(node, nonce, NOW_MS + 1 + i):
                    with lock:
                        wins.append(nonce)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=racer, args=(s,)) for s in stores for _ in range(threads_per_store)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(wins) == sorted(nonces)  # each nonce won once, none twice, none lost


def test_fleet_nonces_refuse_a_replay(store) -> None:
    from central.fleet import FleetNonces

    node = register(store)
    book = FleetNonces(store)
    book.use(node, "abc", NOW_MS + 1)
    with pytest.raises(wire.ReplayedRequest, match="replay"):
        book.use(node, "abc", NOW_MS + 2)


# --- SQLite's own --------------------------------------------------------------------------------


def test_an_older_fleet_db_gets_its_error_counters_from_the_attempts_it_holds(tmp_path) -> None:
    path = tmp_path / "fleet.db"
    conn = connect(path)
    apply_migrations(conn, "fleet", MIGRATIONS[:2])  # fleet.db as the last release wrote it
    conn.execute(
        "INSERT INTO nodes (node, unit, public_key, registered_ms, cert) "
        "VALUES ('n1', '31135', x'00', 0, x'00')"
    )
    conn.execute("INSERT INTO node_status (node) VALUES ('n1')")
    for outcome in ("ok", "refused", "failed", "refused", "ok"):
        conn.execute(
            "INSERT INTO attempts (node, at_ms, endpoint, outcome) VALUES ('n1', 1, 'push', ?)", (outcome,)
        )
    conn.close()
    store = SqliteFleet(path)
    try:
        assert store.errors_by_node() == {"n1": 3}
        store.record_attempt(attempt("n1", NOW_MS, refused=True), contact=False)
        assert store.errors_by_node() == {"n1": 4}
    finally:
        store.close()


def test_who_may_sync_is_written_durably_and_the_request_log_is_not(tmp_path: Path) -> None:
    """SQLite: a registration or revocation is fsynced before it returns (synchronous FULL); a
    sync request's log line, status and ack copy are not (NORMAL): a power cut may lose those
    last lines, never who may sync. (PostgreSQL makes the same choice with synchronous_commit.)"""
    store = SqliteFleet(tmp_path / "fleet.db")
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    node = register(store)
    store.record_attempt(attempt(node, NOW_MS), contact=True)
    registration = store.registration(node)
    assert registration is not None
    cert = wire.issue_cert(CITY, node, "31135", registration.public_key, NOW_MS, 3)
    store.mark_revoked(node, NOW_MS, 3, cert)
    store.conn.set_trace_callback(None)

    def mode_at(statement: str) -> str:
        modes = [
            s
            for s in seen[: next(i for i, s in enumerate(seen) if s.startswith(statement))]
            if "synchronous" in s
        ]
        return modes[-1] if modes else "PRAGMA synchronous = NORMAL"

    assert mode_at("INSERT INTO nodes") == "PRAGMA synchronous = FULL"
    assert mode_at("UPDATE nodes SET revoked_ms") == "PRAGMA synchronous = FULL"
    assert mode_at("INSERT INTO attempts") == "PRAGMA synchronous = NORMAL"
    assert store.conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL between them
    store.close()
