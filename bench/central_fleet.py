"""Benchmark: the whole fleet of a province syncs at once while city IT watches the dashboard.

Setup (not measured): a city of province 92 and one registered node per commune and ward of
Cần Thơ (72 + 31 = 103 units since 2025, ``schema.units``), each a real edge data directory made
from its node file (``motcua edge init --node``) and opened in this process; each syncs once to
get the reference data.

Measured: the city runs as a real ``motcua central serve`` process (one uvicorn worker). Every
node runs its own loop in a thread for ``--duration``: it receives a dossier through the real
command (``edge.dossiers.receive``; every fourth is a household business dossier handled by the
next node's unit, so the city must forward it), accepts the one it received before, then runs a
real round of the sync client (``edge.syncclient.sync_once``: time, hello, push, scans, pull,
anti-entropy), then waits ``--interval`` seconds (± 50 %, as the edge's loop jitters). The
first rounds of all nodes start at the same moment, as a fleet back after an outage does
(``burst_s``: until the last of them ended). Every request of every round is timed by
endpoint. Meanwhile an admin logged in at the city refreshes the fleet dashboard every
``--refresh`` seconds: ``/fleet``, the table ``/fleet/table`` (what its htmx polls) and one
node's page with its SVG charts; and a probe asks ``/sync/v1/time`` (no signature, no
database) every 0.2 s.

Baseline, in the same run and before the load: one node alone does rounds and the admin alone
loads each page (``idle_p50_ms``); ``p95_ratio`` = p95 under the fleet / idle p50, and
``probe_ratio`` = the probe's p50 under load / idle (what any request costs then).

Afterwards each node syncs until quiescent, the city stops, and the run checks from the
databases that the city holds every op of every node (its vector), nothing waits behind a gap,
and every forwarded dossier is at its handling node as at the city (``data_lost``).

Prints one JSON object; **exits 1 when any round failed, any request or page errored, or
anything was lost** (correctness, not timing). ``--quick``: 20 nodes for 30 s, a round
every 5 s, the dashboard every 2 s.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from _benchenv import machine
from _clerks import memory_mb, percentile, progress

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # the suite's server helper

from servers import PASSWORD, CityDir, Server, free_port  # noqa: E402

from central.city import ADMIN_USERNAME  # noqa: E402
from central.registry import add_node, write_node_file  # noqa: E402
from edge.auth import Actor  # noqa: E402
from edge.clockcheck import ClockStatus  # noqa: E402
from edge.dossiers import perform, receive  # noqa: E402
from edge.node import Node, init_from_node_file  # noqa: E402
from edge.settings import Settings  # noqa: E402
from edge.settings import load as load_settings  # noqa: E402
from edge.syncclient import sync_once  # noqa: E402
from schema.dossier import Draft  # noqa: E402
from schema.units import COMMUNE, WARD, province_units  # noqa: E402
from sync.transport import HttpPeer  # noqa: E402

PROVINCE = "92"
HOUSEHOLD_BUSINESS = "2.000720"  # non-territorial: received anywhere, handled by the chosen unit
CLOCK_OK = ClockStatus(False, 0, None)
PAGES = ("fleet", "fleet_table", "fleet_node")
IDLE_ROUNDS = 10


class Timings:
    """Latencies (ms) by name, and errors, from many threads."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def add(self, name: str, ms: float) -> None:
        with self.lock:
            self.ms[name].append(ms)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        return {
            name: {
                "count": len(values),
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99),
            }
            for name, values in sorted(self.ms.items())
        }


class TimedPeer(HttpPeer):
    """The real HttpPeer, timing every request by endpoint (time, hello, push, pull, digest,
    blobs) into :class:`Timings`; a failed request is an error there too."""

    def __init__(self, url: str, node: Node, timings: Timings) -> None:
        super().__init__(url, node.identity, node.clock, timeout=60)
        self.timings = timings

    def _request(self, method: str, path: str, body: bytes = b"", *, signed: bool = True) -> httpx.Response:
        endpoint = path.split("/")[3] if path.count("/") >= 3 else path
        started = time.perf_counter()
        try:
            response = super()._request(method, path, body, signed=signed)
        except Exception as exc:
            self.timings.error(f"{endpoint}: {type(exc).__name__}: {exc}")
            raise
        self.timings.add(endpoint, (time.perf_counter() - started) * 1000)
        return response


# --- the fleet -------------------------------------------------------------------------------------


@dataclass
class Member:
    """One commune or ward: its opened node, who works there, what it wrote."""

    node: Node
    settings: Settings
    handled_by_next: str
    """The next member's unit: every fourth dossier received here is handled there."""
    rnd: random.Random
    received: list[str] = field(default_factory=list)
    routed: list[tuple[str, str]] = field(default_factory=list)
    """(dossier, handling unit) of the dossiers received here for another unit."""
    rounds: dict[str, int] = field(default_factory=dict)
    first_round_s: float | None = None
    """Seconds from the start of the load to the end of this node's first round (the burst)."""

    @property
    def unit(self) -> str:
        return self.node.config.unit

    def write(self) -> None:
        """A citizen at the counter: receive a dossier; accept the previous one."""
        actor = Actor(f"canbo_{self.unit}", f"Cán bộ {self.unit}", self.unit, "clerk")
        routed = len(self.received) % 4 == 3
        handling = self.handled_by_next if routed else ""
        data = Draft(
            procedure=HOUSEHOLD_BUSINESS,
            applicant_name=f"Nguyễn Văn {self.rnd.choice(['An', 'Bình', 'Cường', 'Dũng', 'Hùng'])}",
            citizen_id="092085001234",
            dob=date(1985, 3, 14),
            phone="0912345678",
            address="12 Mậu Thân",
            address_unit=self.unit,
            handling_unit=handling,
        )
        if self.received and self.received[-1] not in {d for d, _ in self.routed}:
            perform(self.node, actor, self.received[-1], "accept")
        dossier = receive(self.node, actor, data, [], CLOCK_OK).id
        self.received.append(dossier)
        if routed:
            self.routed.append((dossier, handling))

    def round(self, url: str, timings: Timings) -> bool:
        peer = TimedPeer(url, self.node, timings)
        try:
            result = sync_once(self.node, peer, self.settings)
        finally:
            peer.close()
        self.rounds[result.outcome] = self.rounds.get(result.outcome, 0) + 1
        if not result.ok:
            timings.error(f"round of {self.unit}: {result.summary()}")
        return result.ok and not (result.ops_sent or result.ops_received)


def make_fleet(city: CityDir, url: str, count: int, root: Path, seed: int) -> list[Member]:
    units = [u.code for u in province_units(PROVINCE) if u.kind in (COMMUNE, WARD)]
    if count > len(units):
        raise SystemExit(f"province {PROVINCE} has {len(units)} communes and wards, not {count}")
    files = []
    with city.opened() as c:
        for unit in units[:count]:
            new = add_node(c, unit, url)
            path = root / f"{unit}.node.json"
            write_node_file(path, new.node_file)
            files.append((unit, path))
    members = []
    for i, (unit, path) in enumerate(files):
        node = init_from_node_file(root / f"edge-{unit}", path)
        following = files[(i + 1) % len(files)][0]
        members.append(Member(node, load_settings(node.data_dir), following, random.Random(seed + i)))
        progress(f"made {i + 1}/{count} nodes")
    print(file=sys.stderr)
    return members


def settle(member: Member, url: str, timings: Timings, max_rounds: int = 10) -> None:
    for _ in range(max_rounds):
        if member.round(url, timings):
            return
    raise SystemExit(f"{member.unit} did not settle")


# --- the load --------------------------------------------------------------------------------------


@dataclass
class Clock:
    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)

    def running(self) -> bool:
        return time.monotonic() < self.deadline and not self.stop.is_set()

    def pause(self, seconds: float) -> None:
        self.stop.wait(max(0.0, min(seconds, self.deadline - time.monotonic())))


def live(member: Member, url: str, interval_s: float, timings: Timings, clock: Clock, started: float) -> None:
    """A node's day, compressed: write, sync, wait (jittered as the edge's loop does), until the
    time is up. The first rounds of all nodes start together: the fleet back after an outage."""
    rnd = random.Random(member.unit)
    while clock.running():
        try:
            member.write()
            member.round(url, timings)
        except Exception as exc:  # reported; the run fails on it
            timings.error(f"{member.unit}: {type(exc).__name__}: {exc}")
        if member.first_round_s is None:
            member.first_round_s = time.monotonic() - started
        clock.pause(interval_s * (0.5 + rnd.random()))


@contextmanager
def admin_client(url: str) -> Iterator[httpx.Client]:
    """City IT's browser, logged in through the city's form."""
    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if csrf is None:
            raise SystemExit("no CSRF token on the city's login page: update the benchmark")
        data = {"username": ADMIN_USERNAME, "password": PASSWORD, "csrf": csrf[1], "next": "/fleet"}
        response = client.post("/login", data=data)
        if response.status_code != 303:
            raise SystemExit(f"the admin could not log in at the city: {response.status_code}")
        yield client


def refresh(client: httpx.Client, nodes: list[str], rnd: random.Random, timings: Timings) -> None:
    """What city IT's browser loads: the fleet page, its table, one node's page with charts."""
    for name, path in (
        ("fleet", "/fleet"),
        ("fleet_table", "/fleet/table"),
        ("fleet_node", f"/fleet/nodes/{rnd.choice(nodes)}"),
    ):
        started = time.perf_counter()
        try:
            response = client.get(path)
        except httpx.HTTPError as exc:
            timings.error(f"{path}: {type(exc).__name__}")
            continue
        if response.status_code != 200:
            timings.error(f"{path}: HTTP {response.status_code}")
        elif name == "fleet_node" and "<svg" not in response.text:
            timings.error(f"{path}: no chart on the node page")
        else:
            timings.add(name, (time.perf_counter() - started) * 1000)


def watch(url: str, nodes: list[str], every_s: float, timings: Timings, clock: Clock) -> None:
    rnd = random.Random(7)
    try:
        with admin_client(url) as client:
            while clock.running():
                refresh(client, nodes, rnd, timings)
                clock.stop.wait(every_s)
    except (Exception, SystemExit) as exc:  # reported; the run fails on it
        timings.error(f"dashboard: {type(exc).__name__}: {exc}")


def probe(url: str, out: list[float], clock: Clock, every_s: float = 0.2) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        while clock.running():
            started = time.perf_counter()
            if client.get("/sync/v1/time").status_code == 200:
                out.append((time.perf_counter() - started) * 1000)
            clock.stop.wait(every_s)


# --- checking what reached the city ----------------------------------------------------------------


def lost(city: CityDir, fleet: list[Member]) -> list[str]:
    found = []
    by_unit = {m.unit: m for m in fleet}
    with city.opened() as c:
        hub = c.node.replica
        vector = hub.vector()
        if hub.pending_count():
            found.append(f"{hub.pending_count()} ops wait behind a gap at the city")
        for m in fleet:
            me = m.node.identity.node
            if vector.get(me, 0) != m.node.replica.vector()[me]:
                found.append(
                    f"the city holds {vector.get(me, 0)} of {m.unit}'s {m.node.replica.vector()[me]}"
                )
            for dossier in m.received:
                if not hub.state("dossier", dossier):
                    found.append(f"{dossier} of {m.unit} is not at the city")
            for dossier, handling in m.routed:
                there = by_unit[handling].node.replica.state("dossier", dossier)
                if there != hub.state("dossier", dossier):
                    found.append(f"{dossier} of {m.unit} did not reach {handling} whole")
    return found


# --- the run ---------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="motcua-fleet-") as tmp:
        root = Path(tmp)
        city = CityDir(root / "city")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        fleet = make_fleet(city, url, args.nodes, root, args.seed)
        server: Server = city.server(port, root)
        try:
            server.start()
            assert server.process is not None
            setup = Timings()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda m: settle(m, url, setup), fleet))
            setup_s = time.perf_counter() - started
            if setup.errors:
                raise SystemExit(f"the first syncs failed: {setup.errors[:3]}")

            # The baseline: one node alone, the admin alone, the probe alone.
            idle = Timings()
            alone = fleet[0]
            for _ in range(args.idle_rounds):
                alone.write()
                alone.round(url, idle)
            nodes = [m.node.identity.node for m in fleet]
            with admin_client(url) as client:
                for _ in range(args.idle_rounds):
                    refresh(client, nodes, random.Random(1), idle)
            idle_probe: list[float] = []
            probe(url, idle_probe, Clock(time.monotonic() + args.idle_rounds / 5), every_s=0.02)

            # The fleet at once.
            load = Timings()
            probe_ms: list[float] = []
            clock = Clock(time.monotonic() + args.duration)
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            load_started = time.monotonic()
            before = {m.unit: dict(m.rounds) for m in fleet}
            threads = [
                threading.Thread(
                    target=live, args=(m, url, args.interval, load, clock, load_started), name=m.unit
                )
                for m in fleet
            ]
            threads.append(threading.Thread(target=watch, args=(url, nodes, args.refresh, load, clock)))
            threads.append(threading.Thread(target=probe, args=(url, probe_ms, clock)))
            progress(f"{len(fleet)} nodes syncing for {args.duration:g} s…")
            for t in threads:
                t.start()
            try:
                for t in threads:
                    t.join()
            except BaseException:
                clock.stop.set()
                raise
            elapsed = time.monotonic() - load_started
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            after = {m.unit: dict(m.rounds) for m in fleet}  # the final rounds below are not the load's
            bench_cpu = cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
            city_rss = memory_mb(server.process.pid).get("VmHWM")
            print(file=sys.stderr)

            final = Timings()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda m: settle(m, url, final), fleet))
            for m in fleet:  # the dossiers forwarded in the last rounds of others
                settle(m, url, final)
            server.stop()
            missing = lost(city, fleet)
            if load.errors or final.errors:
                print(f"--- {server.name}:\n{server.log()}", file=sys.stderr)
        except BaseException:
            print(f"--- {server.name}:\n{server.log()}", file=sys.stderr)
            raise
        finally:
            server.stop()
            for m in fleet:
                m.node.close()

    endpoints = load.summary()
    idle_summary = idle.summary()
    sync_names = [n for n in endpoints if n not in PAGES]
    sync_ms = [ms for n in sync_names for ms in load.ms[n]]
    rounds: dict[str, int] = defaultdict(int)
    for m in fleet:
        for outcome, n in after[m.unit].items():
            rounds[outcome] += n - before[m.unit].get(outcome, 0)
    burst = [m.first_round_s for m in fleet if m.first_round_s is not None]

    def ratio(name: str) -> float | None:
        under, alone_ms = endpoints.get(name, {}).get("p95_ms"), idle_summary.get(name, {}).get("p50_ms")
        return round(float(under) / float(alone_ms), 1) if under and alone_ms else None

    probe_idle, probe_load = percentile(idle_probe, 50), percentile(probe_ms, 50)
    errors = len(load.errors) + len(final.errors) + len(idle.errors)
    return {
        "nodes": len(fleet),
        "seconds": args.duration,
        "interval_s": args.interval,
        "refresh_s": args.refresh,
        "sync_requests": len(sync_ms),
        "sync_requests_per_s": round(len(sync_ms) / elapsed, 1),
        "sync_p50_ms": percentile(sync_ms, 50),
        "sync_p95_ms": percentile(sync_ms, 95),
        "sync_p99_ms": percentile(sync_ms, 99),
        "by_endpoint": {n: endpoints[n] for n in sync_names},
        "dashboard": {n: endpoints[n] for n in PAGES if n in endpoints},
        "idle_p50_ms": {n: v["p50_ms"] for n, v in idle_summary.items()},
        "p95_ratio": {n: ratio(n) for n in endpoints},
        "probe_p50_ms": probe_load,
        "probe_idle_p50_ms": probe_idle,
        "probe_ratio": round(probe_load / probe_idle, 1) if probe_load and probe_idle else None,
        "rounds": dict(rounds),
        "burst_s": round(max(burst), 1) if burst else None,
        "burst_round_p50_s": round(statistics.median(burst), 1) if burst else None,
        "rounds_per_s": round(sum(rounds.values()) / elapsed, 1),
        "dossiers_received": sum(len(m.received) for m in fleet),
        "dossiers_forwarded": sum(len(m.routed) for m in fleet),
        "errors": errors,
        "error_sample": (load.errors + final.errors + idle.errors)[:10],
        "data_lost": len(missing),
        "lost_sample": missing[:10],
        "city_rss_mb": city_rss,
        "bench_cpu_s_per_s": round(bench_cpu / elapsed, 2),
        "setup_s": round(setup_s, 1),
        "seed": args.seed,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 nodes for 30 s, every 5 s: a smoke run")
    parser.add_argument("--nodes", type=int, default=103, help="communes and wards syncing (at most 103)")
    parser.add_argument("--duration", type=float, default=300, help="seconds the fleet syncs")
    parser.add_argument("--interval", type=float, default=10, help="seconds between a node's rounds (±50 %%)")
    parser.add_argument("--refresh", type=float, default=3, help="seconds between dashboard refreshes")
    parser.add_argument("--idle-rounds", type=int, default=IDLE_ROUNDS, help="baseline rounds and page loads")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.duration, args.interval, args.refresh, args.idle_rounds = 20, 30.0, 5.0, 2.0, 5
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the city process on the way out
    report = run(args)
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 1 if report["errors"] or report["data_lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
