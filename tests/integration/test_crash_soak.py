"""Power cuts at random moments, many in a row (issue 6, "Crash safety").

A real ``motcua edge serve`` process for Phường Ninh Kiều (31135) with its background sync loop
on (every second) against a real ``motcua central serve``, through the commune's link. Three
clerk threads use the JSON API without pause: they receive dossiers (one in five for Phường Cái
Khế, so the city routes it) and move their own along a fixed path, keeping a ledger of every
answer (crashkit.Ledger). Then, again and again, the box or the city is killed with SIGKILL at a
seeded random moment: while a receipt is on the wire, while an action is, while the sync loop
pushes or pulls, or anywhere.

After each cut of the box, before it restarts: every database in its directory passes ``PRAGMA
integrity_check``, its own op log is dense, every write answered 2xx is there (receipt with its
code, each acknowledged step), nothing is there twice (an unanswered write at most once), codes
are unique. A receipt whose answer the cut swallowed is sent again with its Idempotency-Key, as
a real client retries: the box answers with the dossier it made, if it made one, so no retry
makes a second dossier (each applicant's name is held once). After each cut of the city: its
databases pass the same checks, its log is dense, and it holds every op it acknowledged (its
signed acks, what the box learned from it). At the end the link heals and box, city and Cái Khế
converge, with every acknowledged dossier at its units with the same timeline.

Sizes: 50 cuts by default (40 of the box, 10 of the city); ``MOTCUA_SOAK=1`` makes it 1,000;
``MOTCUA_CRASH_KILLS=N`` any number (a fifth of them the city's), for a quick run;
``MOTCUA_CRASH_SEED`` another schedule of moments. Run with ``-s`` to see the summary line.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections import Counter

import pytest
from crashkit import (
    ClerkWorker,
    Found,
    Ledger,
    check_city_acks,
    check_dossiers,
    check_files,
    edge_believes_the_city_holds,
)
from faultproxy import FaultProxy
from servers import CAI_KHE, NINH_KIEU, Server, assert_converged, assert_dense, held, opened_node

from edge.node import DB_FILE

SOAK = os.environ.get("MOTCUA_SOAK") == "1"
KILLS = int(os.environ.get("MOTCUA_CRASH_KILLS") or (1000 if SOAK else 50))
CITY_KILLS = KILLS // 5
SEED = int(os.environ.get("MOTCUA_CRASH_SEED") or 2026)
CLERKS = 3

BOX_MOMENTS = ("receive", "act", "sync", "any")
CITY_MOMENTS = ("sync", "any")


def aim(moment: str, ledger: Ledger, link: FaultProxy, rng: random.Random, timeout: float = 3.0) -> str:
    """Wait for the moment to cut: a request of that kind on the wire, the sync loop's traffic
    on the link, or a random instant. Returns the moment hit ("any" if it did not come)."""
    deadline = time.monotonic() + timeout
    if moment in ("receive", "act"):
        while ledger.in_flight[moment] == 0:
            if time.monotonic() > deadline:
                return "any"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.015))  # somewhere in the request: parsing, the commit, the answer
    elif moment == "sync":
        start = link.stats.upstream_bytes + link.stats.downstream_bytes
        while link.stats.upstream_bytes + link.stats.downstream_bytes == start:
            if time.monotonic() > deadline:
                return "any"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
    else:
        time.sleep(rng.uniform(0, 0.6))
    return moment


def assert_nothing_lost(where: str, found: Found) -> None:
    assert not found.lost, f"{where}: acknowledged writes missing: {found.lost[:10]}"
    assert not found.duplicates, f"{where}: written twice: {found.duplicates[:10]}"


@pytest.mark.slow
def test_power_cuts_of_the_box_and_the_city_lose_no_acknowledged_write(world):
    rng = random.Random(SEED)
    world.settle()  # accounts and reference data on the box before it serves
    with opened_node(world.edges[NINH_KIEU].dir) as node:
        me = node.identity.node
    world.close_nodes()
    box = world.edges[NINH_KIEU]
    server: Server = world.serve_edge(NINH_KIEU)

    ledger = Ledger()
    serving, stop = threading.Event(), threading.Event()
    serving.set()
    workers = [
        ClerkWorker(i, server.url, "canbo01", ledger, serving, stop, SEED * 100 + i, CAI_KHE)
        for i in range(CLERKS)
    ]
    for worker in workers:
        worker.start()

    schedule = ["box"] * (KILLS - CITY_KILLS) + ["city"] * CITY_KILLS
    rng.shuffle(schedule)
    hits: Counter[str] = Counter()
    restarts: list[float] = []
    """Seconds from starting the killed box until it answered again."""
    started = time.monotonic()
    try:
        for target in schedule:
            time.sleep(rng.uniform(0.05, 0.3))  # the clerks and the sync loop get going again
            if target == "box":
                moment = aim(rng.choice(BOX_MOMENTS), ledger, box.proxy, rng)
                serving.clear()
                server.kill()
                tracks, names = ledger.snapshot()
                check_files(box.dir)
                with opened_node(box.dir) as node:
                    assert_dense("the box", held(node), [me])
                    found = check_dossiers(node, NINH_KIEU, tracks, names)
                assert_nothing_lost(f"the box after cut {sum(hits.values()) + 1}", found)
                restarted = time.monotonic()
                server.start()
                restarts.append(time.monotonic() - restarted)
                serving.set()
            else:
                moment = aim(rng.choice(CITY_MOMENTS), ledger, box.proxy, rng)
                assert world.central is not None
                world.central.kill()
                told = edge_believes_the_city_holds(box.dir / DB_FILE, me)
                check_files(world.city.dir)
                with world.city.opened() as city:
                    check_city_acks(city, me, told)
                world.start_central()
            hits[f"{target} {moment}"] += 1
            if sum(hits.values()) % 50 == 0:  # progress of a soak run (-s)
                print(
                    f"{sum(hits.values())} cuts in {time.monotonic() - started:.0f} s, nothing lost: "
                    f"{ledger.tally.receipts_acked} receipts and {ledger.tally.actions_acked} actions "
                    "acknowledged",
                    flush=True,
                )
            assert not ledger.failures, ledger.failures[:10]
    finally:
        stop.set()
        serving.set()
        for worker in workers:
            worker.join(30)
    cut_time = time.monotonic() - started

    world.stop_edge(NINH_KIEU)  # a clean stop: what the box holds is now final
    tracks, names = ledger.snapshot()
    with opened_node(box.dir) as node:
        final = check_dossiers(node, NINH_KIEU, tracks, names)
    assert_nothing_lost("the box at the end", final)
    expected = {t.id: (NINH_KIEU, CAI_KHE) if t.routed else (NINH_KIEU,) for t in tracks.values()}
    assert_converged(world, expected)
    with world.city.opened() as city:
        at_city = check_dossiers(city.node, NINH_KIEU, tracks, names)
    assert_nothing_lost("the city at the end", at_city)

    tally = ledger.tally
    box_cuts = len(restarts)
    assert box_cuts >= 1
    assert tally.receipts_acked > 0
    assert tally.actions_acked > 0
    print(
        f"\ncrash soak: {box_cuts} cuts of the box, {KILLS - box_cuts} of the city in {cut_time:.0f} s "
        f"(seed {SEED}; {dict(sorted(hits.items()))}); acknowledged: {tally.receipts_acked} receipts, "
        f"{tally.actions_acked} actions; present after the cuts: {final.receipts_present} receipts; "
        f"lost 0, duplicated 0; unanswered: {tally.receipts_unanswered} receipts "
        f"({tally.receipts_retried} sent again with their Idempotency-Key, none made twice; "
        f"{final.unanswered_present} never answered at the end held), {tally.actions_unanswered} actions "
        f"({tally.actions_read_back} read back as applied); the box answered again "
        f"{statistics.median(restarts):.1f} s (median, max {max(restarts):.1f} s) after its restart began"
    )
