"""``DIR/server.lock``: one server per data directory (docs/decisions/0007).

``motcua edge serve`` and ``motcua central serve`` hold an exclusive ``flock`` on this file for
the life of the process, so a second server started on the same directory is refused with one
sentence instead of two processes serving one database. The kernel lets go of the lock when the
process ends, however it ends (SIGKILL, a power cut), so a file left behind by a crash blocks
nothing: only a running server holds the lock. The file is never removed (removing it would let
a third server lock a new file while the first still holds the old one); it holds the pid of the
server that has it, for the message.

Commands that write a served directory (``motcua user add`` …) do not take this lock: they
write beside the server, and the server sees their commits (:meth:`sync.replica.Replica._refresh`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.errors import ConfigError

LOCK_FILE = "server.lock"


@contextmanager
def serving(data_dir: str | Path) -> Iterator[None]:
    """Hold ``DIR/server.lock`` for the ``with`` block; :class:`ConfigError` if another process
    holds it. A directory that does not exist is left to the node's own check (no lock needed:
    nothing could be served from it)."""
    directory = Path(data_dir)
    if not directory.is_dir():
        yield
        return
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ConfigError(
                f"{directory} is already being served by another motcua server (process {holder}); "
                "stop that one first, or give this one another data directory"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the pid is only for the message, and the box must still serve
        yield
    finally:
        os.close(fd)
