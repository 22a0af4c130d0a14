"""``motcua demo``: a city and two Can Tho communes, served on this machine, with a link switch.

The city (province 92) is created with its reference data; two communes (Phường Ninh Kiều 31135
and Phường Cái Khế 31120) are each set up from a real provisioning kit (registered at the city,
signed, the node's key sealed by a passphrase, the city's snapshot of their scope inside), so
they serve their clerks before any link. Each commune then receives a few hundred generated
dossiers (generated Vietnamese names, never real people), some of them for the other commune
(non-territorial). All three
servers run in this process; every commune syncs with the city in the background through a
link that the landing page (or ``--offline-unit``) switches off, so a visitor sees dossiers
queue, the badge turn offline, the transmission record fill with failures, and everything catch
up when the link returns. A simulated national portal (``central/upstream/simulator.py``) runs
beside them: the city sends every dossier to it, and the portal refuses one (Ninh Kiều's first),
which city IT finds in the dead letters of ``/fleet/upstream``. Ctrl-C stops it all
cleanly.
"""

from __future__ import annotations

import html
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from central.app import create_central_app
from central.city import City, init_central
from central.hub import Hub
from central.upstream.sender import Runner
from central.upstream.simulator import create_simulator
from central.upstream.store import UPSTREAM_FILE, AdapterConfig, UpstreamStore, write_secret
from edge.accounts import add_account
from edge.app import create_app
from edge.auth import Actor
from edge.clockcheck import ClockStatus
from edge.dossiers import perform, receive
from edge.errors import Forbidden
from edge.node import Node, open_node
from edge.settings import load
from edge.syncclient import http_peer
from edge.uploads import check_scan
from ops.demodata import counter_weeks, person
from ops.kit import apply_kit, create_kit, verify_kit
from schema import PILOT_PROCEDURES
from schema.dossier import Channel, Draft
from sync.clock import Clock
from sync.errors import PeerUnreachable
from sync.identity import fingerprint
from sync.transport import Peer

PROVINCE = "92"
COMMUNES = {"31135": "ninhkieu", "31120": "caikhe"}
CLOCK_TRUSTED = ClockStatus(False, 0, None)
DEMO_SCAN = check_scan(
    "to-khai.pdf",
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    1 << 20,
)
"""One small scan, the same for every demo dossier that has one (stored once: blobs are
addressed by content)."""
PASSWORD = "Demo2025"  # noqa: S105 (a published demo password)
PORTAL_USER, PORTAL_PASSWORD = "motcua-demo", "demo-portal-password"  # the simulated portal's
DEMO_UNIT_CODES = {"31135": "000.31.35.H13", "31120": "000.31.20.H13"}
"""Electronic identifier codes in the portal's shape, made up for the demo."""
KIT_PASSPHRASE = "demo-kit-passphrase"  # noqa: S105 (the demo's kits only)
"""The password of every demo account (generated data; never use it on a real box)."""


@dataclass
class Links:
    """The demo's link switch: a commune whose link is down reaches nothing."""

    up: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(COMMUNES, True))


class SwitchedPeer:
    """A real HttpPeer behind the demo's switch: when the switch is off, every call fails the way
    a cut cable does (PeerUnreachable), so the box's sync loop backs off and records why."""

    def __init__(self, peer: Peer, is_up: Callable[[], bool]) -> None:
        self._peer = peer
        self._is_up = is_up

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._peer, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            if not self._is_up():
                raise PeerUnreachable("no connection to the city server (the demo's link is off)")
            return attr(*args, **kwargs)

        return call


@dataclass
class World:
    directory: Path
    city: City
    edges: dict[str, Node]
    links: Links = field(default_factory=Links)
    refused: str | None = None
    """The portal code of the one dossier the simulated portal refuses (a dead letter)."""

    def close(self) -> None:
        for edge in self.edges.values():
            edge.close()
        self.city.close()


def _generate(edge: Node, other: str, dossiers: int, rnd: random.Random) -> tuple[int, int]:
    """Four weeks at the counter, replayed through the real service layer (receive, accept,
    start, processed, return the result) with the box's clock set to each moment of the plan
    (:func:`ops.demodata.counter_weeks`): working days, office hours, each procedure's time limit,
    a few dossiers late. One in ten is received for the other commune (non-territorial)."""
    unit = edge.config.unit
    name = COMMUNES[unit]
    clerk = Actor(f"canbo_{name}", f"Cán bộ {name}", unit, "clerk")
    leader = Actor(f"lanhdao_{name}", f"Lãnh đạo {name}", unit, "leader")
    plan = counter_weeks(rnd, datetime.now(UTC), dossiers)
    moment = [0]
    real = edge.replica.clock
    # Past moments need a clock of their own: the box's has already seen today (its kit).
    edge.replica.clock = Clock(wall=lambda: moment[0])
    ids: dict[int, str] = {}
    routed = 0
    try:
        for step in plan:
            moment[0] = int(step.at.timestamp() * 1000)
            if step.action == "receive":
                who = person(rnd)
                data = Draft(
                    procedure=step.procedure,
                    applicant_name=who.name,
                    citizen_id=who.citizen_id,
                    dob=who.dob,
                    phone=who.phone,
                    address=who.address,
                    address_unit=unit,
                    handling_unit=other if step.routed else unit,
                    channel=Channel.ONLINE if rnd.random() < 0.15 else Channel.DIRECT,
                )
                scans = [DEMO_SCAN] if rnd.random() < 0.7 else []  # most counters scan the form
                ids[step.dossier] = receive(edge, clerk, data, scans, CLOCK_TRUSTED).id
                routed += step.routed
                continue
            try:
                perform(edge, clerk, ids[step.dossier], step.action)
            except Forbidden:
                perform(edge, leader, ids[step.dossier], step.action)
    finally:
        real.advance_to(edge.replica.clock.last)
        edge.replica.clock = real
    return len(ids), routed


def build(
    directory: Path, central_url: str, dossiers: int = 150, say: Callable[[str], None] = print
) -> World:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    city, _ = init_central(directory / "city", PROVINCE, admin_password=PASSWORD)
    say(f"city {city.node.identity.node}: Thành phố Cần Thơ, {len(PILOT_PROCEDURES)} pilot procedures")
    for unit, name in COMMUNES.items():
        add_account(city.node, f"canbo_{name}", f"Cán bộ {name}", "clerk", PASSWORD, unit)
        add_account(city.node, f"lanhdao_{name}", f"Lãnh đạo {name}", "leader", PASSWORD, unit)
    edges: dict[str, Node] = {}
    rnd = random.Random(2025)
    for unit, name in COMMUNES.items():
        # A real provisioning kit, as a technician would carry it on a USB stick (without the
        # offline wheelhouse: this machine already runs motcua).
        kit = directory / f"kit-{name}"
        # INSECURE, for the demo on one machine only: the boxes sync over plain http://.
        create_kit(city, unit, central_url, kit, KIT_PASSPHRASE, insecure_lan_test=True)
        verified = verify_kit(kit, expect_city=fingerprint(city.node.identity.public_raw))
        applied = apply_kit(verified, directory / f"edge-{unit}", KIT_PASSPHRASE)
        edges[unit] = open_node(directory / f"edge-{unit}")
        say(f"commune {unit} ({name}): node {applied.node} from its kit, {applied.ops} ops of reference data")
    for unit, edge in edges.items():
        other = next(u for u in COMMUNES if u != unit)
        made, routed = _generate(edge, other, dossiers, rnd)
        say(f"commune {unit}: {made} dossiers received ({routed} for {other}, non-territorial)")
    world = World(directory, city, edges)
    with edges["31135"].reader() as conn:
        row = conn.execute(
            "SELECT code FROM dossiers WHERE receiving_unit = '31135' ORDER BY code LIMIT 1"
        ).fetchone()
    if row is not None:
        unit, day, seq = str(row[0]).rsplit("-", 2)
        world.refused = f"{DEMO_UNIT_CODES[unit]}-{day}-{seq}"
        say(f"the simulated portal will refuse dossier {row[0]} (on the portal {world.refused})")
    return world


def configure_portal(city: City, portal_url: str) -> None:
    """The city's adapter to the simulated portal, as ``motcua upstream add`` makes it."""
    data = city.node.data_dir
    secret = write_secret(data, "dvcqg", PORTAL_PASSWORD)
    store = UpstreamStore(data / UPSTREAM_FILE)
    try:
        store.add_adapter(
            AdapterConfig("dvcqg", "dvcqg", portal_url, PORTAL_USER, str(secret.relative_to(data)), 50.0), 0
        )
        store.set_codes("unit", DEMO_UNIT_CODES, 0)
        store.set_codes("sector", {p.sector: f"LV{i:03d}" for i, p in enumerate(PILOT_PROCEDURES, 1)}, 0)
    finally:
        store.close()


# --- serving ------------------------------------------------------------------------------------


def _landing(world: World, urls: dict[str, str]) -> Starlette:
    def page(request: Request) -> Response:
        rows = []
        for unit, name in COMMUNES.items():
            up = world.links.up[unit]
            state = "UP" if up else "DOWN"
            action = "down" if up else "up"
            rows.append(
                f"<tr><td>{unit} ({name})</td><td><a href='{urls[unit]}'>{urls[unit]}</a></td>"
                f"<td>canbo_{name} / lanhdao_{name}</td><td><b>{state}</b> "
                f"<form method='post' action='/link/{unit}/{action}' class='inline'>"
                f"<button>switch {action}</button></form></td></tr>"
            )
        body = (
            "<!doctype html><html lang='vi'><meta charset='utf-8'><title>motcua demo</title>"
            "<h1>motcua demo — Thành phố Cần Thơ</h1>"
            f"<p>City (admin <code>quantri</code>): <a href='{urls['city']}'>{urls['city']}</a>"
            f" — fleet dashboard at <a href='{urls['city']}/fleet'>/fleet</a>, national portal "
            f"at <a href='{urls['city']}/fleet/upstream'>/fleet/upstream</a></p>"
            f"<p>Simulated national portal: <a href='{urls['portal']}/_sim/state'>what it received</a></p>"
            "<table border='1' cellpadding='6'><tr><th>Commune</th><th>Web app</th><th>Logins</th>"
            f"<th>Link to the city</th></tr>{''.join(rows)}</table>"
            f"<p>Every password: <code>{html.escape(PASSWORD)}</code> (generated demo data).</p></html>"
        )
        return HTMLResponse(body)

    def switch(request: Request) -> Response:
        unit = request.path_params["unit"]
        if unit in world.links.up:
            world.links.up[unit] = request.path_params["state"] == "up"
        return RedirectResponse("/", status_code=303)

    return Starlette(routes=[Route("/", page), Route("/link/{unit}/{state}", switch, methods=["POST"])])


@dataclass
class Running:
    servers: list[uvicorn.Server]
    threads: list[threading.Thread]
    urls: dict[str, str]
    upstream: tuple[Runner, UpstreamStore] | None = None

    def stop(self) -> None:
        if self.upstream is not None:
            self.upstream[0].stop()
            self.upstream[1].close()
        for server in self.servers:
            server.should_exit = True
        for thread in self.threads:
            thread.join(15)


def serve(world: World, host: str, base_port: int, sync_interval_s: int = 10) -> Running:
    backoff = 3 * sync_interval_s  # a visitor sees the catch-up soon after switching the link on
    """Landing page on base_port, the city on base_port+1, the communes after it, then the
    simulated portal."""
    urls = {"landing": f"http://{host}:{base_port}", "city": f"http://{host}:{base_port + 1}"}
    urls["portal"] = f"http://{host}:{base_port + 2 + len(world.edges)}"
    configure_portal(world.city, urls["portal"])
    store = UpstreamStore(world.city.node.data_dir / UPSTREAM_FILE)
    runner = Runner(world.city.node.data_dir, store, world.city.node.replica, world.city.node.identity.sign)
    apps = {"city": create_central_app(load(world.city.node.data_dir), Hub(world.city), upstream=store)}
    portal = create_simulator("dvcqg", PORTAL_USER, PORTAL_PASSWORD)
    portal.state.portal.set_faults({"refuse": [world.refused] if world.refused else []})
    apps["portal"] = portal
    for i, (unit, edge) in enumerate(world.edges.items()):
        urls[unit] = f"http://{host}:{base_port + 2 + i}"

        def factory(node: Node, unit: str = unit) -> Peer:
            return cast(Peer, SwitchedPeer(http_peer(node), lambda: world.links.up[unit]))

        settings = load(edge.data_dir, sync_interval_s=sync_interval_s, sync_max_backoff_s=backoff)
        apps[unit] = create_app(settings, edge, sync_peer=factory, background=True)
    apps["landing"] = _landing(world, urls)
    running = Running([], [], urls, (runner, store))
    for name, app in apps.items():
        port = int(urls[name].rsplit(":", 1)[1])
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, name=f"demo-{name}", daemon=True)
        thread.start()
        running.servers.append(server)
        running.threads.append(thread)
    deadline = time.monotonic() + 20
    while not all(s.started for s in running.servers):
        if time.monotonic() > deadline or not all(t.is_alive() for t in running.threads):
            running.stop()
            raise RuntimeError("the demo's servers did not start (is a port in use? try --port)")
        time.sleep(0.05)
    runner.start()
    return running


def run(
    directory: Path,
    *,
    dossiers: int = 150,
    host: str = "127.0.0.1",
    port: int = 8800,
    offline_unit: str | None = None,
    sync_interval_s: int = 10,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> int:
    world = build(directory, f"http://{host}:{port + 1}", dossiers, say)
    if offline_unit is not None:
        if offline_unit not in COMMUNES:
            world.close()
            raise SystemExit(f"motcua: --offline-unit must be one of {', '.join(COMMUNES)}")
        world.links.up[offline_unit] = False
    running = serve(world, host, port, sync_interval_s)
    say("")
    say(f"  demo home (link switches): {running.urls['landing']}")
    say(f"  city:                      {running.urls['city']}   login quantri")
    for unit, name in COMMUNES.items():
        state = "" if world.links.up[unit] else "   (link DOWN)"
        say(f"  commune {unit}:           {running.urls[unit]}   login canbo_{name}, lanhdao_{name}{state}")
    say(f"  simulated national portal: {running.urls['portal']}/_sim/state   (city IT: /fleet/upstream)")
    say(f"  password of every demo account: {PASSWORD}")
    say("  INSECURE DEMO: plain HTTP everywhere, boxes sync with insecure_lan_test (never on a real box)")
    say("  Ctrl-C stops the demo.")
    stop = stop or threading.Event()
    handlers = {}
    if _main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)
        say("stopping…")
        running.stop()
        world.close()
    return 0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
