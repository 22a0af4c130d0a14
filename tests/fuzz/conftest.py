"""Fixtures of the fuzz tests: the helper module next to them, cheap password hashing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fuzzing.py, the shared mutations

from central.city import City, init_central
from central.registry import add_node, write_node_file
from edge import auth
from edge.node import Node, init_from_node_file
from edge.syncstate import CURSOR
from ops import bundle

PASSWORD = "Matkhau123"
UNIT = "31135"  # Phường Ninh Kiều, Cần Thơ


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> None:
    """argon2 at its lowest cost: the fixtures make accounts and log in."""
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Linked:
    """A city and one commune box made from its node file, in process. The box holds the
    reference data (from a real city bundle) and two dossiers the city has not received."""

    city: City
    edge: Node
    dir: Path
    node_file: Path

    def city_log(self) -> tuple[object, ...]:
        replica = self.city.node.replica
        return replica.digest(), dict(replica.vector()), replica.state_digest(), replica.pending_count()

    def edge_log(self) -> tuple[object, ...]:
        replica = self.edge.replica
        return (
            replica.digest(),
            dict(replica.vector()),
            replica.state_digest(),
            replica.pending_count(),
            replica.meta(CURSOR),
        )

    def city_holds_only_genuine_ops(self) -> bool:
        """Every op of the box the city holds is byte for byte the one the box wrote."""
        me = self.edge.identity.node
        city = self.city.node.replica
        return all(
            city.op(me, seq) == self.edge.replica.op(me, seq) for seq in range(1, city.vector()[me] + 1)
        )


@pytest.fixture(scope="module")
def linked(tmp_path_factory) -> Iterator[Linked]:
    # Imported here: edgekit is on pytest's pythonpath (tests/edge), not an installed module.
    from edgekit import receive_sample

    where = tmp_path_factory.mktemp("linked")
    city, _ = init_central(where / "city", "92", PASSWORD)
    new = add_node(city, UNIT, "http://127.0.0.1:1")
    write_node_file(where / "edge.node.json", new.node_file)
    edge = init_from_node_file(where / "edge", where / "edge.node.json")
    bundle.export_from_city(city, edge.identity.node, where / "provision.bundle")
    bundle.import_at_edge(edge, where / "provision.bundle")
    receive_sample(edge, applicant_name="Nguyễn Văn An")
    receive_sample(edge, applicant_name="Trần Thị Bình", citizen_id="092085004321")
    try:
        yield Linked(city, edge, where, where / "edge.node.json")
    finally:
        edge.close()
        city.close()
