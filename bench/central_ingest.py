"""Benchmark: a day's work of many communes syncs into one city server at once.

Setup (not measured): a city of province 92 (Cần Thơ: 103 communes and wards after 2025) with N
registered nodes, spread over the province's node units (one node per unit for N = 103). Each
simulated node authors a day's work through the real local-write API (``Replica.write``):
30 dossiers x 10 ops (``ops.demodata.dossier_ops``: receive, edits, 1 -> 2 -> 4 -> 9 -> 10),
in its own throw-away replica, and keeps the signed, sealed, compressed batches the real client
would push (``Replica.batches``, 256 KiB). Authoring runs in a process pool.

Measured: the city runs as a real ``motcua central serve`` process (one uvicorn worker). All N
nodes sync at once, at most ``--concurrency`` (20) at a time, each on its own connection with
the real ``HttpPeer``: ``hello`` (it answers the node's certificates, lag, drift), then ``push``
of each batch (the city verifies signatures and write scope, merges, projects, signs the ack).
Pull and anti-entropy are left out: in the country stand-in ~32 nodes share each unit (the
province has only 103), which would make every scope 32 times larger than a real commune's.

``ops_per_s`` = ops merged / wall time of the whole ingest; ``p95_ms`` = 95th percentile of the
push requests' latency (queueing included); ``errors`` = failed requests plus nodes whose ops the
city does not hold completely afterwards (target: 0); ``rss_mb`` = the city process's peak
resident memory (VmHWM). Then the country run: ``--country`` (3,321) nodes, the number of
communes and wards in Việt Nam, each with the same day's work, into one fresh city:
``ops_per_s_3321`` and ``cost_per_op_ratio`` (ops/s of the 103-node run / ops/s of the country
run; 1.0 = flat). ``hello_reply_bytes`` shows what a hello carries as the fleet grows.

Prints one JSON object. ``--quick``: 10 nodes, and 50 for the country stand-in.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from _benchenv import machine  # noqa: E402
from servers import CityDir, free_port  # noqa: E402

from central.registry import NODE_KINDS, add_node  # noqa: E402
from ops.demodata import dossier_ops  # noqa: E402
from schema import KINDS, PILOT_PROCEDURES, migrate  # noqa: E402
from schema.units import province_units  # noqa: E402
from sync import wire  # noqa: E402
from sync.batch import encode_batch  # noqa: E402
from sync.clock import Clock  # noqa: E402
from sync.errors import SyncError  # noqa: E402
from sync.identity import Identity  # noqa: E402
from sync.replica import Replica  # noqa: E402
from sync.transport import HttpPeer  # noqa: E402

PROVINCE = "92"
COUNTRY = 3321
DOSSIERS, OPS_PER_DOSSIER = 30, 10
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def progress(message: str) -> None:
    print(f"\r{message}", end="", file=sys.stderr, flush=True)


@dataclass
class SimNode:
    node: str
    unit: str
    key: bytes
    batches: list[bytes] = field(default_factory=list)
    ops: int = 0


def author(args: tuple[str, bytes, int, str]) -> tuple[list[bytes], int]:
    """A node's day through its own replica (in a worker process); its encoded batches."""
    unit, key, seed, workdir = args
    identity = Identity.from_private_bytes(unit, key)
    rnd = random.Random(seed)
    path = Path(workdir) / f"{identity.node}.db"
    replica = Replica(path, identity, KINDS, migrate=migrate)
    try:
        day = date.today()
        opening = datetime(day.year, day.month, day.day, 7, 30, tzinfo=TIMEZONE)
        procedures = [p.code for p in PILOT_PROCEDURES]
        with replica.write() as w:
            for i in range(DOSSIERS):
                entity = f"{rnd.getrandbits(128):032x}"
                received_ms = int(opening.timestamp() * 1000) + i * 600_000
                number = seed % 100_000 * DOSSIERS + i + 1
                for action, payload in dossier_ops(
                    rnd, unit, rnd.choice(procedures), day, number, received_ms
                ):
                    w.append("dossier", entity, action, payload)
        batches = [encode_batch(b) for b in replica.batches({}, nodes=[identity.node])]
        return batches, replica.vector()[identity.node]
    finally:
        replica.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def make_world(root: Path, nodes: int, seed: int) -> tuple[CityDir, list[SimNode], int]:
    root.mkdir(parents=True, exist_ok=True)
    city = CityDir(root / "city")
    units = [u.code for u in province_units(PROVINCE) if u.kind in NODE_KINDS]
    sims: list[SimNode] = []
    with city.opened() as c:
        for i in range(nodes):
            new = add_node(c, units[i % len(units)], "http://127.0.0.1:9")
            sims.append(SimNode(new.identity.node, new.identity.unit, new.identity.private_bytes()))
            if i % 100 == 0:
                progress(f"registered {i + 1:,}/{nodes:,} nodes")
        feed_head = c.node.replica.feed_head()
    work = root / "authoring"
    work.mkdir()
    jobs = [(s.unit, s.key, seed + i, str(work)) for i, s in enumerate(sims)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i, (batches, ops) in enumerate(pool.map(author, jobs, chunksize=8)):
            sims[i].batches, sims[i].ops = batches, ops
            if i % 100 == 0:
                progress(f"authored {i + 1:,}/{nodes:,} days of work")
    print(file=sys.stderr)
    return city, sims, feed_head


@dataclass
class Tally:
    deadline: float
    push_ms: list[float] = field(default_factory=list)
    hello_ms: list[float] = field(default_factory=list)
    hello_bytes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    synced: list[SimNode] = field(default_factory=list)
    skipped: int = 0
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


NO_BACKLOG = 2**62
"""A hello cursor past any feed position: "I have pulled everything" (the city counts no backlog)."""


def sync_node(url: str, sim: SimNode, cursor: int, tally: Tally) -> None:
    if time.perf_counter() > tally.deadline:
        with tally.lock:
            tally.skipped += 1
            tally.done += 1
        return
    identity = Identity.from_private_bytes(sim.unit, sim.key)
    clock = Clock()
    peer = HttpPeer(url, identity, clock, timeout=600)
    try:
        started = time.perf_counter()
        hello = wire.Hello(software="bench", head=sim.ops, cursor=cursor, wall_ms=clock.wall_ms())
        peer.hello(hello)
        hello_ms = (time.perf_counter() - started) * 1000
        hello_bytes = peer.received
        pushes = []
        for batch in sim.batches:
            started = time.perf_counter()
            ack = peer.push(batch)
            pushes.append((time.perf_counter() - started) * 1000)
            if ack.have < 1:
                raise SyncError("the city acknowledged nothing")
        with tally.lock:
            tally.hello_ms.append(hello_ms)
            tally.hello_bytes.append(hello_bytes)
            tally.push_ms.extend(pushes)
            tally.synced.append(sim)
    except (SyncError, OSError) as exc:
        with tally.lock:
            tally.errors.append(f"{sim.node}: {exc}")
    finally:
        peer.close()
        with tally.lock:
            tally.done += 1


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ingest(
    city: CityDir, sims: list[SimNode], cursor: int, concurrency: int, max_seconds: float, root: Path
) -> dict[str, object]:
    """All nodes sync at once into the city (a fresh server process); what it measured."""
    nodes = len(sims)
    with city.server(free_port(), root) as server:
        assert server.process is not None
        pid = server.process.pid
        started = time.perf_counter()
        tally = Tally(deadline=started + max_seconds)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(sync_node, server.url, sim, cursor, tally) for sim in sims]
            while not all(f.done() for f in futures):
                progress(f"{tally.done:,}/{nodes:,} nodes synced")
                time.sleep(0.5)
            for f in futures:
                f.result()
        wall = time.perf_counter() - started
        rss = peak_rss_mb(pid)
    print(file=sys.stderr)
    with city.opened() as c:
        vector = c.node.replica.vector()
        pending = c.node.replica.pending_count()
    incomplete = [s.node for s in tally.synced if vector[s.node] != s.ops]
    ops = sum(s.ops for s in tally.synced)
    return {
        "nodes": nodes,
        "nodes_synced": len(tally.synced),
        "complete": len(tally.synced) == nodes,
        "ops": ops,
        "wall_s": round(wall, 2),
        "ops_per_s": round(ops / wall),
        "p95_ms": round(percentile(tally.push_ms, 95), 1),
        "p50_ms": round(percentile(tally.push_ms, 50), 1),
        "hello_p50_ms": round(percentile(tally.hello_ms, 50), 1),
        "hello_p95_ms": round(percentile(tally.hello_ms, 95), 1),
        "hello_reply_bytes": max(tally.hello_bytes, default=0),
        "errors": len(tally.errors) + len(incomplete) + (1 if pending else 0),
        "error_sample": tally.errors[:3] + [f"incomplete at the city: {n}" for n in incomplete[:3]],
        "rss_mb": round(rss, 1),
    }


def run(nodes: int, country: int, concurrency: int, max_seconds: float, seed: int) -> dict[str, object]:
    from edge import auth

    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)  # setup: the city's admin
    with tempfile.TemporaryDirectory(prefix="motcua-ingest-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        city, sims, cursor = make_world(root / "province", nodes, seed)
        setup_s = time.perf_counter() - started
        province = ingest(city, sims, cursor, concurrency, max_seconds, root)
        shutil.rmtree(root / "province")
        if not country:
            return {**province, "concurrency": concurrency, "setup_s": round(setup_s, 1), **machine()}

        city, sims, cursor = make_world(root / "country", country, seed + 1_000_000)
        shutil.copytree(city.dir, root / "country-copy")
        # As the client does: hello with the cursor of the node's last pull (before the burst).
        whole = ingest(city, sims, cursor, concurrency, max_seconds, root)
        # The same burst, every hello claiming it has pulled everything: the merge alone.
        merge_only = ingest(
            CityDir.existing(root / "country-copy"), sims, NO_BACKLOG, concurrency, max_seconds, root
        )
    ratio = float(province["ops_per_s"]) / max(1.0, float(whole["ops_per_s"]))  # type: ignore[arg-type]
    ratio_merge = float(province["ops_per_s"]) / max(1.0, float(merge_only["ops_per_s"]))  # type: ignore[arg-type]
    country_keys = (
        "nodes_synced", "complete", "ops", "wall_s", "ops_per_s", "p95_ms", "hello_p50_ms",
        "hello_p95_ms", "hello_reply_bytes", "errors", "rss_mb",
    )  # fmt: skip
    return {
        **{k: v for k, v in province.items() if k not in ("nodes_synced", "complete")},
        "concurrency": concurrency,
        "setup_s": round(setup_s, 1),
        "nodes_country": country,
        **{f"{k}_3321": whole[k] for k in country_keys},
        "cost_per_op_ratio": round(ratio, 2),
        "cost_per_op_flat": ratio <= 1.25 and bool(whole["complete"]),
        **{f"{k}_3321_no_backlog": merge_only[k] for k in country_keys},
        "cost_per_op_ratio_no_backlog": round(ratio_merge, 2),
        "max_seconds": max_seconds,
        "seed": seed,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 nodes, 50 for the country: a smoke run")
    parser.add_argument("--nodes", type=int, default=103, help="nodes of the province run")
    parser.add_argument(
        "--country", type=int, default=COUNTRY, help="nodes of the country run (0: the province run only)"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="nodes syncing at the same time")
    parser.add_argument(
        "--max-seconds", type=float, default=300, help="a run starts no node after this (reported)"
    )
    parser.add_argument("--seed", type=int, default=20251027)
    args = parser.parse_args(argv)
    nodes, country = (10, 50) if args.quick else (args.nodes, args.country)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the city process on the way out
    json.dump(run(nodes, country, args.concurrency, args.max_seconds, args.seed), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
