"""Benchmark: merge 100,000 signed dossier ops into an empty replica, against raw SQLite.

Workload: 10,000 dossiers x 10 ops (create, field edits, status transitions 1->2->4->9->10),
authored by one commune node through the real local-write API, exported as sealed, compressed
batches. ``--interleaved`` (the default): thousands of dossiers open at once, ops in time order,
as a real office writes them (bench/_history.py); ``--sequential``: each dossier's ten ops
together (the easy case of issue 2). The target is a hub (``feed=True``), as the city is.
Measured in one run:

(a) merge of every batch into an empty replica — decode, Merkle + Ed25519 verification, gap and
    duplicate checks, op log insert, fold, projection into the dossier tables — in ops/s; and
    the same without the projection (``merge_sync_only_ops_per_s``: the sync library's own cost);
(b) the baseline: ``executemany`` of the same ops as plain rows into a plain WAL table in one
    transaction, in rows/s; ratio = a / b (machines are noisy; the ratio travels better);
(c) encoded bytes per op, raw (msgpack) and compressed (the batches as sent).

Prints one JSON object. ``--quick`` runs 1,000 dossiers (a smoke run for CI).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
from _benchenv import machine
from _history import author_interleaved, fake_wall

from ops.demodata import dossier_ops
from schema import KINDS
from schema.db import migrate
from sync.batch import decode_batch, encode_batch
from sync.clock import Clock
from sync.fold import Kind
from sync.identity import Identity
from sync.ops import decode
from sync.replica import Replica

UNIT = "31135"  # Phường Ninh Kiều, Cần Thơ
PROCEDURES = ["1.004194", "1.008004", "1.012345", "2.000720"]
START = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)


def author(path: Path, dossiers: int, seed: int) -> Replica:
    """A commune replica that received ``dossiers`` dossiers over ~4 months of working days."""
    rnd = random.Random(seed)
    wall = [int(START.timestamp() * 1000)]

    def fake_wall() -> int:
        wall[0] += rnd.randrange(1, 4000)
        return wall[0]

    source = Replica(path, Identity.generate(UNIT), KINDS, clock=Clock(wall=fake_wall), migrate=migrate)
    per_day = max(1, dossiers // 80)
    for start in range(0, dossiers, 100):
        with source.write() as w:
            for i in range(start, min(start + 100, dossiers)):
                day = date(2026, 6, 1) + timedelta(days=i // per_day)
                entity = f"{rnd.getrandbits(128):032x}"
                received = int(datetime.combine(day, START.timetz()).timestamp() * 1000)
                procedure = rnd.choice(PROCEDURES)
                for action, payload in dossier_ops(rnd, UNIT, procedure, day, i % per_day + 1, received):
                    w.append("dossier", entity, action, payload)
    return source


def baseline(path: Path, bodies: list[bytes]) -> float:
    """Seconds to insert the same ops as plain rows into a plain WAL table, one transaction."""
    rows = []
    for body in bodies:
        op = decode(body)
        payload = msgspec.msgpack.encode(op.payload)
        rows.append((op.node, op.seq, op.stamp, op.kind, op.entity, op.action, payload))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE ops (node, seq, stamp, kind, entity, action, payload)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO ops VALUES (?,?,?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def author_mixed(path: Path, dossiers: int, seed: int) -> Replica:
    clock = Clock(wall=fake_wall(random.Random(seed)))
    source = Replica(path, Identity.generate(UNIT), KINDS, clock=clock, migrate=migrate)
    author_interleaved(source, UNIT, dossiers, seed)
    return source


def merge_all(
    path: Path, kinds: list[Kind], source: Replica, wire: list[bytes], cpu: dict[str, float], name: str
) -> tuple[float, Replica]:
    """Seconds to merge every batch into a new hub replica, checkpointing as a served one does;
    ``cpu[name]``: the CPU seconds of this process meanwhile (steadier on a shared machine)."""
    target = Replica(path, Identity.generate("92"), kinds, migrate=migrate, feed=True)
    target.trust(source.identity.node, source.identity.public_raw)
    checkpoints = target.checkpointer()
    checkpoints.start()
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        for data in wire:
            target.merge(data)
        cpu[name] = time.process_time() - cpu_started
        return time.perf_counter() - started, target
    finally:
        checkpoints.stop()


def run(
    dossiers: int, seed: int, batch_bytes: int, grow_to: int, interleaved: bool = True
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = (author_mixed if interleaved else author)(root / "source.db", dossiers, seed)
        # As a box sends them now: batch_bytes first, doubling up to grow_to.
        wire = [encode_batch(b) for b in source.batches({}, max_bytes=batch_bytes, grow_to=grow_to)]
        fixed = [encode_batch(b) for b in source.batches({}, max_bytes=batch_bytes)]
        bodies = [body for data in wire for r in decode_batch(data).runs for body in r.ops]
        ops = len(bodies)

        # The same merge without the domain's projection tables: the sync library's own cost
        # (decode, verify, log, fold with the real dossier reducers, entity states).
        bare_kinds = [replace(kind, project=None) for kind in KINDS]
        cpu: dict[str, float] = {}
        sync_only_s, bare = merge_all(root / "bare.db", bare_kinds, source, wire, cpu, "sync_only")
        bare.close()
        fixed_s, same = merge_all(root / "fixed.db", list(KINDS), source, fixed, cpu, "fixed")
        same.close()

        merge_s, target = merge_all(root / "target.db", list(KINDS), source, wire, cpu, "merge")
        if target.digest() != source.digest() or target.state_digest() != source.state_digest():
            raise SystemExit("merge did not reproduce the source replica: benchmark invalid")
        dossier_rows = target.conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]
        if dossier_rows != dossiers:
            raise SystemExit(f"projection holds {dossier_rows} dossiers, expected {dossiers}")

        started = time.perf_counter()
        for data in wire:
            target.verify(decode_batch(data))
        verify_s = time.perf_counter() - started

        # Best of three: the baseline's noise should not flatter the ratio.
        raw_s = min(baseline(root / f"baseline{i}.db", bodies) for i in range(3))
        source.close()
        target.close()
    return {
        "ops": ops,
        "dossiers": dossiers,
        "batches": len(wire),
        "merge_s": round(merge_s, 3),
        "merge_ops_per_s": round(ops / merge_s),
        "merge_cpu_ops_per_s": round(ops / cpu["merge"]),
        "verify_ops_per_s": round(ops / verify_s),
        "raw_insert_rows_per_s": round(ops / raw_s),
        "ratio": round(raw_s / merge_s, 3),
        "merge_sync_only_ops_per_s": round(ops / sync_only_s),
        "ratio_sync_only": round(raw_s / sync_only_s, 3),
        "batches_fixed": len(fixed),
        "merge_fixed_ops_per_s": round(ops / fixed_s),
        "merge_fixed_cpu_ops_per_s": round(ops / cpu["fixed"]),
        "ratio_fixed": round(raw_s / fixed_s, 3),
        "bytes_per_op_raw": round(sum(map(len, bodies)) / ops, 1),
        "bytes_per_op_compressed": round(sum(map(len, wire)) / ops, 1),
        "batch_bytes": batch_bytes,
        "grow_to": grow_to,
        "history": "interleaved" if interleaved else "sequential",
        "seed": seed,
        **machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 dossiers: a smoke run")
    parser.add_argument("--dossiers", type=int, default=10_000, help="dossiers (10 ops each)")
    parser.add_argument("--seed", type=int, default=20251027)
    parser.add_argument("--batch-bytes", type=int, default=256 * 1024, help="the first batch's bytes")
    parser.add_argument(
        "--grow-to", type=int, default=4 * 1024 * 1024, help="batches double up to this (batch_bytes_max)"
    )
    history = parser.add_mutually_exclusive_group()
    history.add_argument(
        "--interleaved",
        dest="interleaved",
        action="store_true",
        default=True,
        help="thousands of dossiers open at once, ops in time order (default)",
    )
    history.add_argument(
        "--sequential", dest="interleaved", action="store_false", help="each dossier's ops together"
    )
    args = parser.parse_args(argv)
    dossiers = 1_000 if args.quick else args.dossiers
    json.dump(
        run(dossiers, args.seed, args.batch_bytes, args.grow_to, args.interleaved), sys.stdout, indent=2
    )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
