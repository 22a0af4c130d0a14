"""The audit log: every refusal that may be an attack, kept where city IT and the technician can
read it (``motcua audit --data DIR``).

What goes in: failed logins and lockouts, CSRF failures, a role or unit reaching for what it may
not (another unit's dossier by id is answered 404 like an absent one, and recorded here), refused
uploads, refused sync requests and batches (forged, replayed, revoked, out of scope, truncated),
refused bundles and kits. What does not: ordinary work (the change log is the record of that)
and passwords or request bodies (never written anywhere).

The same file keeps the **read log**: who looked at which dossier (its page, its receipt and
printed forms, its record, a scan, its API JSON) and when, and each export of a citizen's data
(Decree 13/2023/NĐ-CP). Its lines are kept ``read_log_days`` (a setting) and pruned after;
the unit's leader reads them on ``/audit/reads`` (:mod:`edge.views.reads`), city IT and the
technician with ``motcua audit --reads``. They stay on the box: they say who looked at whom,
which is itself personal data, and the city gets them only when a leader exports them.

It is its own SQLite file, ``audit.db`` beside the node's database, not a table of it: the
node's writer refuses writes outside the change log (DESIGN.md), and a refusal must be recorded
even when the refused thing was an attempt on that database. Writing it never fails the request
that is being refused: if the disk is full, the line goes to the process log only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sync.db import open_side
from sync.migrations import Migration

log = logging.getLogger("motcua.audit")

AUDIT_FILE = "audit.db"
KEEP_ROWS = 200_000
"""The newest rows kept; older ones are pruned (a flood of refusals cannot fill the disk)."""
_PRUNE_EVERY = 1_000

MIGRATIONS = [
    Migration(
        1,
        "audit",
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            event TEXT NOT NULL,
            actor TEXT,
            remote TEXT,
            method TEXT,
            path TEXT,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_event ON audit (event, at_ms);
        """,
    ),
    Migration(
        2,
        "read log",
        """
        CREATE TABLE reads (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            dossier TEXT,
            code TEXT,
            what TEXT NOT NULL,
            remote TEXT,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX reads_at ON reads (at_ms);
        CREATE INDEX reads_dossier ON reads (dossier, at_ms);
        """,
    ),
]

DAY_MS = 86_400_000
KEEP_READ_DAYS = 365
"""How long read-log lines are kept unless the settings say otherwise (``read_log_days``)."""

READS = ("page", "receipt", "form", "record", "scan", "api", "export")
"""What a read-log line says was read: the dossier's page, its receipt, a printed form, its
change record, a scan, its API JSON; ``export``: the citizen's data exported by a leader."""


@dataclass(frozen=True)
class Read:
    id: int
    at_ms: int
    actor: str
    dossier: str | None
    """The dossier's entity id (None for an export that found no dossier)."""
    code: str | None
    """Its code, as printed on the receipt, when it was read."""
    what: str
    remote: str | None
    detail: dict[str, object]


@dataclass(frozen=True)
class Entry:
    id: int
    at_ms: int
    event: str
    """What was refused: ``login_failed``, ``locked_out``, ``csrf``, ``forbidden``, ``cross_unit``,
    ``upload_refused``, ``too_large``, ``sync_refused``, ``bundle_refused`` …"""
    actor: str | None
    """Who asked, when known: a username, or a node id for the sync protocol."""
    remote: str | None
    method: str | None
    path: str | None
    detail: dict[str, object]


class AuditLog:
    """Append-only from the app's side; thread-safe (the event loop and worker threads)."""

    def __init__(self, path: str | Path, keep_rows: int = KEEP_ROWS) -> None:
        self.path = Path(path)
        self.keep_rows = keep_rows
        self.keep_read_ms = KEEP_READ_DAYS * DAY_MS
        """Read-log lines older than this are pruned (the app sets it from ``read_log_days``)."""
        self._reads_since_prune = 0
        self._lock = threading.Lock()
        self._since_prune = 0
        self._conn = open_side(self.path, "audit", MIGRATIONS)

    def record(
        self,
        event: str,
        *,
        actor: str | None = None,
        remote: str | None = None,
        method: str | None = None,
        path: str | None = None,
        **detail: object,
    ) -> None:
        """One refusal. Never raises: a storage failure is logged and the caller goes on."""
        at_ms = int(time.time() * 1000)
        text = json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True)
        log.warning(
            "refused %s actor=%s remote=%s %s %s %s", event, actor, remote, method or "", path or "", text
        )
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO audit (at_ms, event, actor, remote, method, path, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (at_ms, event, actor, remote, method, path, text),
                )
                self._since_prune += 1
                if self._since_prune >= _PRUNE_EVERY:
                    self._since_prune = 0
                    self._conn.execute(
                        "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?", (self.keep_rows,)
                    )
        except sqlite3.Error as exc:
            log.error("the audit log could not be written (%s); the line above is all there is", exc)

    def entries(self, *, event: str | None = None, since_ms: int = 0, limit: int = 1000) -> list[Entry]:
        """The newest first."""
        sql = "SELECT id, at_ms, event, actor, remote, method, path, detail FROM audit WHERE at_ms >= ?"
        params: list[object] = [since_ms]
        if event is not None:
            sql += " AND event = ?"
            params.append(event)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [Entry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    def counts(self, since_ms: int = 0) -> Mapping[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT event, count(*) FROM audit WHERE at_ms >= ? GROUP BY event ORDER BY event",
                (since_ms,),
            ).fetchall()
        return {str(e): int(n) for e, n in rows}

    # --- the read log ---------------------------------------------------------------------------

    def read(
        self,
        actor: str,
        what: str,
        dossier: str | None,
        code: str | None = None,
        *,
        remote: str | None = None,
        at_ms: int | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """One read of a dossier by ``actor``. Never raises, as :meth:`record`; every
        :data:`_PRUNE_EVERY` lines the ones older than :attr:`keep_read_ms` go."""
        if what not in READS:
            raise ValueError(f"unknown read {what!r}")
        at = int(time.time() * 1000) if at_ms is None else at_ms
        text = json.dumps(dict(detail or {}), ensure_ascii=False, default=str, sort_keys=True)
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO reads (at_ms, actor, dossier, code, what, remote, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (at, actor, dossier, code, what, remote, text),
                )
                self._reads_since_prune += 1
                due = self._reads_since_prune >= _PRUNE_EVERY
            if due:
                self.prune_reads()
        except sqlite3.Error as exc:
            log.error("read of %s by %s (%s) could not be logged: %s", dossier, actor, what, exc)

    def prune_reads(self, now_ms: int | None = None) -> int:
        """Delete the read-log lines older than :attr:`keep_read_ms`; how many went."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            self._reads_since_prune = 0
            cur = self._conn.execute("DELETE FROM reads WHERE at_ms < ?", (now - self.keep_read_ms,))
        return int(cur.rowcount)

    def reads(
        self,
        *,
        dossiers: Sequence[str] | None = None,
        actor: str | None = None,
        since_ms: int = 0,
        limit: int = 1000,
    ) -> list[Read]:
        """The newest first; only of ``dossiers`` and by ``actor`` when given."""
        sql = "SELECT id, at_ms, actor, dossier, code, what, remote, detail FROM reads WHERE at_ms >= ?"
        params: list[object] = [since_ms]
        if dossiers is not None:
            sql += f" AND dossier IN ({','.join('?' * len(dossiers))})"
            params.extend(dossiers)
        if actor is not None:
            sql += " AND actor = ?"
            params.append(actor)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [Read(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_audit(data_dir: str | Path) -> AuditLog:
    return AuditLog(Path(data_dir) / AUDIT_FILE)
