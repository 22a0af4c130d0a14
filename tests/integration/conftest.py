"""A city server process, a fault proxy in front of it for each commune, and the communes.

``world`` starts a real ``motcua central serve`` process for province 92 and one
:class:`faultproxy.FaultProxy` per commune (Phường Ninh Kiều 31135, Phường Cái Khế 31120); each
commune's node file names its proxy as the city's address, so everything an edge says to the
city crosses its bad link. The communes are data directories made from those node files; a test
drives them in this process (:meth:`World.round`, the real sync client over an HttpPeer) or
starts them as ``motcua edge serve`` processes (:meth:`World.serve_edge`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import CAI_KHE, NINH_KIEU, World

from edge import auth


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> None:
    """argon2 at its lowest cost here; hashes carry their parameters, so the server processes
    verify them just as cheaply."""
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = World(
        tmp_path,
        accounts={"canbo01": ("clerk", NINH_KIEU), "canbo_caikhe": ("clerk", CAI_KHE)},
        batch_bytes=2048,
        batch_bytes_max=8192,  # batches grow as on a real box, and stay many per round
        blob_chunk_bytes=65536,
    )
    try:
        w.start()
        yield w
    finally:
        w.close()
