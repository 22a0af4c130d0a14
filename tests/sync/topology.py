"""The production topology for the sync property tests: one hub, commune boxes following its feed.

:class:`HubDriver` is what the state machine (``test_topology.py``) needs of a hub: a handful
of methods. :class:`CityHub` drives the city's own request handlers (:class:`central.hub.Hub`:
the write-scope check on push, the signed acknowledgement, the feed slice and certificates on
pull, the scope digest) over a real city data directory, without HTTP. A PostgreSQL hub
(issue 12) runs the same machine by adding one implementation.

:class:`Box` is a commune box as edge/syncclient.py keeps it: a partial replica of the real
domain kinds (``schema.KINDS``, projections included) and its feed cursor in ``sync_meta``.

Building a city costs a second (argon2, a province's units); :func:`template` builds one city
with four registered communes that already pulled their reference data and each received one
dossier the next ward handles, once per process, and each example copies its files.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from central.city import City, init_central, open_central
from central.hub import Caller, Counts, Hub
from central.registry import add_node
from edge import protocol
from schema import KINDS, migrate
from sync import correction, wire
from sync.batch import encode_batch
from sync.clock import Clock
from sync.feed import EVERYWHERE
from sync.fold import Conflict, State
from sync.identity import Identity
from sync.ops import Op
from sync.replica import Replica
from sync.restamp import GiveUp, Restamped

CITY = "92"
UNITS = ("31120", "31135", "31147", "31150")
"""Four wards of Cần Thơ, each with its box."""
BOXLESS = "31153"
"""A ward with no box in the test: dossiers transferred there still grow their scope."""
START_MS = 1_750_000_000_000
MAX_DRIFT_MS = 10 * 60 * 1000
PASSWORD = "Matkhau123"
CURSOR = "sync.feed_cursor"

Ident = tuple[str, int]
EntityKey = tuple[str, str]


@dataclass(frozen=True)
class Change:
    """One op to author at the hub: (kind, entity, action, payload)."""

    kind: str
    entity: str
    action: str
    payload: dict[str, Any]


class FakeWall:
    """A settable wall clock in milliseconds."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def clock(wall: FakeWall) -> Clock:
    return Clock(wall=wall, max_drift_ms=MAX_DRIFT_MS)


class HubDriver(Protocol):
    """A hub as the state machine drives it. Every method acts at once and durably (a method
    that returns has committed); refusals raise the sync errors the HTTP layer would map."""

    node: str
    public_key: bytes

    def now_ms(self) -> int:
        """The hub's time, which boxes calibrate to."""

    def have(self, node: str) -> int:
        """The hub's contiguous head of ``node`` (a hello's answer)."""

    def hello(self, caller: Caller, give_up: Sequence[GiveUp] = ()) -> wire.HelloReply:
        """A sync round's hello: what the hub holds of the caller's ops; with ``give_up``, the
        bodies the caller gives up before re-stamping them, recorded for the seqs after that
        head in the same transaction (decision 0008)."""

    def push(self, caller: Caller, body: bytes) -> wire.Ack:
        """Merge one encoded batch of the caller's own ops, all or nothing; the signed receipt.
        Idempotent: a batch pushed again changes nothing and is acknowledged again."""

    def pull(self, caller: Caller, cursor: int, max_ops: int) -> wire.PullReply:
        """The next slice of the caller's scope after ``cursor``; changes nothing at the hub."""

    def digest(self, caller: Caller) -> bytes:
        """The hub's digest of the caller's scope."""

    def write(self, changes: Sequence[Change]) -> list[Op]:
        """Author ops at the hub in one transaction; :class:`sync.fold.Rejected` writes none."""

    def state(self, kind: str, entity: str) -> State | None: ...

    def ops_of(self, kind: str, entity: str) -> list[Op]:
        """Every op of the entity held at the hub, in fold order."""

    def op(self, node: str, seq: int) -> Op | None:
        """One op held at the hub (None: not held)."""

    def conflicts(self, kind: str, entity: str) -> list[Conflict]: ...

    def dossier_row(self, entity: str) -> tuple[Any, ...] | None:
        """The dossier's row in the hub's projection (see :func:`dossier_row`)."""

    def entities(self, keys: Iterable[str]) -> set[EntityKey]:
        """Every entity the hub has ever put in one of the scope ``keys``."""

    def owed(self, keys: Iterable[str], cursor: int, exclude: str) -> set[Ident]:
        """The ops a partial replica of scope ``keys`` holds once its cursor is ``cursor``: of
        every entity that entered the scope at or before ``cursor``, the ops that arrived at or
        before it (not ``exclude``'s own)."""

    def restart(self) -> None:
        """Close and reopen the hub from its files (what it committed survives)."""

    def close(self) -> None: ...


class CityHub:
    """:class:`HubDriver` over :class:`central.hub.Hub` and the city's SQLite replica."""

    def __init__(self, data_dir: Path, wall: FakeWall) -> None:
        self.data_dir = data_dir
        self.wall = wall
        self._open()
        self.node = self.city.node.identity.node
        self.public_key = self.city.node.identity.public_raw

    def _open(self) -> None:
        self.city: City = open_central(self.data_dir, clock(self.wall))
        self.hub = Hub(self.city)
        self.replica: Replica = self.city.node.replica

    def now_ms(self) -> int:
        return self.hub.now_ms()

    def have(self, node: str) -> int:
        return self.replica.vector()[node]

    def hello(self, caller: Caller, give_up: Sequence[GiveUp] = ()) -> wire.HelloReply:
        hello = wire.Hello(software="topology", head=0, cursor=0, wall_ms=self.wall.ms, give_up=list(give_up))
        return self.hub.hello(caller, hello)

    def push(self, caller: Caller, body: bytes) -> wire.Ack:
        return self.hub.push(caller, body, Counts())

    def pull(self, caller: Caller, cursor: int, max_ops: int) -> wire.PullReply:
        return self.hub.pull(caller, wire.PullRequest(cursor, max_ops), Counts())

    def digest(self, caller: Caller) -> bytes:
        return self.hub.digest(caller).scope_digest

    def write(self, changes: Sequence[Change]) -> list[Op]:
        with self.replica.write() as w:
            return [w.append(c.kind, c.entity, c.action, c.payload) for c in changes]

    def state(self, kind: str, entity: str) -> State | None:
        return self.replica.state(kind, entity)

    def ops_of(self, kind: str, entity: str) -> list[Op]:
        return self.replica.ops_of(kind, entity)

    def op(self, node: str, seq: int) -> Op | None:
        return self.replica.op(node, seq)

    def conflicts(self, kind: str, entity: str) -> list[Conflict]:
        return self.replica.conflicts(kind, entity)

    def dossier_row(self, entity: str) -> tuple[Any, ...] | None:
        return dossier_row(self.replica, entity)

    def entities(self, keys: Iterable[str]) -> set[EntityKey]:
        keys = sorted(set(keys))
        with self.replica.reading() as conn:
            rows = conn.execute(
                f"SELECT DISTINCT kind, entity FROM sync_scope WHERE key IN ({','.join('?' * len(keys))})",
                keys,
            ).fetchall()
        return {(kind, entity) for kind, entity in rows}

    def owed(self, keys: Iterable[str], cursor: int, exclude: str) -> set[Ident]:
        keys = sorted(set(keys))
        with self.replica.reading() as conn:
            rows = conn.execute(
                f"""SELECT DISTINCT n.node, f.seq FROM sync_scope AS s
                    JOIN sync_feed AS f ON f.kind = s.kind AND f.entity = s.entity
                    JOIN sync_node AS n ON n.id = f.node
                    WHERE s.key IN ({",".join("?" * len(keys))}) AND s.since_pos <= ?
                      AND f.pos <= ? AND n.node != ?""",
                (*keys, cursor, cursor, exclude),
            ).fetchall()
        return {(node, seq) for node, seq in rows}

    def restart(self) -> None:
        self.city.close()
        self._open()

    def close(self) -> None:
        self.city.close()


class Box:
    """A commune's partial replica and its feed cursor."""

    def __init__(self, path: Path, identity: Identity, unit: str, wall: FakeWall) -> None:
        self.path = path
        self.identity = identity
        self.node = identity.node
        self.unit = unit
        self.wall = wall
        self.caller = Caller(identity.node, unit, wire.PROTOCOL)
        self.keys = frozenset({unit, EVERYWHERE})
        self.replica = self._open()

    def _open(self) -> Replica:
        return Replica(self.path, self.identity, KINDS, clock=clock(self.wall), migrate=migrate, partial=True)

    @property
    def cursor(self) -> int:
        return int(self.replica.meta(CURSOR, 0) or 0)

    def save_cursor(self, cursor: int) -> None:
        self.replica.set_meta(CURSOR, cursor)

    def head(self) -> int:
        return self.replica.vector()[self.node]

    def trust(self, certs: Iterable[wire.Cert], city_key: bytes) -> None:
        """The certificates a pull brings, checked against the city key and applied as the sync
        client does (:mod:`edge.protocol`)."""
        protocol.apply_certs(self.replica, self.node, protocol.check_certs(certs, city_key))

    def restart(self) -> None:
        self.replica.close()
        self.replica = self._open()

    def held(self) -> set[Ident]:
        with self.replica.reading() as conn:
            rows = conn.execute("SELECT n.node, o.seq FROM sync_op AS o JOIN sync_node AS n ON n.id = o.node")
            return {(node, seq) for node, seq in rows}

    def close(self) -> None:
        self.replica.close()


def pull_all(hub: HubDriver, box: Box, max_ops: int = 2000) -> int:
    """Pull until the feed is done, every reply delivered whole; ops applied."""
    applied = 0
    while True:
        reply = hub.pull(box.caller, box.cursor, max_ops)
        box.trust(reply.certs, hub.public_key)
        for data in reply.batches:
            applied += box.replica.merge(data).applied
        box.save_cursor(reply.cursor)
        if reply.done:
            return applied


@dataclass(frozen=True)
class Hello:
    """A round's hello as the sync client says it (see :func:`say_hello`)."""

    given: list[GiveUp]
    reply: wire.HelloReply
    now_ms: int
    shift_ms: int


def say_hello(hub: HubDriver, box: Box, known: int) -> Hello:
    """A round's first steps, as the sync client takes them: calibrate to the city's time, give
    up the bodies stamped beyond the allowed drift (decision 0008), say hello. ``known``: what
    the box last heard the hub holds of its ops."""
    clock = box.replica.clock
    before = clock.offset_ms
    shift = before - clock.calibrate(hub.now_ms())
    now = clock.wall_ms()
    given = correction.to_give_up(box.replica, known, now)
    return Hello(given, hub.hello(box.caller, given), now, shift)


def correct(box: Box, hello: Hello) -> Restamped | None:
    """The round's next step: re-stamp the given-up ops the hub does not hold."""
    reply = hello.reply
    return correction.apply(
        box.replica, hello.given, reply.have, reply.given_up, hello.now_ms, shift_ms=hello.shift_ms
    )


def pending(hub: HubDriver, box: Box) -> list[bytes]:
    """The encoded batches of the box's own ops the hub lacks (what a push sends now)."""
    batches = box.replica.batches({box.node: hub.have(box.node)}, nodes=[box.node])
    return [encode_batch(batch) for batch in batches]


def dossier_row(replica: Replica, entity: str) -> tuple[Any, ...] | None:
    """The dossier's row in the projection, without its local rowid."""
    with replica.reading() as conn:
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM dossiers WHERE id = ?", (entity,)).fetchone()
        finally:
            conn.row_factory = None
    return None if row is None else tuple(row[k] for k in row.keys() if k != "rid")  # noqa: SIM118 (a Row iterates its values)


def scratch_dir(prefix: str) -> Path:
    """A new directory in memory where there is one (/dev/shm): this machine proves what the
    replicas agree on, not durability (the crash soak does), and a commit's fsync would
    otherwise be most of its time on a busy disk."""
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=where))


@dataclass(frozen=True)
class Template:
    directory: Path
    keys: dict[str, bytes]
    """unit -> the box's private key"""


@functools.cache
def template() -> Template:
    """A city of province 92 with the four communes registered, each box holding its reference
    data already (built once per process, in a directory removed at exit)."""
    directory = scratch_dir("motcua-topology-")
    _cleanup.append(directory)
    wall = FakeWall(START_MS)
    city, _ = init_central(directory / "city", CITY, PASSWORD, clock(wall))
    keys = {unit: add_node(city, unit, "http://127.0.0.1:1").identity.private_bytes() for unit in UNITS}
    city.close()
    hub = CityHub(directory / "city", wall)
    boxes = [Box(directory / f"{u}.db", Identity.from_private_bytes(u, keys[u]), u, wall) for u in UNITS]
    for i, box in enumerate(boxes):
        box.replica.trust(hub.node, hub.public_key)
        wall.ms += 1_000
        with box.replica.write() as w:
            # Each ward has received one dossier that the next ward handles (non-territorial).
            w.append(
                "dossier",
                f"{box.unit}-0",
                "create",
                receipt(box.unit, 0, UNITS[(i + 1) % len(UNITS)], wall.ms),
            )
        for batch in list(box.replica.batches({box.node: 0}, nodes=[box.node])):
            hub.push(box.caller, encode_batch(batch))
    for box in boxes:
        pull_all(hub, box)
        box.close()
    hub.close()
    return Template(directory, keys)


def receipt(
    unit: str, n: int, handler: str, at_ms: int, procedure: str = "1.004194", name: str = "Nguyễn Văn An"
) -> dict[str, Any]:
    """The payload of a dossier received by a clerk of ``unit``."""
    return {
        "code": f"{unit}-250101-{n:04d}",
        "procedure": procedure,
        "receiving_unit": unit,
        "handling_unit": handler,
        "applicant_name": name,
        "received_at": at_ms,
        "by": f"canbo_{unit}",
        "role": "clerk",
    }


_cleanup: list[Path] = []


@atexit.register
def _remove_templates() -> None:
    for directory in _cleanup:
        shutil.rmtree(directory, ignore_errors=True)
