"""Real motcua processes on loopback for the integration tests and the sync benchmarks.

:class:`Server` runs ``motcua central serve`` or ``motcua edge serve`` as a child process (its
output goes to a log file, never a pipe that could fill), waits until it answers HTTP, and stops
it with SIGTERM (a graceful uvicorn shutdown: the edge's sync loop ends its round), waiting for
the process. :class:`CityDir` is a city data directory made the way ``motcua central init`` and
``motcua node add`` make it; :func:`edge_dir` an edge made from a node file, with its settings.

The city is created in this process before its server starts (only one process writes at a
time), and inspected here again after the server stopped (:meth:`CityDir.opened`).

:class:`World` puts it together for the link tests: a city process, one :class:`Link` (a fault
proxy) per commune, named in the commune's node file as the city's address, and communes driven
in this process (:meth:`World.round`) or served as processes (:meth:`World.serve_edge`);
:func:`assert_converged` checks what must hold once the link healed. The sync benchmarks
(bench/sync_catchup.py, bench/central_ingest.py) use the same pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from faultproxy import FaultProxy
from ports import free_port

from central.city import City, init_central, open_central
from central.registry import add_node, write_node_file
from edge.accounts import add_account
from edge.node import Node, init_from_node_file, open_node
from edge.settings import Settings
from edge.settings import load as load_settings
from edge.syncclient import RoundResult, sync_once
from sync.feed import EVERYWHERE
from sync.transport import HttpPeer

PASSWORD = "Matkhau123"
PROVINCE = "92"
NINH_KIEU, CAI_KHE = "31135", "31120"
HOUSEHOLD_BUSINESS = "2.000720"
START_TIMEOUT_S = 30.0


def motcua(*args: str) -> list[str]:
    """The command line of ``motcua ARGS`` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "ops.cli", *args]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(motcua(*args), capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Server:
    """A motcua server process. ``url`` answers once :meth:`start` returns."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    ready_path: str = "/sync/v1/time"
    env: Mapping[str, str] = field(default_factory=dict)
    scheme: str = "http"
    """"https" for a server given a certificate (readiness is probed without checking it)."""
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self._log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, verify=False) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
                try:
                    client.get(self.url + self.ready_path)
                    return
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"{self.name} did not answer in {timeout} s:\n{self.log()}"
                        ) from None
                    time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then wait (SIGKILL if it does not end in time). Returns the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            code = self.process.returncode
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        """A power cut: SIGKILL, no shutdown at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CityDir:
    """A city data directory of province 92 with an admin; nodes and accounts added in process
    while no server runs (``motcua node add`` / ``motcua user add`` do the same)."""

    def __init__(self, directory: Path, province: str = PROVINCE) -> None:
        self.dir = directory
        city, _ = init_central(directory, province, PASSWORD)
        city.close()

    @classmethod
    def existing(cls, directory: Path) -> CityDir:
        """A city directory made before (a copy, say)."""
        made = cls.__new__(cls)
        made.dir = directory
        return made

    @contextlib.contextmanager
    def opened(self) -> Iterator[City]:
        city = open_central(self.dir)
        try:
            yield city
        finally:
            city.close()

    def add_node(self, unit: str, central_url: str, out: Path, tls_pin: str | None = None) -> Path:
        """A node file; a box of a plain http:// city (the tests' usual) has the insecure setting."""
        with self.opened() as city:
            new = add_node(
                city, unit, central_url, tls_pin=tls_pin, insecure_lan_test=central_url.startswith("http://")
            )
        write_node_file(out, new.node_file)
        return out

    def add_account(self, username: str, role: str, unit: str, full_name: str | None = None) -> None:
        with self.opened() as city:
            add_account(city.node, username, full_name or username, role, PASSWORD, unit)

    def server(self, port: int, log_dir: Path, tls: tuple[Path, Path] | None = None) -> Server:
        """``tls``: (certificate, key) PEM files to serve HTTPS with."""
        args = motcua("central", "serve", "--data", str(self.dir), "--host", "127.0.0.1", "--port", str(port))
        if tls is None:
            return Server("central", args, port, log_dir / "central.log")
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        return Server("central", args, port, log_dir / "central.log", scheme="https")


def write_settings(data_dir: Path, **values: int | str | bool) -> None:
    """DIR/edge.toml (flat TOML of the settings in edge/settings.py)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f'{key} = "{value}"')
    (data_dir / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def edge_dir(directory: Path, node_file: Path, **settings: int | str | bool) -> Path:
    """``motcua edge init --data DIR --node NODE_FILE`` in process, plus DIR/edge.toml."""
    node = init_from_node_file(directory, node_file)
    node.close()
    if settings:
        write_settings(directory, **settings)
    return directory


def edge_server(directory: Path, port: int, log_dir: Path) -> Server:
    args = motcua("edge", "serve", "--data", str(directory), "--host", "127.0.0.1", "--port", str(port))
    return Server(f"edge {directory.name}", args, port, log_dir / f"edge-{directory.name}.log", "/login")


@contextlib.contextmanager
def opened_node(directory: Path) -> Iterator[Node]:
    node = open_node(directory)
    try:
        yield node
    finally:
        node.close()


class Clerk:
    """A clerk using an edge's JSON API (token auth)."""

    def __init__(self, base_url: str, username: str, password: str = PASSWORD) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        response = self.client.post("/api/v1/auth/token", json={"username": username, "password": password})
        if response.status_code != 200:
            self.client.close()
            raise AssertionError(f"login of {username} failed: {response.status_code} {response.text}")
        self.client.headers["authorization"] = f"Bearer {response.json()['token']}"

    def receive(self, applicant: str, **fields: object) -> dict[str, object]:
        body = {
            "procedure": HOUSEHOLD_BUSINESS,
            "applicant_name": applicant,
            "citizen_id": "092085001234",
            "phone": "0912345678",
            "address": "12 Mậu Thân",
            **fields,
        }
        response = self.client.post("/api/v1/dossiers", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def act(self, dossier_id: str, action: str, **fields: object) -> dict[str, object]:
        response = self.client.post(
            f"/api/v1/dossiers/{dossier_id}/actions", json={"action": action, **fields}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def status(self) -> dict[str, object]:
        response = self.client.get("/api/v1/sync/status")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Clerk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- a world: a city process, a bad link per commune, communes --------------------------------


class Link(FaultProxy):
    """A :class:`FaultProxy` whose ``down`` also breaks the connections already open, as a
    real link going down does (the proxy alone refuses only new ones, and a client's kept-alive
    connection would carry on through the outage)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._live: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._live.add(writer)
        try:
            await super()._handle(reader, writer)
        finally:
            self._live.discard(writer)

    def set(self, **faults: object) -> None:
        super().set(**faults)
        if faults.get("down"):
            self.drop()

    def drop(self) -> None:
        """Break every open connection now (an abort: the far ends see a reset)."""
        done = threading.Event()

        def abort_all() -> None:
            for writer in list(self._live):
                writer.transport.abort()
            done.set()

        self._loop.call_soon_threadsafe(abort_all)
        done.wait(5)


@dataclass
class Edge:
    """A commune: its data directory, its link (proxy) to the city, and, when driven in this
    process, its opened node (:attr:`node`)."""

    unit: str
    dir: Path
    proxy: Link
    node: Node | None = None
    server: Server | None = None

    @property
    def opened(self) -> Node:
        assert self.node is not None, f"edge {self.unit} is not open in this process"
        return self.node


class World:
    """One city of province 92 served by a real process, and communes behind fault proxies.

    ``edge_settings`` go to every commune's edge.toml (small batches and chunks make cuts land
    inside a batch and resumption count)."""

    def __init__(
        self,
        tmp: Path,
        units: tuple[str, ...] = (NINH_KIEU, CAI_KHE),
        accounts: Mapping[str, tuple[str, str]] | None = None,
        **edge_settings: int,
    ) -> None:
        self.tmp = tmp
        self.units = units
        self.accounts = dict(accounts or {})
        """username -> (role, unit): made at the city before it serves; they reach edges by sync."""
        # Every round compares digests: settle() waits for a round that found both sides equal.
        self.edge_settings = {
            "sync_interval_s": 1,
            "sync_max_backoff_s": 2,
            "digest_interval_s": 0,
            **edge_settings,
        }
        self.city = CityDir(tmp / "city")
        self.central_port = free_port()
        self.central: Server | None = None
        self.edges: dict[str, Edge] = {}
        self._peers: list[HttpPeer] = []
        self._stack = contextlib.ExitStack()

    def start(self) -> World:
        for username, (role, unit) in self.accounts.items():
            self.city.add_account(username, role, unit)
        for unit in self.units:
            proxy = self._stack.enter_context(Link("127.0.0.1", self.central_port))
            node_file = self.city.add_node(unit, proxy.url, self.tmp / f"{unit}.node.json")
            directory = edge_dir(self.tmp / f"edge-{unit}", node_file, **self.edge_settings)
            self.edges[unit] = Edge(unit, directory, proxy)
        self.start_central()
        return self

    def start_central(self) -> Server:
        self.central = self.city.server(self.central_port, self.tmp).start()
        return self.central

    def stop_central(self) -> None:
        if self.central is not None:
            self.central.stop()
            self.central = None

    # --- communes in this process -----------------------------------------------------------

    def open(self, unit: str) -> Node:
        edge = self.edges[unit]
        if edge.node is None:
            edge.node = open_node(edge.dir)
        return edge.node

    def settings(self, unit: str) -> Settings:
        return load_settings(self.edges[unit].dir)

    def peer(self, unit: str, timeout: float = 10.0, direct: bool = False) -> HttpPeer:
        """An HttpPeer of the commune to the city: through its proxy, or ``direct``."""
        node = self.open(unit)
        url = self.central_url if direct else self.edges[unit].proxy.url
        peer = HttpPeer(url, node.identity, node.clock, timeout=timeout)
        self._peers.append(peer)
        return peer

    @property
    def central_url(self) -> str:
        return f"http://127.0.0.1:{self.central_port}"

    def round(self, unit: str, timeout: float = 10.0) -> RoundResult:
        """One round of the real sync client on a fresh connection through the commune's link
        (a fault armed on the proxy applies to that connection)."""
        peer = self.peer(unit, timeout)
        try:
            return sync_once(self.open(unit), peer, self.settings(unit))
        finally:
            peer.close()
            self._peers.remove(peer)

    def settle(self, units: tuple[str, ...] | None = None, max_passes: int = 6) -> list[RoundResult]:
        """Rounds of every commune in turn until a whole pass is ``ok``, moves nothing and every
        anti-entropy check agrees: the world is quiescent."""
        units = units or self.units
        results: list[RoundResult] = []
        for _ in range(max_passes):
            passed = [self.round(unit) for unit in units]
            results.extend(passed)
            if all(r.ok and r.digest_match and not _moved(r) for r in passed):
                return results
        summary = "\n".join(r.summary() for r in results[-len(units) :])
        raise AssertionError(f"no quiescence after {max_passes} passes:\n{summary}")

    def central_digest(self, unit: str) -> bytes:
        """The city's digest of the commune's scope, asked directly (not through the link)."""
        peer = self.peer(unit, direct=True)
        try:
            return peer.digest().scope_digest
        finally:
            peer.close()
            self._peers.remove(peer)

    # --- communes as processes ----------------------------------------------------------------

    def serve_edge(self, unit: str) -> Server:
        edge = self.edges[unit]
        if edge.node is not None:
            edge.node.close()
            edge.node = None
        if edge.server is None:
            edge.server = edge_server(edge.dir, free_port(), self.tmp)
        edge.server.start()
        return edge.server

    def close_nodes(self) -> None:
        for edge in self.edges.values():
            if edge.node is not None:
                edge.node.close()
                edge.node = None

    def stop_edge(self, unit: str) -> None:
        server = self.edges[unit].server
        if server is not None:
            server.stop()

    def close(self) -> None:
        for peer in self._peers:
            peer.close()
        for edge in self.edges.values():
            if edge.server is not None:
                edge.server.stop()
            if edge.node is not None:
                edge.node.close()
                edge.node = None
        self.stop_central()
        self._stack.close()


def _moved(result: RoundResult) -> bool:
    return bool(result.ops_sent or result.ops_received or result.blobs_sent or result.blobs_received)


# --- what must hold after the link healed -----------------------------------------------------


@dataclass
class Held:
    """What one replica holds, read from its database: per origin (count, lowest, highest seq),
    its vector, pending ops, and the digest of a scope."""

    per_origin: dict[str, tuple[int, int, int]]
    vector: dict[str, int]
    pending: int
    op_count: int


def held(node: Node) -> Held:
    replica = node.replica
    conn = replica.reader()
    try:
        rows = conn.execute(
            "SELECT n.node, count(*), min(o.seq), max(o.seq) FROM sync_op AS o "
            "JOIN sync_node AS n ON n.id = o.node GROUP BY n.node"
        ).fetchall()
    finally:
        conn.close()
    return Held(
        {str(node_): (int(c), int(lo), int(hi)) for node_, c, lo, hi in rows},
        dict(replica.vector()),
        replica.pending_count(),
        replica.op_count(),
    )


def assert_dense(name: str, h: Held, origins: Iterable[str] | None = None) -> None:
    """Every origin's ops (of ``origins`` only, for a partial replica: an edge holds only the
    ops of its scope) are 1..n, nothing missing and nothing twice, and the vector says n."""
    assert h.pending == 0, f"{name}: {h.pending} ops wait behind a gap"
    wanted = None if origins is None else set(origins)
    for origin, (count, lo, hi) in h.per_origin.items():
        if wanted is not None and origin not in wanted:
            continue
        assert (lo, hi) == (1, count), f"{name}: ops of {origin} are {lo}..{hi} but {count} held"
        assert h.vector.get(origin) == count, f"{name}: vector says {h.vector.get(origin)} for {origin}"
    assert h.op_count == sum(c for c, _, _ in h.per_origin.values())


def assert_converged(world: World, dossiers: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """After the link healed: rounds run to quiescence, then every commune's scope digest equals
    the city's, every log is dense (no op lost, none twice), the city holds every op each commune
    authored, and each dossier in ``dossiers`` (id -> units that must hold it) is at the city and
    at those units with the same ops and the same state. Stops the city's process to read it."""
    world.settle()
    for unit in world.units:
        edge = world.open(unit)
        assert edge.replica.scope_digest({unit, EVERYWHERE}) == world.central_digest(unit), unit
    world.stop_central()
    with world.city.opened() as city:
        hub = held(city.node)
        assert_dense("central", hub)
        for unit in world.units:
            edge = world.open(unit)
            me = edge.identity.node
            mine = held(edge)
            assert_dense(f"edge {unit}", mine, [me])
            assert hub.vector.get(me, 0) == mine.vector.get(me, 0), f"the city lacks ops of {unit}"
            keys = {unit, EVERYWHERE}
            assert edge.replica.scope_digest(keys) == city.node.replica.scope_digest(keys), unit
        for dossier, units in (dossiers or {}).items():
            at_city = city.node.replica.state("dossier", dossier)
            assert at_city, f"dossier {dossier} is not at the city"
            assert at_city.get("_created"), f"dossier {dossier} has no create op at the city"
            timeline = city.node.replica.ops_of("dossier", dossier)
            for unit in units:
                edge = world.open(unit)
                assert edge.replica.state("dossier", dossier) == at_city, f"{dossier} differs at {unit}"
                assert edge.replica.ops_of("dossier", dossier) == timeline, f"{dossier} timeline at {unit}"
