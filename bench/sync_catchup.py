"""Benchmark: one commune catches up with the city after a week offline, over loopback.

Setup (not measured): a city of province 92 (``motcua central init``'s code) with one
registered node of Phường Ninh Kiều (31135), made from its node file. The node syncs once (it
holds the reference data, as a box that was online last week), then, offline, its clerks work a
week through the service layer (``edge.dossiers.receive``/``perform``, each a real local write):
dossiers of 5 ops each (receive, accept, start, processing done, result returned; a dossier
with a scan has the attach op instead of the last), and scans of 50-500 KB of scan-like bytes
(a JPEG header, then random bytes with short blank runs: what gzip barely shrinks, as real
scans). Default 3,500 ops and 700 scans; ``--quick`` 350 ops and 20 scans.

Measured: the city runs as a real ``motcua central serve`` process; the commune talks to it
through a :class:`faultproxy.FaultProxy` (tests/integration) that counts the bytes on the
wire both ways, HTTP headers included, with the real sync client (``edge.syncclient``) over a
metered ``HttpPeer`` that counts requests and attributes each request's wire bytes to ops
(time, hello, push, pull, digest) or attachments (``/blobs/``). Rounds run until one is ``ok``.

``gzip_bound_bytes`` is gzip -6 of the same op bodies (concatenated) plus each scan gzipped;
``wire_ratio`` = the ops' wire bytes / gzip -6 of the op bodies (target <= 1.1, issue 4); the
attachments' ratio is reported apart. Then the same catch-up again, from byte-identical copies
of both data directories, with the link cut once at a random upstream byte of it; the rounds
resume, and ``resent_bytes_after_cut`` is the wire bytes of that run beyond the first run's
(target: at most one batch, ``batch_bytes``; a cut inside a scan costs at most one chunk).
The run checks that the city ends with every op and every scan (sha256), or fails.

``--history N`` (issue 10): instead of a week, a box holding N ops of history — N/10
dossiers of ten ops each, thousands open at once, interleaved in time as a real office writes
them (bench/_history.py) — pushes it all to the real city in one round through the counting
proxy: ``wall_s``, ``requests``, ``wire_ratio`` against gzip -6 of the op bodies, and the
city's scope digest must equal the box's (it holds every op) or the run fails. The same-run
baseline is ``raw_insert_s``: the same op bodies inserted as plain rows into a plain SQLite
table in one transaction (``wall_ratio`` = wall_s / raw_insert_s).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from _benchenv import machine  # noqa: E402
from _history import author_interleaved  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from servers import NINH_KIEU, CityDir, edge_dir, free_port, opened_node  # noqa: E402

from edge.auth import Actor  # noqa: E402
from edge.clockcheck import ClockStatus  # noqa: E402
from edge.dossiers import perform, receive  # noqa: E402
from edge.node import Node, open_node  # noqa: E402
from edge.settings import Settings, load  # noqa: E402
from edge.syncclient import RoundResult, sync_once  # noqa: E402
from edge.uploads import check_scan  # noqa: E402
from ops.demodata import person  # noqa: E402
from schema.dossier import Draft  # noqa: E402
from sync.clock import Clock  # noqa: E402
from sync.identity import Identity  # noqa: E402
from sync.transport import HttpPeer  # noqa: E402

PROCEDURE = "2.000720"
OPS_PER_DOSSIER = 5
CLERK = Actor("canbo01", "Nguyễn Thị Lan", NINH_KIEU, "clerk")
LEADER = Actor("lanhdao01", "Trần Văn Hùng", NINH_KIEU, "leader")
"""Processing done (4 -> 9) is the leader's decision (schema/status.py)."""
CLOCK_OK = ClockStatus(False, 0, None)
JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
MAX_ROUNDS = 8


def progress(message: str) -> None:
    print(f"\r{message}", end="", file=sys.stderr, flush=True)


def scan_bytes(rnd: random.Random, size: int) -> bytes:
    """A JPEG-looking scan: random bytes (entropy-coded image data) with short blank runs."""
    out = bytearray(JPEG_HEADER)
    while len(out) < size:
        out += rnd.randbytes(rnd.randint(2000, 8000))
        out += b"\x00" * rnd.randint(0, 120)
    return bytes(out[:size])


def author_week(node: Node, ops: int, scans: int, seed: int) -> list[bytes]:
    """The week's work through the service layer; returns the scans."""
    rnd = random.Random(seed)
    dossiers = ops // OPS_PER_DOSSIER
    if scans > dossiers:
        raise SystemExit(f"{scans} scans need at least {scans * OPS_PER_DOSSIER} ops")
    files = []
    for i in range(dossiers):
        p = person(rnd)
        data = Draft(
            procedure=PROCEDURE,
            applicant_name=p.name,
            citizen_id=p.citizen_id,
            dob=p.dob,
            phone=p.phone,
            address=p.address,
            address_unit=NINH_KIEU,
        )
        attached = []
        if i < scans:
            blob = scan_bytes(rnd, rnd.randint(50_000, 500_000))
            files.append(blob)
            attached.append(check_scan(f"scan-{i}.jpg", blob, 15 << 20))
        made = receive(node, CLERK, data, attached, CLOCK_OK)
        actions = ["accept", "start", "processed", "return_result"][: OPS_PER_DOSSIER - 1 - len(attached)]
        for action in actions:
            perform(node, LEADER if action == "processed" else CLERK, made.id, action)
        if i % 50 == 0:
            progress(f"authored {i + 1:,}/{dossiers:,} dossiers")
    print(file=sys.stderr)
    return files


class MeteredPeer(HttpPeer):
    """An HttpPeer that counts its requests and, from the proxy's counters, the wire bytes of
    each request (ops or attachments), and remembers the request a failure happened in."""

    def __init__(self, url: str, identity: Identity, clock: Clock, proxy: FaultProxy) -> None:
        super().__init__(url, identity, clock, timeout=60)
        self.proxy = proxy
        self.requests = 0
        self.wire: Counter[str] = Counter()
        self.failed_in: str | None = None
        self.up_at_first_blob: int | None = None
        """Upstream bytes of the proxy when the first scan request began (the push is before)."""

    def _request(self, method: str, path: str, body: bytes = b"", *, signed: bool = True) -> httpx.Response:
        self.requests += 1
        part = "attachments" if "/blobs/" in path else "ops"
        if part == "attachments" and self.up_at_first_blob is None:
            self.up_at_first_blob = self.proxy.stats.upstream_bytes
        before = self.proxy.stats.upstream_bytes + self.proxy.stats.downstream_bytes
        try:
            return super()._request(method, path, body, signed=signed)
        except Exception:
            self.failed_in = path.split("/")[3] if path.count("/") >= 3 else path
            raise
        finally:
            self.wire[part] += self.proxy.stats.upstream_bytes + self.proxy.stats.downstream_bytes - before


def catch_up(edge: Path, city: CityDir, work: Path, cut_at: int | None) -> dict[str, object]:
    """Rounds through a counting proxy until one is ok; with ``cut_at``, the first round's
    connection is cut after that many upstream bytes."""
    port = free_port()
    with city.server(port, work) as server, FaultProxy("127.0.0.1", server.port) as proxy:
        node = open_node(edge)
        try:
            settings = load(edge)
            requests = 0
            wire: Counter[str] = Counter()
            results: list[RoundResult] = []
            failed_in = None
            correction = 0
            push_phase = 0
            started = time.perf_counter()
            for n in range(MAX_ROUNDS):
                if n == 0 and cut_at is not None:
                    proxy.set(cut_upstream_after=cut_at)
                up_before = proxy.stats.upstream_bytes
                peer = MeteredPeer(proxy.url, node.identity, node.clock, proxy)
                try:
                    result = sync_once(node, peer, settings)
                finally:
                    peer.close()
                if n == 0 and cut_at is not None and proxy.stats.cuts:
                    # The proxy does not count the piece of the chunk it let through before the
                    # cut; the cut connection carried exactly cut_at bytes upstream.
                    correction = cut_at - (proxy.stats.upstream_bytes - up_before)
                    failed_in = peer.failed_in
                if n == 0 and peer.up_at_first_blob is not None:
                    push_phase = peer.up_at_first_blob - up_before
                requests += peer.requests
                wire.update(peer.wire)
                results.append(result)
                if result.ok:
                    break
            wall = time.perf_counter() - started
            if not results[-1].ok:
                raise SystemExit(f"no successful round: {results[-1].summary()}")
            head = node.replica.vector()[node.identity.node]
            me = node.identity.node
        finally:
            node.close()
        up, down = proxy.stats.upstream_bytes + correction, proxy.stats.downstream_bytes
    with city.opened() as c:
        if c.node.replica.vector()[me] != head:
            raise SystemExit("the city does not hold every op of the commune")
    return {
        "wall_s": wall,
        "requests": requests,
        "wire": up + down,
        "up": up,
        "down": down,
        "wire_ops": wire["ops"],
        "wire_attachments": wire["attachments"],
        "push_phase_up": push_phase,
        "rounds": len(results),
        "cut_in": failed_in,
        "cut": cut_at is not None and bool(proxy.stats.cuts),
    }


def op_bodies(node: Node, after: int) -> list[bytes]:
    conn = node.replica.reader()
    try:
        rows = conn.execute(
            "SELECT o.body FROM sync_op AS o JOIN sync_node AS n ON n.id = o.node "
            "WHERE n.node = ? AND o.seq > ? ORDER BY o.seq",
            (node.identity.node, after),
        ).fetchall()
    finally:
        conn.close()
    return [bytes(body) for (body,) in rows]


def synced_box(root: Path) -> tuple[CityDir, Path, Settings, int]:
    """A city and a box of Ninh Kiều that synced once (it holds the reference data): the city,
    the box's data directory, its settings and its own head then."""
    city = CityDir(root / "city")
    node_file = city.add_node(NINH_KIEU, "http://127.0.0.1:9", root / "edge.node.json")
    edge = edge_dir(root / "edge", node_file)
    settings = load(edge)
    with city.server(free_port(), root) as server, opened_node(edge) as node:
        peer = HttpPeer(server.url, node.identity, node.clock, timeout=30)
        try:
            first = sync_once(node, peer, settings)
        finally:
            peer.close()
        if not first.ok:
            raise SystemExit(f"the first sync failed: {first.summary()}")
        return city, edge, settings, node.replica.vector()[node.identity.node]


def run(ops: int, scans: int, seed: int) -> dict[str, object]:
    from edge import auth

    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)  # setup only: one admin
    with tempfile.TemporaryDirectory(prefix="motcua-catchup-") as tmp:
        root = Path(tmp)
        # Last week the box was online: it holds the reference data.
        city, edge, settings, head = synced_box(root)

        with opened_node(edge) as node:
            started = time.perf_counter()
            files = author_week(node, ops, scans, seed)
            author_s = time.perf_counter() - started
            bodies = op_bodies(node, head)
            digests = [hashlib.sha256(f).hexdigest() for f in files]
        ops_gzip = len(gzip.compress(b"".join(bodies), compresslevel=6))
        files_gzip = sum(len(gzip.compress(f, compresslevel=6)) for f in files)
        files_raw = sum(map(len, files))

        # Byte-identical copies for the second catch-up (nothing is running now).
        for copy in ("b", "c"):
            shutil.copytree(city.dir, root / f"city-{copy}")
            shutil.copytree(edge, root / f"edge-{copy}")

        progress("catching up")
        a = catch_up(edge, city, root, None)
        with city.opened() as c:
            for sha in digests:
                if hashlib.sha256(c.node.blobs.get(sha)).hexdigest() != sha:
                    raise SystemExit(f"scan {sha} arrived damaged")
        rnd = random.Random(seed + 1)
        # A cut anywhere in the catch-up (the scans are most of its bytes, so most cuts land in
        # one), then a cut inside the push of the ops (before the first scan request).
        cut_at = rnd.randint(1, int(a["up"]))  # type: ignore[call-overload]
        progress("catching up again, cut once")
        b = catch_up(root / "edge-b", CityDir.existing(root / "city-b"), root, cut_at)
        cut_in_push = rnd.randint(1, int(a["push_phase_up"]))  # type: ignore[call-overload]
        progress("catching up again, cut once in the push")
        c = catch_up(root / "edge-c", CityDir.existing(root / "city-c"), root, cut_in_push)
        print(file=sys.stderr)

    wire_ops = int(a["wire_ops"])  # type: ignore[call-overload]
    wire_files = int(a["wire_attachments"])  # type: ignore[call-overload]
    return {
        "ops": len(bodies),
        "attachments": len(files),
        "wall_s": round(float(a["wall_s"]), 2),  # type: ignore[arg-type]
        "requests": a["requests"],
        "rounds": a["rounds"],
        "wire_bytes": a["wire"],
        "wire_up_bytes": a["up"],
        "wire_down_bytes": a["down"],
        "gzip_bound_bytes": ops_gzip + files_gzip,
        "wire_ratio": round(wire_ops / ops_gzip, 3),
        "ops_raw_bytes": sum(map(len, bodies)),
        "ops_gzip_bytes": ops_gzip,
        "ops_wire_bytes": wire_ops,
        "attachments_raw_bytes": files_raw,
        "attachments_gzip_bytes": files_gzip,
        "attachments_wire_bytes": wire_files,
        "attachments_wire_ratio": round(wire_files / files_gzip, 3),
        "batch_bytes": settings.batch_bytes,
        "batch_bytes_max": settings.batch_bytes_max,
        "blob_chunk_bytes": settings.blob_chunk_bytes,
        "cut_at_byte": cut_at,
        "cut_in": b["cut_in"],
        "resent_bytes_after_cut": int(b["wire"]) - int(a["wire"]),  # type: ignore[call-overload]
        "resent_within_one_batch": int(b["wire"]) - int(a["wire"]) <= settings.batch_bytes_max,  # type: ignore[call-overload]
        "rounds_after_cut": b["rounds"],
        "cut_in_push_at_byte": cut_in_push,
        "cut_in_push_in": c["cut_in"],
        "resent_bytes_after_cut_in_push": int(c["wire"]) - int(a["wire"]),  # type: ignore[call-overload]
        "push_phase_bytes": a["push_phase_up"],
        "author_s": round(author_s, 2),
        "seed": seed,
        **machine(),
    }


def raw_insert_s(path: Path, bodies: list[bytes]) -> float:
    """Seconds to insert the op bodies as plain rows into a plain WAL table, one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE ops (n INTEGER PRIMARY KEY, body BLOB)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO ops (body) VALUES (?)", [(b,) for b in bodies])
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def run_history(ops: int, seed: int) -> dict[str, object]:
    """A box's whole interleaved history pushed to a real city in one round."""
    from edge import auth

    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)  # setup only: one admin
    with tempfile.TemporaryDirectory(prefix="motcua-history-") as tmp:
        root = Path(tmp)
        city, edge, settings, head = synced_box(root)
        with opened_node(edge) as node:
            progress(f"authoring {ops:,} ops")
            started = time.perf_counter()
            author_interleaved(node.replica, NINH_KIEU, ops // 10, seed)
            author_s = time.perf_counter() - started
            bodies = op_bodies(node, head)
        ops_gzip = len(gzip.compress(b"".join(bodies), compresslevel=6))
        progress("pushing the history")
        a = catch_up(edge, city, root, None)
        print(file=sys.stderr)
        scope = {NINH_KIEU, "*"}
        with opened_node(edge) as node:
            box_digest = node.replica.scope_digest(scope)
        with city.opened() as c:
            if c.node.replica.scope_digest(scope) != box_digest:
                raise SystemExit("the city's scope digest differs from the box's: it lacks ops")
        raw_s = min(raw_insert_s(root / f"raw{i}.db", bodies) for i in range(3))
    wall = float(a["wall_s"])  # type: ignore[arg-type]
    return {
        "history_ops": len(bodies),
        "dossiers": ops // 10,
        "wall_s": round(wall, 2),
        "ops_per_s": round(len(bodies) / wall),
        "requests": a["requests"],
        "rounds": a["rounds"],
        "wire_bytes": a["wire"],
        "ops_gzip_bytes": ops_gzip,
        "wire_ratio": round(int(a["wire_ops"]) / ops_gzip, 3),  # type: ignore[call-overload]
        "raw_insert_s": round(raw_s, 3),
        "wall_ratio": round(wall / raw_s, 1),
        "city_holds_every_op": True,
        "batch_bytes": settings.batch_bytes,
        "batch_bytes_max": settings.batch_bytes_max,
        "author_s": round(author_s, 2),
        "seed": seed,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="350 ops and 20 scans: a smoke run")
    parser.add_argument("--ops", type=int, default=3_500, help="ops of the week (5 per dossier)")
    parser.add_argument("--attachments", type=int, default=700, help="scans of 50-500 KB")
    parser.add_argument("--seed", type=int, default=20251027)
    parser.add_argument(
        "--history", type=int, metavar="N", help="push a box's interleaved history of N ops in one round"
    )
    args = parser.parse_args(argv)
    if args.history:
        json.dump(run_history(5_000 if args.quick else args.history, args.seed), sys.stdout, indent=2)
        print()
        return 0
    ops, scans = (350, 20) if args.quick else (args.ops, args.attachments)
    json.dump(run(ops, scans, args.seed), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
