"""Ports for servers the tests and benchmarks start as separate processes.

The usual trick (bind port 0, close, hand the number to a child) races: between the close and the
child's bind the kernel may give that same number to another process, and in a suite of real
servers it does. CI saw it: a pytest worker's outgoing connection took the port picked for a city
that started a moment later ("address already in use"). Linux hands out port-0 binds and client
source ports from ``ip_local_port_range`` (32768-60999 by default), so ports are picked below that
range, where the kernel never assigns one on its own, and each xdist worker takes its own slice so
two workers never choose the same number. A candidate is still probed with a bind, which skips a
port some other program on the machine holds.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

LOWEST = 10_000
"""Below this are ports of services a machine may run (databases, proxies, 8080...)."""


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _slice() -> range:
    top = max(_ephemeral_start(), LOWEST + 2000)
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % workers if worker.isdigit() else 0
    size = (top - LOWEST) // workers
    return range(LOWEST + index * size, LOWEST + (index + 1) * size)


_SLICE = _slice()
# Start at a point of the slice that depends on the process, so a run that follows a killed one
# (whose servers may linger) does not walk the same numbers first.
_NEXT = itertools.count(os.getpid() * 7919)


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port whose last connection sits in TIME_WAIT is free for it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(span: int = 1) -> int:
    """A 127.0.0.1 port that is free now and that no other worker of this run will choose; with
    ``span``, the first of that many consecutive free ports."""
    for _ in range(len(_SLICE)):
        port = _SLICE.start + next(_NEXT) % (len(_SLICE) - span + 1)
        if all(_can_bind(p) for p in range(port, port + span)):
            for _ in range(span - 1):
                next(_NEXT)
            return port
    raise RuntimeError(f"no {span} free port(s) in {_SLICE.start}-{_SLICE.stop - 1}")
