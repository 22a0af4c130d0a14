"""A replication demo of the sync core: a city replica and two Can Tho communes.

Until the web apps land this is what ``make run`` shows: real units and procedures authored at
the city as ops, dossiers received offline at two communes (some non-territorial), a link that
drops, concurrent moves of one dossier that conflict, and every replica converging to the same
digest once the link is back.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ops.demodata import dossier_ops
from schema import KINDS, PILOT_PROCEDURES, migrate, province_units
from sync.identity import Identity
from sync.replica import Replica

PROVINCE = "92"
COMMUNES = ("31135", "31120")  # Phường Ninh Kiều, Phường Cái Khế


def _open(path: Path, unit: str) -> Replica:
    return Replica(path, Identity.generate(unit), KINDS, migrate=migrate)


def exchange(a: Replica, b: Replica, link_up: bool = True) -> tuple[int, int]:
    """One sync round in both directions; returns ops applied (at b, at a)."""
    if not link_up:
        return (0, 0)
    to_b = sum(b.merge(batch).applied for batch in a.batches(b.vector()))
    to_a = sum(a.merge(batch).applied for batch in b.batches(a.vector()))
    return to_b, to_a


def run(directory: Path, dossiers: int = 150, say: Callable[[str], None] = print) -> bool:
    """Run the demo in ``directory`` (wiped first); return True when every replica converged."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    rnd = random.Random(2025)
    city = _open(directory / "central.db", PROVINCE)
    communes = [_open(directory / f"edge-{unit}.db", unit) for unit in COMMUNES]
    everyone = [city, *communes]
    for r in everyone:
        for other in everyone:
            if other is not r:
                r.trust(other.identity.node, other.identity.public_raw)

    units = province_units(PROVINCE)
    with city.write() as w:
        for unit in units:
            w.append("unit", unit.code, "upsert", unit.as_payload())
        for procedure in PILOT_PROCEDURES:
            w.append("procedure", procedure.code, "upsert", procedure.as_payload())
    say(f"city {city.identity.node}: {len(units)} units of Cần Thơ, {len(PILOT_PROCEDURES)} procedures")

    for edge in communes:
        applied, _ = exchange(city, edge)
        say(f"  -> {edge.identity.node} received {applied} reference ops")

    today = datetime.now(UTC).date()
    received_ms = int(time.time() * 1000)
    shared: list[str] = []
    for index, commune in enumerate(communes):
        code, other_code = COMMUNES[index], COMMUNES[1 - index]
        with commune.write() as w:
            for n in range(dossiers):
                entity = f"{rnd.getrandbits(64):016x}"
                procedure_code = rnd.choice(PILOT_PROCEDURES).code
                ops = dossier_ops(rnd, code, procedure_code, today, n + 1, received_ms)
                for action, payload in ops:
                    if action == "create" and n % 10 == 0:
                        payload = {**payload, "handling_unit": other_code}  # non-territorial
                        shared.append(entity)
                    if action == "transition" and payload["to"] == 9:
                        break  # leave it processing: the handling unit decides
                    w.append("dossier", entity, action, payload)
        say(f"commune {code}: received {dossiers} dossiers offline ({dossiers // 10} for {other_code})")

    for round_no in (1, 2):
        for edge in communes:
            to_city, to_edge = exchange(edge, city)
            say(f"sync {round_no}: {edge.identity.unit} -> city {to_city} ops, back {to_edge} ops")

    # The second commune's link drops; both communes move the same non-territorial dossier
    # while apart: the later move in HLC order will be a conflict, kept and shown.
    contested = shared[0]
    say(f"link {COMMUNES[1]} <-> city DOWN")
    with communes[0].write() as w:
        w.append("dossier", contested, "transition", {"to": 9, "by": "lanhdao01", "role": "leader"})
    with communes[1].write() as w:
        w.append("dossier", contested, "transition", {"to": 5, "by": "canbo02", "role": "clerk"})
    to_city, _ = exchange(communes[0], city)
    say(f"link {COMMUNES[0]} <-> city: city got {to_city} ops")

    say(f"link {COMMUNES[1]} <-> city UP again")
    for round_no in (3, 4):
        for edge in communes:
            to_city, to_edge = exchange(edge, city)
            say(f"sync {round_no}: {edge.identity.unit} -> city {to_city} ops, back {to_edge} ops")

    digests = {r.identity.node: r.digest().hex()[:16] for r in everyone}
    states = {r.state_digest().hex()[:16] for r in everyone}
    for node, digest in digests.items():
        say(f"  {node:28}  ops digest {digest}")
    conflicts = city.conflicts("dossier", contested)
    state = city.state("dossier", contested) or {}
    say(f"contested dossier {state.get('code')}: status {state.get('status')}, conflicts: {len(conflicts)}")
    for c in conflicts:
        say(f"  conflict: {c.action} by {c.node}#{c.seq}: {c.reason}")
    converged = len(set(digests.values())) == 1 and len(states) == 1
    say("converged: every replica holds the same ops and the same state" if converged else "NOT converged")
    for r in everyone:
        r.close()
    return converged
