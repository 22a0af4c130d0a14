"""The data disk: how much room is left and whether it can be written at all.

A full or read-only disk makes every write fail; the web app then answers 503 and saves nothing
(edge/web.py). This module tells those errors from bugs, and lets the box say so before a
clerk finds out: ``motcua edge serve`` refuses a read-only data directory in one line (and a
full one where its database cannot open), and every page warns when free space runs low.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FULL_BYTES = 1024 * 1024
"""Below this the disk is full for our purposes: a dossier with its scan no longer fits."""


@dataclass(frozen=True)
class DiskState:
    free_bytes: int
    """Bytes an unprivileged writer may still use (what ``df`` calls available)."""
    read_only: bool

    @property
    def full(self) -> bool:
        return self.free_bytes < FULL_BYTES

    @property
    def free_mb(self) -> int:
        return self.free_bytes >> 20

    def problem(self, warn_bytes: int) -> str | None:
        """What the clerk's pages warn about: "read_only", "full", "low" (below ``warn_bytes``)
        or None."""
        if self.read_only:
            return "read_only"
        if self.full:
            return "full"
        return "low" if self.free_bytes < warn_bytes else None


class DiskWatch:
    """The data disk's state for every page and the sync status, measured again at most every
    ``ttl_s`` seconds: a page view should not cost a probe file each time."""

    def __init__(self, data_dir: str | Path, warn_bytes: int, ttl_s: float = 3.0) -> None:
        self.data_dir = Path(data_dir)
        self.warn_bytes = warn_bytes
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._measured: tuple[float, DiskState] | None = None

    def state(self) -> DiskState:
        with self._lock:
            now = time.monotonic()
            if self._measured is None or now - self._measured[0] >= self.ttl_s:
                self._measured = (now, disk_state(self.data_dir))
            return self._measured[1]

    def problem(self) -> str | None:
        return self.state().problem(self.warn_bytes)


def disk_state(data_dir: str | Path) -> DiskState:
    """The state of the file system holding ``data_dir`` (which must exist)."""
    stat = os.statvfs(data_dir)
    read_only = bool(stat.f_flag & os.ST_RDONLY) or not _can_create(Path(data_dir))
    return DiskState(free_bytes=stat.f_bavail * stat.f_frsize, read_only=read_only)


def _can_create(directory: Path) -> bool:
    """Whether a file can be made here. The mount flags do not tell it all: ext4 stopped by an
    error refuses writes (EROFS) while it still reports itself mounted read-write."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".motcua-probe-")
    except OSError as exc:
        return exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM)
    os.close(fd)
    os.unlink(name)
    return True


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
_SQLITE_WORDS = ("disk", "readonly", "read-only", "unable to open database file")


def is_disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full, read-only or failing: the technician's problem,
    not a bug (SQLite: "database or disk is full", "attempt to write a readonly database",
    "disk I/O error"; a scan's file: ENOSPC, EROFS …)."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in _SQLITE_WORDS)
    return False
