"""A node on disk: its identity, its replica, its blob store, in one data directory.

DIR/node.json      who this node is: node id, unit, province (no secrets)
DIR/node.key       the Ed25519 private key, raw, mode 0600
DIR/session.key    the key that signs clerks' session cookies and API tokens, mode 0600
DIR/motcua.db      the SQLite replica (WAL)
DIR/blobs/         attachments, content-addressed
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from sqlite3 import Connection

from edge.audit import open_audit
from edge.errors import ConfigError
from edge.sessions import SESSIONS_FILE, SessionBook
from schema import KINDS, PILOT_PROCEDURES, migrate
from schema.db import MIGRATIONS as SCHEMA_MIGRATIONS
from schema.units import UnitRecord, find_unit, province_units
from sync.blobs import FileBlobStore
from sync.clock import Clock
from sync.db import MIGRATIONS as SYNC_MIGRATIONS
from sync.errors import UnknownNode
from sync.fold import Kind
from sync.identity import Identity, check_binding
from sync.migrations import current_version
from sync.replica import Replica
from sync.transport import check_pin

NODE_FILE, KEY_FILE, SECRET_FILE, DB_FILE, BLOB_DIR = (
    "node.json",
    "node.key",
    "session.key",
    "motcua.db",
    "blobs",
)


@dataclass(frozen=True)
class NodeConfig:
    node: str
    unit: str
    province: str
    central_url: str | None = None
    central_key: str | None = None
    """Hex of the city's public key, when the node was made from a node file."""
    central_node: str | None = None
    """The city node's id (its ops are verified with ``central_key``)."""
    role: str = "edge"
    """Which kind of node this is: ``"edge"``, a commune's box, is the one kind edge knows. An app
    built on edge writes its own role here and opens its nodes with its :class:`Shape`."""
    tls_pin: str | None = None
    """Hex sha256 of the city's TLS certificate key (SubjectPublicKeyInfo), from the kit or the
    node file: the sync client refuses a city whose certificate carries another key."""
    insecure_lan_test: bool = False
    """Allow plain ``http://`` to the city: tests and the demo on one machine only."""


@dataclass(frozen=True)
class Shape:
    """What a node's role makes of it. Edge defines its own (:data:`EDGE`); an app built on edge
    (the city's) passes the shape of its nodes to :func:`open_node`, so edge never branches on
    another role's name."""

    partial: bool = True
    """Holds its scope only and follows a hub's feed (a commune's box)."""
    feed: bool = False
    """Numbers every op on arrival for partial replicas to follow (a hub)."""
    authors_reference_data: bool = False
    """Creates units, procedures and accounts even when it is connected to a hub."""
    watches_clock: bool = True
    """Notes, when opened, a wall clock that reads days past the node's last sign of life."""
    kinds: Sequence[Kind] = tuple(KINDS)
    """The entity kinds its replica folds: the domain's, or more (the city's upstream outbox)."""
    migrate: Callable[[sqlite3.Connection], object] = migrate
    """Its projection's migrations: the domain's, or more (the city's outbox tables)."""


EDGE_ROLE = "edge"
EDGE = Shape()
EDGE_SHAPES: Mapping[str, Shape] = {EDGE_ROLE: EDGE}
"""The roles :func:`open_node` opens unless told of others."""


def _write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data``, on the disk before this returns: a power cut right
    after ``motcua edge init`` must not leave an empty key or node file behind."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def snapshot_before_upgrade(data_dir: Path) -> Path | None:
    """Copy the database aside before this software migrates it (an upgrade), so a failed or
    regretted upgrade costs nothing: returns the snapshot's path, or None when nothing is due."""
    db = data_dir / DB_FILE
    if not db.exists():
        return None
    conn = sqlite3.connect(db)
    try:
        due = any(
            current_version(conn, namespace) < migrations[-1].version
            for namespace, migrations in (("sync", SYNC_MIGRATIONS), ("schema", SCHEMA_MIGRATIONS))
        )
        if not due:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = data_dir / f"pre-upgrade-{stamp}.db"
        copy = sqlite3.connect(target)
        try:
            conn.backup(copy)
        finally:
            copy.close()
        return target
    finally:
        conn.close()


class Node:
    """An opened node. Close it when done (the CLI and the app do)."""

    def __init__(
        self, data_dir: Path, config: NodeConfig, identity: Identity, clock: Clock, shape: Shape = EDGE
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.shape = shape
        self.identity = identity
        self.upgrade_snapshot = snapshot_before_upgrade(data_dir)
        self.replica = Replica(
            data_dir / DB_FILE,
            identity,
            shape.kinds,
            clock=clock,
            migrate=shape.migrate,
            partial=shape.partial,
            feed=shape.feed,
        )
        self.blobs = FileBlobStore(data_dir / BLOB_DIR)
        self.audit = open_audit(data_dir)
        self.sessions = SessionBook(data_dir / SESSIONS_FILE)
        self.secret = (data_dir / SECRET_FILE).read_bytes()
        unit = find_unit(config.unit)
        self.unit: UnitRecord | None = unit

    @property
    def authors_reference_data(self) -> bool:
        """Whether reference data (units, procedures, accounts) may be created here: on a node
        whose shape authors it (the city's), or on a standalone node. An edge connected to the
        city receives it instead — its own ops of that kind would be refused by the city and
        block its sync for good."""
        return self.shape.authors_reference_data or self.config.central_url is None

    def require_reference_author(self, what: str) -> None:
        if not self.authors_reference_data:
            raise ConfigError(
                f"{what} are managed at the city server for a connected node; "
                "run this command there (with --data pointing at the city's directory)"
            )

    @property
    def clock(self) -> Clock:
        return self.replica.clock

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        with self.replica.reading() as conn:
            yield conn

    def close(self) -> None:
        self.replica.close()
        self.audit.close()
        self.sessions.close()


def _check_config(config: NodeConfig, path: Path, roles: Iterable[str] = (EDGE_ROLE,)) -> NodeConfig:
    """Every field text (the optional ones text or null), a role the opener knows, a city key of
    32 bytes: a damaged node.json fails here, in words, not later at the first sync."""
    for name, value in asdict(config).items():
        if name == "insecure_lan_test":
            if not isinstance(value, bool):
                raise ConfigError(f"{path} is damaged: {name} must be true or false, not {value!r:.60}")
            continue
        optional = name in ("central_url", "central_key", "central_node", "tls_pin")
        if not (isinstance(value, str) and value) and not (optional and value is None):
            raise ConfigError(f"{path} is damaged: {name} must be text, not {value!r:.60}")
    known = tuple(roles)
    if config.role not in known:
        raise ConfigError(
            f"{path} is a {config.role!r:.40} node, not one of {', '.join(known)}: "
            "open it with the command of its kind"
        )
    if config.central_key is not None:
        try:
            if len(bytes.fromhex(config.central_key)) != 32:
                raise ValueError("not 32 bytes")
        except ValueError as exc:
            raise ConfigError(f"{path} is damaged: central_key is not a public key ({exc})") from exc
    if config.tls_pin is not None:
        try:
            check_pin(config.tls_pin)
        except ValueError as exc:
            raise ConfigError(f"{path} is damaged: tls_pin: {exc}") from exc
    return config


def open_node(
    data_dir: str | Path, clock: Clock | None = None, shapes: Mapping[str, Shape] = EDGE_SHAPES
) -> Node:
    """Open the node in ``data_dir``, whose role must be one of ``shapes``' (a commune's box
    unless the caller says otherwise)."""
    directory = Path(data_dir)
    try:
        raw = json.loads((directory / NODE_FILE).read_text(encoding="utf-8"))
        config = _check_config(NodeConfig(**raw), directory / NODE_FILE, shapes)
        key = (directory / KEY_FILE).read_bytes()
        identity = Identity.from_private_bytes(config.unit, key)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{directory} is not a motcua node (missing {Path(exc.filename).name}); "
            "create one with: motcua edge init --data DIR --unit CODE"
        ) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{directory / NODE_FILE} or {KEY_FILE} is damaged: {exc}") from exc
    if identity.node != config.node:
        raise ConfigError(f"{directory / KEY_FILE} is not the key of node {config.node}")
    node = Node(directory, config, identity, clock or Clock(), shapes[config.role])
    if node.shape.watches_clock:
        _note_time_off(node)
    return node


FORWARD_JUMP = "clock.forward_jump_ms"
"""How far the wall clock had moved past the box's last sign of life when it was opened, kept
while that is more than :data:`FORWARD_JUMP_MS` and until the city's time confirms the clock."""
FORWARD_JUMP_MS = 3 * 86_400_000
"""Longer than a weekend (Friday evening to Monday morning) with the box switched off."""


def _note_time_off(node: Node) -> None:
    """Remember a clock that reads days past the box's last sign of life (its newest stamp,
    its newest sync attempt, which the loop makes every quarter hour at most while it runs).

    A box cannot tell "off for a long holiday" from "clock set days ahead" on its own; the city
    can, at the next sync, which clears this (``edge.syncclient``). Until then the clerk is
    asked to check the date before a due date is printed (``edge.clockcheck``), even across
    restarts: the first restart would otherwise make the wrong time look like the last sign of
    life."""
    with node.reader() as conn:
        row = conn.execute("SELECT max(at_ms) FROM sync_attempt").fetchone()
    alive = max(node.clock.last.wall, int(row[0] or 0))
    gap = node.clock.wall_ms() - alive
    if alive and gap > FORWARD_JUMP_MS:
        node.replica.set_meta(FORWARD_JUMP, gap)


def create_node_dir(directory: Path, identity: Identity, config: NodeConfig) -> None:
    """Write a new node's files; refuses to overwrite an existing node."""
    if (directory / NODE_FILE).exists():
        raise ConfigError(f"{directory} already holds a node; refusing to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    _write_new(directory / KEY_FILE, identity.private_bytes())
    _write_new(directory / SECRET_FILE, secrets.token_bytes(32))
    _write_new(directory / NODE_FILE, json.dumps(asdict(config), indent=2).encode(), 0o644)
    fd = os.open(directory, os.O_RDONLY)  # the new names are durable once their directory is
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def init_from_node_file(data_dir: str | Path, node_file: str | Path, clock: Clock | None = None) -> Node:
    """Create an edge from the identity file central wrote (``motcua node add``): it syncs with
    central and receives its reference data and accounts from it."""
    try:
        raw = json.loads(Path(node_file).read_text(encoding="utf-8"))
        config = _check_config(
            NodeConfig(
                node=raw["node"],
                unit=raw["unit"],
                province=raw["province"],
                central_url=raw["central_url"],
                central_key=raw["central_key"],
                central_node=raw["central_node"],
                tls_pin=raw.get("tls_pin"),
                insecure_lan_test=raw.get("insecure_lan_test", False),
            ),
            Path(node_file),
        )
        identity = Identity.from_private_bytes(config.unit, bytes.fromhex(raw["private_key"]))
        central_key = bytes.fromhex(raw["central_key"])
        check_binding(str(config.central_node), central_key)
    except FileNotFoundError as exc:
        raise ConfigError(f"node file {node_file} does not exist") from exc
    except (ValueError, KeyError, TypeError, RecursionError, UnknownNode) as exc:
        raise ConfigError(f"{node_file} is not a motcua node file: {exc}") from exc
    if identity.node != config.node:
        raise ConfigError(f"{node_file}: the key does not belong to node {config.node}")
    directory = Path(data_dir)
    create_node_dir(directory, identity, config)
    node = Node(directory, config, identity, clock or Clock())
    node.replica.trust(config.central_node or "", central_key)
    return node


def init_node(data_dir: str | Path, unit_code: str, clock: Clock | None = None) -> Node:
    """Create a standalone node for a unit, seeded with its province's reference data.

    For development and tests: a real node gets its identity and reference data from central
    (node files and provisioning kits)."""
    directory = Path(data_dir)
    unit = find_unit(unit_code)
    if unit is None:
        raise ConfigError(f"unknown unit code {unit_code!r}: use a post-2025 code such as 31135")
    identity = Identity.generate(unit.code)
    config = NodeConfig(identity.node, unit.code, unit.province_code)
    create_node_dir(directory, identity, config)
    node = Node(directory, config, identity, clock or Clock())
    with node.replica.write() as w:
        for record in province_units(unit.province_code):
            w.append("unit", record.code, "upsert", record.as_payload())
        for procedure in PILOT_PROCEDURES:
            w.append("procedure", procedure.code, "upsert", procedure.as_payload())
    return node
