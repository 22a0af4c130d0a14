"""Benchmark (soak): 20 clerks work a commune box while its background sync loop runs.

Setup (not measured): a city of province 92 (``motcua central serve``, a real process) with two
registered communes. Phường Ninh Kiều (31135) is the box under test: it is seeded with N
dossiers (10 ops each, ``ops.demodata``) through the real local-write API and syncs them to the
city once, with its clerks' accounts (made at the city, they reach the box by sync). Phường Cái
Khế (31120) is driven in this process with the real sync client.

Measured, on ``motcua edge serve`` (a real process, one worker):

1. **Sync off** (the in-run baseline): ``sync_interval_s`` is a day, so after its start round
   the loop sleeps; one clerk alone does each action 20 times (``solo_p50_ms``), then the 20
   clerks of bench/edge_load.py (``_clerks``: list, search, detail, receive with a scan,
   accept/start) work for ``--baseline-seconds``.
2. **Sync on**: the box restarts with ``sync_interval_s`` = ``--interval`` (3 s), and the same
   clerks work for ``--duration`` while the loop pushes what they write (dossiers and scans)
   and pulls what Cái Khế writes: every ``--routed-every`` seconds Cái Khế receives a household
   business dossier handled by Ninh Kiều and syncs, so the city forwards it on Ninh Kiều's next
   pull.

Then the loop alone drains what waits (``drain_s``), both servers stop, and the run checks from
the databases that **every write a clerk was told succeeded is at the city** (the dossier, in
the status of its last acknowledged action, with the same state as on the box), that the box's
own log is at the city whole, and that every dossier Cái Khế sent reached the box.

Reports p50/p95/p99 per action in each phase, ``p95_ratio`` (sync on / sync off) per action and
the issue 3 targets under sync (``targets_met_under_sync``, never asserted), the static-file
probe's p50 in each phase (what any request costs on this machine then), the sync rounds the
loop did during the load and their outcomes, errors and ``data_lost``. Prints one JSON object;
**exits 1 when there was any error, any failed sync round or any lost write** (correctness,
not timing). ``--quick``: 500 dossiers, 6 s without sync, 30 s with it, no solo requests,
cheap password hashes (what CI runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from _benchenv import machine
from _clerks import (
    ACTIONS,
    PASSWORD,
    SOLO_REPEAT,
    STATUS_AFTER,
    TARGET_P95_MS,
    UNIT,
    Clerk,
    Results,
    Seeded,
    Session,
    Shared,
    clients,
    idle_baseline,
    log_in_all,
    memory_mb,
    percentile,
    prepare,
    progress,
    seed_dossiers,
)
from _clerks import team_work as clerks_work

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # the suite's server helper

from servers import CityDir, Server, edge_dir, edge_server, free_port, opened_node, write_settings  # noqa: E402

from edge import auth  # noqa: E402
from edge.accounts import add_account  # noqa: E402
from edge.auth import Actor  # noqa: E402
from edge.clockcheck import ClockStatus  # noqa: E402
from edge.dossiers import receive  # noqa: E402
from edge.node import Node  # noqa: E402
from edge.settings import load as load_settings  # noqa: E402
from edge.syncclient import RoundResult, sync_once  # noqa: E402
from schema.dossier import Draft  # noqa: E402
from sync.transport import HttpPeer  # noqa: E402

OTHER = "31120"  # Phường Cái Khế: writes dossiers that Ninh Kiều handles
HOUSEHOLD_BUSINESS = "2.000720"  # non-territorial: received anywhere, handled by the chosen unit
A_DAY_S = 86_400
CLOCK_OK = ClockStatus(False, 0, None)


def edge_settings(interval_s: int) -> dict[str, int | str | bool]:
    return {"sync_interval_s": interval_s, "sync_max_backoff_s": max(2 * interval_s, 10)}


def settle(node: Node, url: str, max_rounds: int = 20) -> list[RoundResult]:
    """Rounds of the real sync client until one is ok and moves nothing."""
    settings = load_settings(node.data_dir)
    results = []
    for _ in range(max_rounds):
        peer = HttpPeer(url, node.identity, node.clock, timeout=120)
        try:
            result = sync_once(node, peer, settings)
        finally:
            peer.close()
        results.append(result)
        if result.ok and not (result.ops_sent or result.ops_received or result.blobs_sent):
            return results
    raise SystemExit(f"{node.config.unit} did not settle: {results[-1].summary()}")


# --- the other commune ---------------------------------------------------------------------------


@dataclass
class Sender:
    """Cái Khế at work in a thread: a dossier handled by Ninh Kiều, then a sync round, again."""

    node: Node
    url: str
    every_s: float
    sent: list[str] = field(default_factory=list)
    """Dossiers the city acknowledged (the round that carried them was ok)."""
    rounds: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    last_ok_ms: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        actor = Actor("canbo_caikhe", "Cán bộ Cái Khế", OTHER, "clerk")
        rnd = random.Random(31120)
        settings = load_settings(self.node.data_dir)
        peer = HttpPeer(self.url, self.node.identity, self.node.clock, timeout=60)
        try:
            while True:
                stopping = self.stop.is_set()  # one last round after the stop: nothing waits
                data = Draft(
                    procedure=HOUSEHOLD_BUSINESS,
                    applicant_name=f"Trần Thị {rnd.choice(['Hoa', 'Lan', 'Mai', 'Cúc', 'Đào'])}",
                    citizen_id="092085001234",
                    dob=date(1985, 3, 14),
                    phone="0912345678",
                    address="8 Hai Bà Trưng",
                    address_unit=OTHER,
                    handling_unit=UNIT,
                )
                written = receive(self.node, actor, data, [], CLOCK_OK).id
                started_ms = int(time.time() * 1000)
                result = sync_once(self.node, peer, settings)
                self.rounds[result.outcome] = self.rounds.get(result.outcome, 0) + 1
                if result.ok:
                    self.sent.append(written)
                    self.last_ok_ms = started_ms
                else:
                    self.errors.append(result.summary())
                    self.sent.append(written)  # written at Cái Khế: the next round must carry it
                if stopping:
                    return
                self.stop.wait(self.every_s)
        except Exception as exc:  # reported, and the run fails on it
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            peer.close()


# --- the phases ----------------------------------------------------------------------------------


@dataclass
class Phase:
    results: Results
    probe_ms: list[float]
    elapsed_s: float
    solo: Results | None = None
    idle_probe_ms: list[float] = field(default_factory=list)


async def work(
    url: str, seeded: Seeded, sessions: list[Session], seconds: float, think_s: float, solo: int
) -> Phase:
    """``solo`` requests of each action by one clerk alone (what each costs the server without a
    queue in front), then every clerk at once for ``seconds``."""
    forms = await prepare(url)
    idle = await idle_baseline(url, 100) if solo else []
    tokens = [token for _, token in sessions]
    alone = None
    if solo:
        async with clients(url, sessions[:1]) as (client,):
            alone = Shared(url, seeded, forms, Results(), float("inf"), 0.0)
            clerk = Clerk(0, client, tokens[0], alone)
            for action in ACTIONS:
                for _ in range(solo):
                    await clerk.do(action)
    async with clients(url, sessions) as team:
        results, probe_ms, elapsed = await clerks_work(url, seeded, forms, team, tokens, seconds, think_s)
    return Phase(results, probe_ms, elapsed, alone.results if alone else None, idle)


def drain(url: str, sender_done_ms: int, timeout_s: float) -> float:
    """Waits until the box's loop has nothing waiting and had an ok round that began after Cái
    Khế's last one (so it pulled what Cái Khế sent); returns the seconds that took."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30) as client:
        token = client.post("/api/v1/auth/token", json={"username": "canbo01", "password": PASSWORD})
        token.raise_for_status()
        client.headers["authorization"] = f"Bearer {token.json()['token']}"
        while True:
            status = client.get("/api/v1/sync/status").json()
            if status["waiting"] == 0 and (status["last_ok_ms"] or 0) > sender_done_ms:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise SystemExit(f"the sync loop did not drain in {timeout_s:g} s: {status}")
            time.sleep(0.5)


def rounds_between(node: Node, start_ms: int, end_ms: int) -> dict[str, object]:
    """The sync attempts the box recorded in a window: per outcome, ops each way, durations."""
    with node.reader() as conn:
        rows = conn.execute(
            "SELECT outcome, error, ops_sent, ops_received, duration_ms FROM sync_attempt "
            "WHERE at_ms >= ? AND at_ms < ? ORDER BY id",
            (start_ms, end_ms),
        ).fetchall()
    outcomes: dict[str, int] = {}
    for outcome, *_ in rows:
        outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
    durations = [float(r[4]) for r in rows]
    return {
        "rounds": len(rows),
        "outcomes": outcomes,
        "errors_sample": sorted({str(r[1]) for r in rows if r[0] != "ok"})[:3],
        "ops_sent": sum(int(r[2]) for r in rows),
        "ops_received": sum(int(r[3]) for r in rows),
        "round_p50_ms": percentile(durations, 50),
        "round_p95_ms": percentile(durations, 95),
    }


# --- checking what reached the city --------------------------------------------------------------


def lost_writes(city: CityDir, box: Node, acknowledged: dict[str, str], routed: list[str]) -> list[str]:
    """Every acknowledged write that is not where it must be, in words (empty: nothing lost)."""
    lost = []
    me = box.identity.node
    with city.opened() as c:
        hub = c.node.replica
        if hub.vector().get(me, 0) != box.replica.vector().get(me, 0):
            lost.append(
                f"the city holds {hub.vector().get(me, 0)} of the box's {box.replica.vector()[me]} ops"
            )
        if hub.pending_count():
            lost.append(f"{hub.pending_count()} ops wait behind a gap at the city")
        for dossier, step in acknowledged.items():
            at_city = hub.state("dossier", dossier)
            if not at_city:
                lost.append(f"{dossier} ({step}) is not at the city")
            elif at_city.get("status") != STATUS_AFTER[step]:
                lost.append(f"{dossier} is in status {at_city.get('status')} at the city after {step}")
            elif at_city != box.replica.state("dossier", dossier):
                lost.append(f"{dossier} differs between the box and the city")
        for dossier in routed:
            at_city = hub.state("dossier", dossier)
            if not at_city:
                lost.append(f"{dossier} from Cái Khế is not at the city")
            elif box.replica.state("dossier", dossier) != at_city:
                lost.append(f"{dossier} from Cái Khế did not reach the box whole")
    return lost


# --- the run -------------------------------------------------------------------------------------


def by_action(results: Results, q: float) -> dict[str, float | None]:
    return {a: percentile(results.latencies[a], q) for a in ACTIONS}


def errors_of(results: Results | None) -> int:
    return 0 if results is None else sum(results.errors.values())


def run(args: argparse.Namespace) -> dict[str, object]:
    rnd = random.Random(args.seed)
    wall: dict[str, float] = {}
    began = time.perf_counter()

    def lap(name: str) -> None:
        wall[name] = round(time.perf_counter() - began - sum(wall.values()), 1)

    with tempfile.TemporaryDirectory(prefix="motcua-edge-soak-") as tmp:
        root = Path(tmp)
        city = CityDir(root / "city")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if args.quick:  # setup, not measured: the clerks' logins verify these cheap hashes
            auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)
        with city.opened() as c:
            for n in range(1, args.clerks + 1):
                add_account(c.node, f"canbo{n:02d}", f"Cán bộ {n:02d}", "clerk", PASSWORD, UNIT)
        box_dir = edge_dir(root / f"edge-{UNIT}", city.add_node(UNIT, url, root / "box.json"))
        other_dir = edge_dir(root / f"edge-{OTHER}", city.add_node(OTHER, url, root / "other.json"))
        write_settings(box_dir, **edge_settings(A_DAY_S))
        with opened_node(box_dir) as box:
            seeded = seed_dossiers(box, args.dossiers, rnd)
        central = city.server(port, root)
        box_server: Server | None = None
        sender: Sender | None = None
        thread: threading.Thread | None = None
        try:
            central.start()
            assert central.process is not None
            started = time.perf_counter()
            with opened_node(box_dir) as box:
                settle(box, url)
            initial_sync_s = time.perf_counter() - started

            # 1. sync off: the loop's start round, then a day's sleep
            box_server = edge_server(box_dir, free_port(), root).start()
            assert box_server.process is not None
            sessions = asyncio.run(log_in_all(box_server.url, args.clerks))
            lap("setup")
            progress(f"sync off: {args.clerks} clerks for {args.baseline_seconds:g} s…")
            off = asyncio.run(
                work(box_server.url, seeded, sessions, args.baseline_seconds, args.think, args.solo)
            )
            print(file=sys.stderr)
            memory_off = memory_mb(box_server.process.pid)
            box_server.stop()
            lap("sync_off")

            # 2. sync on: every few seconds, while Cái Khế sends dossiers Ninh Kiều handles
            write_settings(box_dir, **edge_settings(args.interval))
            with opened_node(other_dir) as other:
                settle(other, url)
                sender = Sender(other, url, args.routed_every)
                thread = threading.Thread(target=sender.run, name="cai-khe", daemon=True)
                box_server = edge_server(box_dir, free_port(), root).start()
                assert box_server.process is not None
                thread.start()
                load_start_ms = int(time.time() * 1000)
                progress(f"sync on: {args.clerks} clerks for {args.duration:g} s…")
                on = asyncio.run(work(box_server.url, seeded, sessions, args.duration, args.think, 0))
                load_end_ms = int(time.time() * 1000)
                print(file=sys.stderr)
                lap("sync_on")
                sender.stop.set()
                thread.join(120)
                drain_s = drain(box_server.url, sender.last_ok_ms, timeout_s=3 * args.interval + 120)
                memory = memory_mb(box_server.process.pid)
                box_server.stop()
                lap("drain")
            central.stop()
            with opened_node(box_dir) as box:
                during = rounds_between(box, load_start_ms, load_end_ms)
                total = rounds_between(box, load_start_ms, int(time.time() * 1000) + 1)
                lost = lost_writes(city, box, on.results.acknowledged | off.results.acknowledged, sender.sent)
            lap("check")
        except BaseException:
            for server in (box_server, central):
                if server is not None:
                    print(f"--- {server.name}:\n{server.log()}", file=sys.stderr)
            raise
        finally:
            if sender is not None:
                sender.stop.set()
            if thread is not None:
                thread.join(30)
            for server in (box_server, central):
                if server is not None:
                    server.stop()

    off_p95, on_p95 = by_action(off.results, 95), by_action(on.results, 95)
    ratio = {
        a: round(on_p95[a] / off_p95[a], 2) if on_p95[a] and off_p95[a] else None  # type: ignore[operator]
        for a in ACTIONS
    }
    failed_rounds = sum(n for outcome, n in total["outcomes"].items() if outcome != "ok")  # type: ignore[attr-defined]
    errors = (
        errors_of(off.results)
        + errors_of(off.solo)
        + errors_of(on.results)
        + len(sender.errors)
        + failed_rounds
    )
    done = sum(len(v) for v in on.results.latencies.values()) + errors_of(on.results)
    acknowledged = on.results.acknowledged | off.results.acknowledged
    return {
        "dossiers": args.dossiers,
        "clerks": args.clerks,
        "seconds": args.duration,
        "baseline_seconds": args.baseline_seconds,
        "sync_interval_s": args.interval,
        "think_ms": args.think * 1000,
        "p50_ms": by_action(on.results, 50),
        "p95_ms": on_p95,
        "p99_ms": by_action(on.results, 99),
        "requests": {a: len(on.results.latencies[a]) + on.results.errors[a] for a in ACTIONS},
        "requests_per_s": round(done / on.elapsed_s, 1),
        "p95_ms_sync_off": off_p95,
        "p50_ms_sync_off": by_action(off.results, 50),
        "p95_ratio": ratio,
        "targets_met_under_sync": all((on_p95[a] or float("inf")) < t for a, t in TARGET_P95_MS.items()),
        "solo_p50_ms": by_action(off.solo, 50) if off.solo else None,
        "probe_p50_ms": percentile(on.probe_ms, 50),
        "probe_p50_ms_sync_off": percentile(off.probe_ms, 50),
        "probe_idle_p50_ms": percentile(off.idle_probe_ms, 50),
        "sync_rounds_during_load": during,
        "sync_rounds_total": total["rounds"],
        "sync_outcomes_total": total["outcomes"],
        "routed_dossiers": len(sender.sent),
        "routed_rounds": sender.rounds,
        "writes_acknowledged": len(acknowledged),
        "initial_sync_s": round(initial_sync_s, 1),
        "drain_s": round(drain_s, 1),
        "errors": errors,
        "errors_sync_on": errors_of(on.results),
        "errors_sync_off": errors_of(off.results) + errors_of(off.solo),
        "error_samples": (
            [f"sync off: {e}" for e in off.results.samples]
            + [f"sync on: {e}" for e in on.results.samples]
            + [f"Cái Khế: {e}" for e in sender.errors]
        )[:10],
        "failed_sync_rounds": failed_rounds,
        "data_lost": len(lost),
        "lost_sample": lost[:10],
        "rss_mb": memory.get("VmHWM"),
        "rss_mb_sync_off": memory_off.get("VmHWM"),
        "wall_s": wall,
        "seed": args.seed,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 dossiers, 6 s off + 30 s on: a smoke run")
    parser.add_argument("--dossiers", type=int, default=10_000, help="dossiers seeded (10 ops each)")
    parser.add_argument("--clerks", type=int, default=20, help="concurrent simulated clerks")
    parser.add_argument("--duration", type=float, default=300, help="seconds of load with the sync loop on")
    parser.add_argument("--baseline-seconds", type=float, default=60, help="seconds of load with sync off")
    parser.add_argument("--interval", type=int, default=3, help="the box's sync_interval_s during the load")
    parser.add_argument("--routed-every", type=float, default=2.0, help="seconds between Cái Khế's dossiers")
    parser.add_argument("--think-ms", type=float, default=250, help="mean pause between a clerk's requests")
    parser.add_argument("--solo", type=int, default=SOLO_REPEAT, help="each action alone, this many times")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args(argv)
    if args.quick:
        args.dossiers, args.duration, args.baseline_seconds, args.solo = 500, 30.0, 6.0, 0
    args.think = args.think_ms / 1000
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    report = run(args)
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 1 if report["errors"] or report["data_lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
