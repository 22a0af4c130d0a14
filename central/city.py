"""The city's data directory: a node with role "central", plus what only the city keeps.

DIR/node.json, node.key, session.key, motcua.db, blobs/   as any node (edge/node.py); the key is
                                                         the city key that signs certificates
DIR/fleet.db          the node registry and fleet state, not replicated (central/fleet.py)
DIR/database.json     instead of fleet.db: the PostgreSQL database holding the fleet (central/database.py)
DIR/blobs-incoming/   attachments still arriving in chunks (central/incoming.py)

``init_central`` authors the province's reference data as ops of the city node (every unit of
the province, departments included, and the pilot procedures) and an admin account, so edges
receive them by sync like any other change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from central.database import DatabaseConfig, is_city, open_fleet, prepare, write_config
from central.fleet import FLEET_FILE, FleetStore
from central.upstream.outbox import CITY_KINDS, migrate_city
from edge.accounts import add_account, check_password_strength
from edge.errors import ConfigError, EdgeError
from edge.node import EDGE_SHAPES, NODE_FILE, Node, NodeConfig, Shape, create_node_dir, open_node
from schema import PILOT_PROCEDURES
from schema.units import province_record, province_units
from sync.clock import Clock
from sync.identity import Identity

ADMIN_USERNAME = "quantri"

CITY_ROLE = "central"
"""The role in the city node's ``node.json``."""
CITY = Shape(
    partial=False,
    feed=True,
    authors_reference_data=True,
    watches_clock=False,
    kinds=CITY_KINDS,
    migrate=migrate_city,
)
"""The city's node is a hub: it holds everything, numbers every op on arrival for the boxes to
follow, authors the reference data, its clock is the one the boxes are checked against, and it
keeps the upstream outbox (central/upstream/outbox.py) beside the domain's projection."""
CITY_SHAPES = {CITY_ROLE: CITY}
ANY_SHAPES = {**EDGE_SHAPES, **CITY_SHAPES}
"""For the commands that work on a box and on the city alike (``motcua user add``…)."""
INCOMING_DIR = "blobs-incoming"


@dataclass
class City:
    """An opened city data directory. Close it when done."""

    node: Node
    fleet: FleetStore

    @property
    def province(self) -> str:
        return self.node.config.province

    def close(self) -> None:
        self.fleet.close()
        self.node.close()


def generate_password() -> str:
    while True:
        password = secrets.token_urlsafe(12)
        try:
            check_password_strength(password)
        except EdgeError:
            continue
        return password


def init_central(
    data_dir: str | Path,
    province: str,
    admin_password: str | None = None,
    clock: Clock | None = None,
    database: DatabaseConfig | None = None,
) -> tuple[City, str | None]:
    """Create the city's data directory; returns it and the admin password if one was generated.
    ``database``: the fleet goes there (its tables are created now), not in DIR/fleet.db.

    Refuses a directory that already holds a node or a fleet database."""
    directory = Path(data_dir)
    try:
        record = province_record(province)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"unknown province code {province!r}: use a post-2025 code such as 92") from exc
    if (directory / NODE_FILE).exists() or is_city(directory):
        raise ConfigError(f"{directory} already holds a node; refusing to overwrite it")
    generated = None
    if admin_password is None:
        admin_password = generated = generate_password()
    check_password_strength(admin_password)
    if database is not None:
        prepare(database, new_city=True)
    identity = Identity.generate(record.code)
    config = NodeConfig(identity.node, record.code, record.code, role=CITY_ROLE)
    create_node_dir(directory, identity, config)
    node = Node(directory, config, identity, clock or Clock(), CITY)
    with node.replica.write() as w:
        for unit in province_units(record.code):
            w.append("unit", unit.code, "upsert", unit.as_payload())
        for procedure in PILOT_PROCEDURES:
            w.append("procedure", procedure.code, "upsert", procedure.as_payload())
    add_account(node, ADMIN_USERNAME, "Quản trị thành phố", "admin", admin_password, record.code)
    (directory / INCOMING_DIR).mkdir(exist_ok=True)
    if database is not None:
        write_config(directory, database)
    return City(node, _fleet_of(node, directory)), generated


def _fleet_of(node: Node, directory: Path) -> FleetStore:
    try:
        return open_fleet(directory)
    except BaseException:
        node.close()
        raise


def open_central(data_dir: str | Path, clock: Clock | None = None) -> City:
    directory = Path(data_dir)
    if not is_city(directory):
        raise ConfigError(
            f"{directory} is not a city data directory (no {FLEET_FILE}); "
            "create one with: motcua central init --data DIR --province 92"
        )
    node = open_node(directory, clock, CITY_SHAPES)
    return City(node, _fleet_of(node, directory))
