"""Fixtures for the central tests: a city, two edges from node files, a real server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, serving

from central.app import create_central_app
from central.city import City, init_central
from central.hub import Hub
from central.registry import add_node, write_node_file
from edge import auth
from edge.node import Node, init_from_node_file
from edge.settings import load
from sync.clock import Clock
from sync.identity import Identity
from sync.transport import HttpPeer


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> None:
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class World:
    city: City
    hub: Hub
    url: str
    edges: dict[str, Node]
    node_files: dict[str, Path]
    _peers: list[HttpPeer] = field(default_factory=list)

    def peer(self, unit: str, identity: Identity | None = None, clock: Clock | None = None) -> HttpPeer:
        edge = self.edges[unit]
        peer = HttpPeer(self.url, identity or edge.identity, clock or edge.clock, timeout=30)
        self._peers.append(peer)
        return peer

    def central_log(self) -> tuple[int, dict[str, int]]:
        """What central holds: op count and vector (unchanged by any refused request)."""
        replica = self.city.node.replica
        return replica.op_count(), dict(replica.vector())

    def close(self) -> None:
        for peer in self._peers:
            peer.close()


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    city, _ = init_central(tmp_path / "city", "92", PASSWORD)
    files = {}
    for unit in (NINH_KIEU, CAI_KHE):
        new = add_node(city, unit, "http://127.0.0.1:1")
        files[unit] = tmp_path / f"{unit}.node.json"
        write_node_file(files[unit], new.node_file)
    edges = {unit: init_from_node_file(tmp_path / unit, path) for unit, path in files.items()}
    hub = Hub(city)
    app = create_central_app(load(city.node.data_dir), hub)
    with serving(app) as url:
        w = World(city, hub, url, edges, files)
        try:
            yield w
        finally:
            w.close()
    for edge in edges.values():
        edge.close()
    city.close()
