"""The audit log itself: what it keeps, that it never fails a request, that it prunes."""

from __future__ import annotations

from edge.audit import AuditLog


def test_a_refusal_is_kept_with_who_where_and_why(tmp_path):
    log = AuditLog(tmp_path / "audit.db")
    log.record("login_failed", actor="lan", remote="192.168.1.23", method="POST", path="/login", code="x")
    log.record("csrf", actor="mai", remote="192.168.1.7", method="POST", path="/dossiers")
    [newest, oldest] = log.entries()
    assert (newest.event, newest.actor, newest.path) == ("csrf", "mai", "/dossiers")
    assert (oldest.event, oldest.remote, oldest.detail) == ("login_failed", "192.168.1.23", {"code": "x"})
    assert log.counts() == {"csrf": 1, "login_failed": 1}
    assert [e.event for e in log.entries(event="csrf")] == ["csrf"]
    log.close()


def test_it_survives_a_reopen(tmp_path):
    AuditLog(tmp_path / "audit.db").record("forbidden", actor="mai")
    log = AuditLog(tmp_path / "audit.db")
    assert [e.event for e in log.entries()] == ["forbidden"]
    log.close()


def test_a_flood_of_refusals_is_pruned_to_the_newest(tmp_path):
    log = AuditLog(tmp_path / "audit.db", keep_rows=100)
    for i in range(2_500):
        log.record("login_failed", actor=f"u{i}")
    entries = log.entries(limit=10_000)
    assert len(entries) <= 100 + 1_000  # pruned every 1,000 lines down to the newest 100
    assert entries[0].actor == "u2499"
    log.close()


def test_a_storage_failure_never_fails_the_refusal(tmp_path, caplog):
    log = AuditLog(tmp_path / "audit.db")
    log._conn.close()  # the disk went away under it
    log.record("csrf", actor="mai")  # does not raise
    assert "could not be written" in caplog.text
    assert "refused csrf actor=mai" in caplog.text
    log.close()
