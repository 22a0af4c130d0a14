"""fleet.db keeps a bounded history: a fleet syncing every minute writes ~300,000 attempts a day."""

from __future__ import annotations

from central.fleet import MIGRATIONS, AttemptRow, FleetStore
from central.fleetviews import errors_by_node, fleet_reader
from sync import wire
from sync.db import connect
from sync.identity import Identity
from sync.migrations import apply as apply_migrations

DAY_MS = 86_400_000
NOW_MS = 1_795_000_000_000


def register(store: FleetStore) -> str:
    city, box = Identity.generate("92"), Identity.generate("31135")
    store.register(wire.issue_cert(city, box.node, "31135", box.public_raw, NOW_MS - 60 * DAY_MS, None))
    return box.node


def attempt(node: str, at_ms: int, refused: bool) -> AttemptRow:
    outcome, code = ("refused", "stale_request") if refused else ("ok", None)
    return AttemptRow(node, at_ms, "pull", 0, 1, 100, 200, 5, outcome, code, None)


def times(store: FleetStore) -> list[int]:
    return [int(at) for (at,) in store.conn.execute("SELECT at_ms FROM attempts ORDER BY id")]


def test_attempts_older_than_the_kept_days_are_let_go_and_the_error_counter_stays(tmp_path) -> None:
    store = FleetStore(tmp_path / "fleet.db", keep_attempts_days=30)
    try:
        node = register(store)
        for i in range(1500):  # six weeks ago
            store.record_attempt(attempt(node, NOW_MS - 42 * DAY_MS + i, i % 3 == 0), contact=True)
        assert len(times(store)) == 1500  # none older than 30 days before the newest request
        for i in range(1500):  # today
            store.record_attempt(attempt(node, NOW_MS + i, i % 5 == 0), contact=True)
        kept = times(store)
        assert min(kept) >= NOW_MS - 30 * DAY_MS  # the six-week-old ones are gone
        assert kept[-1500:] == [NOW_MS + i for i in range(1500)]  # today's are all there
        with fleet_reader(store) as conn:
            assert errors_by_node(conn)[node] == 500 + 300  # refusals counted, old ones too
        assert store.attempts(node, limit=1)[0].at_ms == NOW_MS + 1499
    finally:
        store.close()


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
    store = FleetStore(path)
    try:
        with fleet_reader(store) as reader:
            assert errors_by_node(reader) == {"n1": 3}
        store.record_attempt(attempt("n1", NOW_MS, refused=True), contact=False)
        with fleet_reader(store) as reader:
            assert errors_by_node(reader) == {"n1": 4}
    finally:
        store.close()


def test_who_may_sync_is_written_durably_and_the_request_log_is_not(tmp_path) -> None:
    """A registration or revocation is fsynced before it returns (synchronous FULL); a sync
    request's log line, status and ack copy are not (NORMAL): a power cut may lose those last
    lines, never who may sync."""
    store = FleetStore(tmp_path / "fleet.db")
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    node = register(store)
    store.record_attempt(attempt(node, NOW_MS, refused=False), contact=True)
    city = Identity.generate("92")
    registration = store.registration(node)
    assert registration is not None
    cert = wire.issue_cert(city, node, "31135", registration.public_key, NOW_MS, 3)
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
