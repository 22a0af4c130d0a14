import sqlite3

import pytest

from schema.db import MIGRATIONS, migrate, version
from schema.kinds import ACCOUNT, DOSSIER, PROCEDURE, UNIT
from schema.procedures import PILOT_PROCEDURES
from schema.search import fts_query
from schema.units import province_units
from sync.clock import Stamp
from sync.errors import SchemaTooNew
from sync.fold import fold
from sync.ops import Op

T0 = 1_771_300_800_000
SHA = "c" * 64


@pytest.fixture
def conn():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn)
    yield conn
    conn.close()


def op(seq, action, payload, *, entity, at=0, kind="dossier", node="n1"):
    stamp = Stamp(T0 + at, 0).pack()
    return Op(node=node, seq=seq, stamp=stamp, kind=kind, entity=entity, action=action, payload=payload)


def dossier(entity, name, *, moves=(2, 4), citizen_id="092190012345", extra=()):
    create = {
        "code": f"31135-260217-{entity[-4:]}",
        "procedure": "1.004194",
        "receiving_unit": "31135",
        "handling_unit": "31135",
        "applicant_name": name,
        "applicant_citizen_id": citizen_id,
        "received_at": T0,
        "due_date": "2026-03-02",
        "by": "clerk1",
        "role": "clerk",
    }
    ops = [op(1, "create", create, entity=entity)]
    for i, to in enumerate(moves, start=2):
        role = "leader" if to == 9 else "clerk"
        ops.append(op(i, "transition", {"to": to, "by": "c", "role": role}, entity=entity, at=i))
    ops.extend(extra)
    state, _ = fold(DOSSIER, ops)
    return entity, state


def search(conn, text):
    return [
        row[0]
        for row in conn.execute(
            "SELECT d.applicant_name FROM dossier_fts JOIN dossiers AS d ON d.rid = dossier_fts.rowid "
            "WHERE dossier_fts MATCH ? ORDER BY d.rid",
            (fts_query(text),),
        )
    ]


def tables(conn):
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_twice_is_a_no_op(tmp_path):
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrate(conn) == [m.version for m in MIGRATIONS] == [1, 2, 3]
    assert migrate(conn) == []
    assert version(conn) == 3
    expected = {"units", "procedures", "accounts", "dossiers", "dossier_steps", "attachments", "dossier_fts"}
    assert expected <= tables(conn)
    rows = conn.execute("SELECT namespace, version FROM migrations ORDER BY version").fetchall()
    assert rows == [("schema", 1), ("schema", 2), ("schema", 3)]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_newer_database_is_refused(conn):
    conn.execute(
        "INSERT INTO migrations (namespace, version, name, applied_at) VALUES ('schema', 99, 'future', 0)"
    )
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        migrate(conn)


def test_projecting_a_dossier_fills_every_table(conn):
    scan = {"sha256": SHA, "name": "to-khai.pdf", "mime": "application/pdf", "size": 77, "by": "clerk1"}
    entity, state = dossier(
        "d-0001", "Nguyễn Văn An", moves=(2, 4, 9, 10), extra=[op(9, "attach", scan, entity="d-0001", at=9)]
    )
    DOSSIER.project(conn, [(entity, state)])
    row = conn.execute(
        "SELECT code, status, applicant_name, procedure_code, due_date, attachment_count, search, "
        "processed_at, closed_at FROM dossiers WHERE id = ?",
        (entity,),
    ).fetchone()
    assert row == (
        "31135-260217-0001",
        10,
        "Nguyễn Văn An",
        "1.004194",
        "2026-03-02",
        1,
        "31135-260217-0001 nguyen van an 092190012345",
        T0 + 4,
        T0 + 5,
    )
    steps = conn.execute(
        "SELECT position, action, from_status, to_status, actor, role, node, seq FROM dossier_steps "
        "WHERE dossier_id = ? ORDER BY position",
        (entity,),
    ).fetchall()
    assert [(s[1], s[2], s[3]) for s in steps] == [
        ("create", None, 1),
        ("transition", 1, 2),
        ("transition", 2, 4),
        ("transition", 4, 9),
        ("transition", 9, 10),
    ]
    assert steps[3][5] == "leader"
    assert conn.execute("SELECT sha256, name, size FROM attachments").fetchall() == [(SHA, "to-khai.pdf", 77)]
    assert search(conn, "nguyen") == ["Nguyễn Văn An"]
    assert search(conn, "Nguyễn văn") == ["Nguyễn Văn An"]
    assert search(conn, "0921900") == ["Nguyễn Văn An"]
    assert search(conn, "31135-260217") == ["Nguyễn Văn An"]


def test_search_finds_d_with_stroke(conn):
    DOSSIER.project(conn, [dossier("d-0001", "Nguyễn Văn An"), dossier("d-0002", "Đặng Thị Bình")])
    assert search(conn, "dang") == ["Đặng Thị Bình"]
    assert search(conn, "Đặng") == ["Đặng Thị Bình"]
    assert search(conn, "binh") == ["Đặng Thị Bình"]
    assert search(conn, "an") == ["Nguyễn Văn An"]
    assert search(conn, "thi") == ["Đặng Thị Bình"]


def test_reprojection_updates_in_place(conn):
    entity, state = dossier("d-0001", "Nguyễn Văn An", moves=(2, 4))
    DOSSIER.project(conn, [(entity, state)])
    rid = conn.execute("SELECT rid FROM dossiers").fetchone()
    renamed = {**state, "applicant_name": "Phạm Văn An", "status": 5}
    DOSSIER.project(conn, [(entity, renamed)])
    DOSSIER.project(conn, [(entity, renamed)])
    assert conn.execute("SELECT rid, status FROM dossiers").fetchall() == [(*rid, 5)]
    assert search(conn, "nguyen") == []
    assert search(conn, "pham") == ["Phạm Văn An"]
    assert conn.execute("SELECT count(*) FROM dossier_fts").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM dossier_steps").fetchone() == (3,)


def test_a_new_phone_keeps_the_search_entry_and_finds_by_it(conn):
    entity, state = dossier("d-0001", "Nguyễn Văn An")
    DOSSIER.project(conn, [(entity, state)])
    changes = conn.total_changes
    DOSSIER.project(conn, [(entity, {**state, "applicant_phone": "0292 3831 234"})])
    # One dossier row written, and nothing of the search index (no delete, no insert).
    assert conn.total_changes - changes == 1
    assert conn.execute("SELECT search LIKE '%0292 3831 234%' FROM dossiers").fetchone() == (1,)
    assert search(conn, "nguyen") == ["Nguyễn Văn An"]
    assert conn.execute("SELECT count(*) FROM dossier_fts").fetchone() == (1,)


def test_an_unchanged_dossier_writes_nothing(conn):
    entity, state = dossier("d-0001", "Nguyễn Văn An")
    DOSSIER.project(conn, [(entity, state)])
    changes = conn.total_changes
    DOSSIER.project(conn, [(entity, state)])
    assert conn.total_changes == changes


def test_a_timeline_that_got_shorter_is_trimmed(conn):
    entity, longer = dossier("d-0001", "Nguyễn Văn An", moves=(2, 4, 5))
    DOSSIER.project(conn, [(entity, longer)])
    _, shorter = dossier("d-0001", "Nguyễn Văn An", moves=(2,))
    DOSSIER.project(conn, [(entity, shorter)])
    assert conn.execute("SELECT position, to_status FROM dossier_steps ORDER BY position").fetchall() == [
        (0, 1),
        (1, 2),
    ]


def test_conflicts_from_sync_are_counted(conn):
    entity, state = dossier("d-0001", "Nguyễn Văn An")
    state["_conflicts"] = [["n1", 9, "transition", "a reason"], ["n2", 3, "set", "another"]]
    DOSSIER.project(conn, [(entity, state)])
    assert conn.execute("SELECT conflict_count FROM dossiers").fetchone() == (2,)


def test_a_dossier_needs_no_reference_data_and_an_uncreated_one_no_row(conn):
    # foreign_keys is on, and neither the procedure nor the unit has been projected.
    DOSSIER.project(conn, [dossier("d-0001", "Nguyễn Văn An"), ("d-0002", {})])
    assert conn.execute("SELECT id FROM dossiers").fetchall() == [("d-0001",)]


def test_reference_data_projections(conn):
    units = province_units(92)
    UNIT.project(
        conn,
        [
            (u.code, fold(UNIT, [op(1, "upsert", u.as_payload(), entity=u.code, kind="unit")])[0])
            for u in units
        ],
    )
    assert conn.execute("SELECT count(*) FROM units WHERE kind IN ('commune', 'ward')").fetchone() == (103,)
    assert conn.execute("SELECT name FROM units WHERE code = '31135'").fetchone() == ("Phường Ninh Kiều",)

    PROCEDURE.project(
        conn,
        [
            (p.code, fold(PROCEDURE, [op(1, "upsert", p.as_payload(), entity=p.code, kind="procedure")])[0])
            for p in PILOT_PROCEDURES
        ],
    )
    row = conn.execute(
        "SELECT processing_days, fee, json_extract(documents, '$[0].form') FROM procedures "
        "WHERE code = '1.004194'"
    ).fetchone()
    assert row == (7, 20000, "Mẫu CT01")

    create = {
        "username": "lan",
        "full_name": "Lê Thị Lan",
        "unit": "31135",
        "role": "clerk",
        "password_hash": "h",
    }
    ACCOUNT.project(
        conn, [("lan", fold(ACCOUNT, [op(1, "create", create, entity="lan", kind="account")])[0])]
    )
    assert conn.execute("SELECT username, unit_code, role, active FROM accounts").fetchall() == [
        ("lan", "31135", "clerk", 1)
    ]
