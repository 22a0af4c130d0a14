"""Backup and restore with the real litestream binary: a dead box costs seconds of work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge import backupstate
from edge.node import init_node, open_node
from ops import backup
from ops.cli import main

UNIT = "31135"
ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{root!r}, {edgekit!r}]
    from edge.dossiers import receive
    from edge.node import open_node
    from edge.uploads import Scan
    from edgekit import CLOCK_OK, actor, sample_input

    node = open_node(sys.argv[1])
    for i in range(10**6):
        # A burst with scans, a pause (replication catches up), then a slow trickle until killed.
        data = b"%PDF-1.4\\n" + bytes([i % 250]) * 3000
        scans = [Scan(f"s{{i}}.pdf", "application/pdf", data)] if i < 15 else []
        made = sample_input(applicant_name=f"Nguyễn Văn {{i}}")
        done = receive(node, actor("canbo01"), made, scans, CLOCK_OK)
        print(done.id, time.time(), flush=True)
        time.sleep(4 if i == 14 else 0.15 if i > 14 else 0)
    """
)


def start(args: list[str], **kwargs: object) -> subprocess.Popen[str]:
    # A session of its own: SIGKILL to its group kills litestream beside `motcua backup run`.
    return subprocess.Popen(args, start_new_session=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def kill(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def ops_of(db: Path) -> set[tuple[str, int, bytes]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT n.node, o.seq, o.body FROM sync_op o JOIN sync_node n ON n.id = o.node"
        ).fetchall()
    finally:
        conn.close()
    return {(str(n), int(s), bytes(b)) for n, s, b in rows}


@pytest.mark.slow
def test_replicate_kill_restore_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, new = tmp_path / "box", tmp_path / "new-disk"
    node = init_node(data, UNIT)
    node.audit.record("login_failed", actor="canbo01", remote="192.168.1.23", reason="wrong password")
    node.close()
    replica = tmp_path / "usb" / "backup"
    assert main(["backup", "config", "--data", str(data), "--replica", replica.as_uri()]) == 0

    runner = start(
        [sys.executable, "-m", "ops.cli", "backup", "run", "--data", str(data)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), edgekit=str(ROOT / "tests" / "edge")), encoding="utf-8")
    writer = start([sys.executable, str(script), str(data)], stdout=subprocess.PIPE)
    written: dict[str, float] = {}
    try:
        assert writer.stdout is not None
        deadline = time.monotonic() + 15
        while len(written) < 30 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            dossier, at = line.split()
            written[dossier] = float(at)
    finally:
        kill(writer)  # the box dies: writer and replication at once
        killed_at = time.time()
        kill(runner)
        assert writer.stdout is not None
        writer.stdout.close()
    assert len(written) >= 30, "the writer did not write"

    age = backupstate.backup_age_s(data)
    assert age is not None
    assert age < 30
    assert main(["backup", "status", "--data", str(data)]) == 0
    assert main(["backup", "restore", "--data", str(data), "--to", str(new)]) == 0
    assert backup.integrity_check(new / "motcua.db") == "ok"
    assert sorted(p.name for p in new.glob("*.db")) == ["audit.db", "motcua.db", "sessions.db"]

    original, restored = open_node(data), open_node(new)
    try:
        got = {entity for (kind, entity) in restored.replica.states("dossier")}
        assert got <= set(written)
        # Everything written before the pause is back, with its scans: state and op for op.
        burst = list(written)[:15]
        assert set(burst) <= got
        for dossier in got:
            assert restored.replica.state("dossier", dossier) == original.replica.state("dossier", dossier)
            assert restored.replica.ops_of("dossier", dossier) == original.replica.ops_of("dossier", dossier)
        for sha in original.blobs.digests():
            assert restored.blobs.get(sha) == original.blobs.get(sha)
        assert ops_of(new / "motcua.db") <= ops_of(data / "motcua.db")
        assert restored.replica.op_count() <= original.replica.op_count()
        if restored.replica.op_count() == original.replica.op_count():
            assert restored.replica.digest() == original.replica.digest()
        # Who was refused before the box died is still on record on the new disk.
        refused = restored.audit.entries(event="login_failed")
        assert [(e.actor, e.remote) for e in refused] == [("canbo01", "192.168.1.23")]
        last = max(written[d] for d in got)
        recovery_point_s = killed_at - last
        lost = len(written) - len(got)
        print(
            f"recovery point: {recovery_point_s:.1f} s before the kill "
            f"({lost} of {len(written)} dossiers lost)"
        )
        assert recovery_point_s < 30
    finally:
        original.close()
        restored.close()

    out = capsys.readouterr().out
    assert "recovery point" in out
    assert "integrity_check ok" in out
    # A second restore would overwrite the database: refused; so is restoring into the live box.
    assert main(["backup", "restore", "--data", str(data), "--to", str(new)]) == 2
    assert main(["backup", "restore", "--data", str(data), "--to", str(data)]) == 2
    with capsys.disabled():
        print(f"\n  recovery point {recovery_point_s:.1f} s, {lost} dossier(s) lost")


def test_config_defaults_next_to_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "box"
    init_node(data, UNIT).close()
    path, url, defaulted = backup.write_config(data)
    assert defaulted
    assert url == (tmp_path / "backup" / "box").as_uri()
    names = ("motcua.db", "audit.db", "sessions.db")
    assert backupstate.read_config(data).dbs == [(data / name).resolve() for name in names]
    assert path.read_text(encoding="utf-8").startswith("{")
    assert (tmp_path / "backup" / "box" / "node" / "node.key").stat().st_mode & 0o077 == 0
    assert backupstate.backup_age_s(data) is None  # nothing replicated yet
    with pytest.raises(backup.BackupError):
        backup.write_config(data, "ftp://example.org/x")
