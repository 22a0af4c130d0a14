"""edge/disk.py: which errors are the disk's, and what the pages warn about.

The real thing (a tmpfs filling up, an ext4 disk turning read-only under a server) is in
tests/integration/test_disk_faults.py; these pin the classification those tests rely on.
"""

from __future__ import annotations

import errno
import sqlite3

import pytest

from edge.disk import FULL_BYTES, DiskState, DiskWatch, disk_state, is_disk_error

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("exc", "disk"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EROFS, "Read-only file system"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EIO, "Input/output error"), True),
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.OperationalError("attempt to write a readonly database"), True),
        (sqlite3.OperationalError("disk I/O error"), True),
        (sqlite3.OperationalError("unable to open database file"), True),
        # A bug stays a bug: the generic 500 and a traceback in the log, not "tell the technician".
        (OSError(errno.ENOENT, "No such file or directory"), False),
        (OSError("disk full"), False),
        (sqlite3.OperationalError("no such table: dossiers"), False),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False),
        (ValueError("disk"), False),
    ],
)
def test_only_a_full_read_only_or_failing_disk_counts_as_the_disk(exc, disk):
    assert is_disk_error(exc) is disk


def test_what_the_pages_warn_about():
    warn = 500 * MIB
    assert DiskState(free_bytes=10_000 * MIB, read_only=False).problem(warn) is None
    assert DiskState(free_bytes=499 * MIB, read_only=False).problem(warn) == "low"
    assert DiskState(free_bytes=FULL_BYTES - 1, read_only=False).problem(warn) == "full"
    assert DiskState(free_bytes=10_000 * MIB, read_only=True).problem(warn) == "read_only"
    assert DiskState(free_bytes=499 * MIB, read_only=False).free_mb == 499


def test_a_writable_directory_is_not_read_only_and_the_probe_leaves_nothing(tmp_path):
    state = disk_state(tmp_path)
    assert not state.read_only
    assert state.free_bytes > 0
    assert list(tmp_path.iterdir()) == []


def test_the_watch_measures_at_most_once_per_interval(tmp_path):
    cached = DiskWatch(tmp_path, warn_bytes=1, ttl_s=3600)
    assert cached.state() is cached.state()  # a page view within the interval costs no probe
    fresh = DiskWatch(tmp_path, warn_bytes=1, ttl_s=0)
    assert fresh.state() is not fresh.state()
