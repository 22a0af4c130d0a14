"""Upstream with real processes: a city, two served boxes, a simulated portal flapping through
every fault, and a SIGKILL of the city while a send is in flight.

What must hold at the end: every dossier is at the portal exactly once (created once) with its
last status; the only dead letter is the dossier the portal refused; the receipts verify with
the city's key; ``motcua upstream status`` says nothing waits.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from ports import free_port
from servers import CAI_KHE, NINH_KIEU, Clerk, Server, World, motcua, run_cli

from central.upstream.receipts import verify_receipts
from central.upstream.store import UPSTREAM_FILE, UpstreamStore
from schema.procedures import PILOT_PROCEDURES

T = TypeVar("T")
WAIT_S = 240.0
UNIT_CODES = {NINH_KIEU: "000.31.35.H13", CAI_KHE: "000.31.20.H13"}
REFUSED = "Trần Thị Bị Từ Chối"
PASSWORD = "mat-khau-cong-dvcqg"

# Each path ends in a different status: every status of the portal's list (1 to 10).
PATHS: list[tuple[list[str], int]] = [
    ([], 1),
    (["accept"], 2),
    (["refuse"], 3),
    (["accept", "start"], 4),
    (["accept", "start", "request_supplement"], 5),
    (["accept", "start", "request_fees"], 6),
    (["withdraw"], 7),
    (["accept", "stop"], 8),
    (["accept", "start", "processed"], 9),
    (["accept", "start", "request_supplement", "record_supplement", "processed", "return_result"], 10),
]
LEADER_ACTIONS = {"stop", "processed"}
NOTED = {"refuse", "request_supplement", "request_fees", "withdraw", "stop"}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT_S) -> T:
    """Poll until ``probe`` returns something; fail saying ``what`` (no timed assertion: the
    wait is only a bound on a machine that is stuck)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.3)


def clerk_of(url: str, username: str) -> Clerk:
    def login() -> Clerk | None:
        try:
            return Clerk(url, username)
        except AssertionError:
            return None  # the account has not reached the box yet

    return wait_for(f"{username} to log in at {url}", login)


def act_through(clerks: dict[str, Clerk], dossier: str, path: list[str]) -> None:
    for action in path:
        who = clerks["leader"] if action in LEADER_ACTIONS else clerks["clerk"]
        fields: dict[str, Any] = {"note": "Ghi chú của cán bộ"} if action in NOTED else {}
        who.act(dossier, action, **fields)


def test_every_dossier_reaches_the_portal_once_with_its_last_status_through_faults_and_a_kill(tmp_path):
    accounts = {
        "canbo_nk": ("clerk", NINH_KIEU),
        "lanhdao_nk": ("leader", NINH_KIEU),
        "canbo_ck": ("clerk", CAI_KHE),
        "lanhdao_ck": ("leader", CAI_KHE),
    }
    world = World(tmp_path, accounts=accounts)
    secret = tmp_path / "dvcqg.password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    portal_port = free_port()
    portal = Server(
        "portal",
        motcua(
            "upstream",
            "simulate",
            "--port",
            str(portal_port),
            "--kind",
            "dvcqg",
            "--password-file",
            str(secret),
        ),
        portal_port,
        tmp_path / "portal.log",
        ready_path="/_sim/state",
    )
    units_csv = tmp_path / "units.csv"
    units_csv.write_text(
        "unit,electronic_id\n" + "".join(f"{u},{c}\n" for u, c in UNIT_CODES.items()), "utf-8"
    )
    sectors_csv = tmp_path / "sectors.csv"
    sectors_csv.write_text(
        "sector,code\n" + "".join(f'"{p.sector}",LV{i}\n' for i, p in enumerate(PILOT_PROCEDURES)), "utf-8"
    )
    city_dir = world.city.dir
    clerks: dict[str, dict[str, Clerk]] = {}
    try:
        portal.start()
        added = run_cli(
            "upstream", "add", "--data", str(city_dir), "--name", "dvcqg", "--kind", "dvcqg",
            "--url", portal.url, "--username", "motcua", "--password-file", str(secret),
            "--unit-code-file", str(units_csv), "--sector-code-file", str(sectors_csv), "--rate", "50",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert PASSWORD not in added.stdout + added.stderr
        secret_file = city_dir / "upstream" / "dvcqg.secret"
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600

        world.start()
        for unit, (clerk, leader) in (
            (NINH_KIEU, ("canbo_nk", "lanhdao_nk")),
            (CAI_KHE, ("canbo_ck", "lanhdao_ck")),
        ):
            url = world.serve_edge(unit).url
            clerks[unit] = {"clerk": clerk_of(url, clerk), "leader": clerk_of(url, leader)}

        def receive(unit: str, name: str) -> dict[str, Any]:
            def attempt() -> dict[str, Any] | None:
                response = clerks[unit]["clerk"].client.post(
                    "/api/v1/dossiers",
                    json={
                        "procedure": "2.000720",
                        "applicant_name": name,
                        "citizen_id": "092085001234",
                        "phone": "0912345678",
                        "address": "12 Mậu Thân",
                    },
                )
                return (
                    dict(response.json()) if response.status_code == 201 else None
                )  # procedures not yet synced

            return wait_for(f"a dossier received at {unit}", attempt)

        expected: dict[str, tuple[str, int]] = {}  # id -> (unit, last status)
        control = httpx.Client(base_url=portal.url, timeout=30)
        faults = [
            {"rate_limit": 3, "retry_after": 1},
            {"fail": 3},
            {"expire_sessions": True},
            {"cut_after_commit": 2},
            {"slow_ms": 400},
        ]
        for round_, fault in enumerate(faults):
            control.post("/_sim/faults", json=fault)
            for unit in (NINH_KIEU, CAI_KHE):
                for index, (path, last) in enumerate(PATHS):
                    if (index + round_) % len(faults) != 0:
                        continue
                    received = receive(unit, f"Nguyễn Văn {unit} {round_} {index}")
                    act_through(clerks[unit], str(received["id"]), path)
                    expected[str(received["id"])] = (unit, last)
        refused = receive(NINH_KIEU, REFUSED)
        control.post("/_sim/faults", json={"refuse_names": [REFUSED], "slow_ms": 0})

        # A SIGKILL of the city while a send is in flight: the portal answers slowly, a dossier
        # moves, and the city dies as soon as its request arrived.
        arrived = int(control.get("/_sim/state").json()["arrived"])
        control.post("/_sim/faults", json={"slow_ms": 3000})
        moved = next(d for d, (unit, last) in expected.items() if last == 2 and unit == NINH_KIEU)
        act_through(clerks[NINH_KIEU], moved, ["start"])
        expected[moved] = (NINH_KIEU, 4)
        wait_for(
            "a request in flight",
            lambda: True if int(control.get("/_sim/state").json()["arrived"]) > arrived else None,
        )
        assert world.central is not None
        world.central.kill()
        world.central = None
        control.post("/_sim/faults", json={"slow_ms": 0, "cut_after_commit": 1, "fail": 2})
        world.start_central()

        def all_there() -> dict[str, Any] | None:
            state = control.get("/_sim/state").json()
            status = json.loads(run_cli("upstream", "status", "--data", str(city_dir), "--json").stdout)
            [adapter] = status["adapters"]
            held = {d["record"]["ChuHoSo"]: d for d in state["dossiers"].values()}
            if adapter["backlog"] != 0 or len(held) != len(expected) or adapter["dead"] != 1:
                return None
            return {"state": state, "status": status}

        try:
            done = wait_for("every dossier at the portal and nothing waiting", all_there)
        finally:
            control.close()
    finally:
        for pair in clerks.values():
            for clerk in pair.values():
                clerk.close()
        world.close()
        portal.stop()

    held = done["state"]["dossiers"]
    with world.city.opened() as city:
        replica = city.node.replica
        public = city.node.identity.public_raw
        by_code = {}
        for dossier, (unit, last) in expected.items():
            state = replica.state("dossier", dossier)
            assert state is not None
            assert state["status"] == last
            code = state["code"].rsplit("-", 2)
            by_code[f"{UNIT_CODES[unit]}-{code[1]}-{code[2]}"] = last
    # Every dossier exactly once, created once, with its last status; the refused one absent.
    assert {code: int(d["record"]["TrangThaiHoSo"]) for code, d in held.items()} == by_code
    assert all(d["creates"] == 1 for d in held.values()), {c: d["creates"] for c, d in held.items()}
    assert REFUSED not in {d["record"]["ChuHoSo"] for d in held.values()}
    dead = done["status"]["dead_letters"]
    assert [(d["dossier"], d["error_code"]) for d in dead] == [(str(refused["id"]), "02")]
    assert "từ chối" in dead[0]["message"]
    store = UpstreamStore(Path(city_dir) / UPSTREAM_FILE)
    try:
        records = store.receipts()
        assert verify_receipts(records, public) == len(records)
        verdicts = {r.receipt.verdict for r in records}
        assert {"ok", "retry", "refused"} <= verdicts
    finally:
        store.close()
