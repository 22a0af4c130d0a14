"""A full disk and a read-only disk under a real edge (issue 6, "Crash safety").

Real mounts (see diskkit): the edge's data directory on a tmpfs of a few MiB filled to its last
byte by a ballast file, or on an ext4 image that the kernel turns read-only after an error.
``motcua edge serve`` runs as a real process; clerks use it through the web form (with a scan)
and the JSON API. What a clerk relies on:

- a refused write says so clearly (503; a Vietnamese page for the form, the code
  ``unavailable`` for the API), the process stays up and keeps serving reads;
- nothing is half-written: no dossier without its ops, no scan counted as attached that is not
  stored, ``PRAGMA integrity_check`` clean, and every dossier acknowledged before is still there;
- when space returns the next write succeeds, without a restart; after a read-only disk is
  repaired, the box starts and everything is there;
- the background sync loop lives through it and catches up afterwards;
- a box that starts on a read-only disk, or on a full one where its database cannot open, says
  so in one line; one that does open on a full disk (after a power cut) serves reads and warns.

``MOTCUA_SOAK=1`` repeats the fill-and-free cycle many times, leaving a random few KiB free so
that failures land at different points of a write (the scan stored but not the ops, the WAL
half-appended …).
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import threading
import time
from pathlib import Path

import httpx
from diskkit import Ext4Disk, assert_sound, fill, free_bytes, post_form, remount, scan, tmpfs
from edgekit import ACCOUNTS, PASSWORD, UNIT, login, sample_input
from servers import (
    CAI_KHE,
    NINH_KIEU,
    Clerk,
    Server,
    World,
    assert_converged,
    edge_server,
    free_port,
    run_cli,
    write_settings,
)

from edge.accounts import add_account
from edge.auth import Actor
from edge.clockcheck import ClockStatus
from edge.dossiers import receive
from edge.node import init_node

SOAK = os.environ.get("MOTCUA_SOAK") == "1"
CYCLES = 100 if SOAK else 2
"""Fill-and-free cycles of the full-disk test."""
KILLS = 20 if SOAK else 1
"""Power cuts on a full disk."""
DISK_FULL_VI = "Ổ đĩa đã đầy hoặc không ghi được: chưa có gì được lưu."
"""The clerk's message (edge/web.py's Unavailable, as the vi catalog says it)."""
FAILED_ROUND = "could not record the sync attempt: database or disk is full"
READ_ONLY_VI = "Ổ đĩa của máy không ghi được (chỉ đọc)"
LOW_VI = re.compile(r"Ổ đĩa của máy sắp đầy \(còn trống (\d+) MB\)")
FULL_VI = "Ổ đĩa của máy đã đầy"


def standalone(directory: Path) -> Path:
    """A node of Phường Ninh Kiều with its clerks, as ``motcua edge init`` + ``user add`` make it."""
    node = init_node(directory, UNIT)
    try:
        for username, (name, role, unit) in ACCOUNTS.items():
            add_account(node, username, name, role, PASSWORD, unit)
    finally:
        node.close()
    return directory


def dossier_body(applicant: str) -> dict[str, str]:
    return {
        "procedure": "2.000720",
        "applicant_name": applicant,
        "citizen_id": "092085001234",
        "phone": "0912345678",
        "address": "12 Mậu Thân",
    }


def api_receive(clerk: Clerk, applicant: str) -> httpx.Response:
    return clerk.client.post("/api/v1/dossiers", json=dossier_body(applicant))


def api_attach(clerk: Clerk, dossier: str, pdf: bytes) -> httpx.Response:
    files = [("scans", ("bản chụp.pdf", pdf, "application/pdf"))]
    return clerk.client.post(f"/api/v1/dossiers/{dossier}/attachments", files=files)


def received_id(response: httpx.Response) -> str:
    """The dossier id of an accepted form post (a redirect to its receipt)."""
    found = re.fullmatch(r"/dossiers/([0-9a-f]{32})/receipt", response.headers.get("location", ""))
    assert found, response.headers
    return found.group(1)


def assert_refused_page(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert DISK_FULL_VI in response.text
    assert "Traceback" not in response.text


def assert_refused_json(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("Ổ đĩa đã đầy")


class Desk:
    """One clerk at one box, through both doors (the web form and the JSON API), keeping the
    books of what the box acknowledged."""

    def __init__(self, url: str, books: Desk | None = None) -> None:
        """``books``: the desk before a restart, whose acknowledged dossiers this one carries on."""
        self.web = httpx.Client(base_url=url, timeout=30)
        self.csrf = login(self.web, "canbo01")  # type: ignore[arg-type]
        self.api = Clerk(url, "canbo01")
        self.dossiers: list[str] = list(books.dossiers) if books else []
        self.scans: list[tuple[str, str]] = list(books.scans) if books else []
        self.refused = books.refused if books else 0
        self._n = books._n if books else 0

    def _applicant(self) -> str:
        self._n += 1
        return f"Nguyễn Văn An {self._n}"

    def try_form(self) -> httpx.Response:
        applicant = self._applicant()
        response = post_form(self.web, self.csrf, applicant, scan(self._n))
        if response.status_code == 303:
            dossier = received_id(response)
            self.dossiers.append(dossier)
            self.scans.extend((dossier, sha) for sha in self.attachments_of(dossier))
        else:
            assert_refused_page(response)
            # The same form again, with what the clerk typed: only the scan must be chosen again.
            assert f'value="{applicant}"' in response.text
            self.refused += 1
        return response

    def try_api(self) -> httpx.Response:
        response = api_receive(self.api, self._applicant())
        if response.status_code == 201:
            self.dossiers.append(str(response.json()["id"]))
        else:
            assert_refused_json(response)
            self.refused += 1
        return response

    def try_attach(self) -> httpx.Response:
        dossier = self.dossiers[0]
        response = api_attach(self.api, dossier, scan(self._n))
        self._n += 1
        if response.status_code == 201:
            self.scans.extend((dossier, a["sha256"]) for a in response.json()["attachments"])
        else:
            assert_refused_json(response)
            self.refused += 1
        return response

    def attachments_of(self, dossier: str) -> list[str]:
        response = self.api.client.get(f"/api/v1/dossiers/{dossier}")
        assert response.status_code == 200, response.text
        return [str(a["sha256"]) for a in response.json()["attachments"]]

    def all_readable(self) -> None:
        """Reads still work: every acknowledged dossier opens, and so does its receipt page."""
        for dossier in self.dossiers:
            assert self.api.client.get(f"/api/v1/dossiers/{dossier}").status_code == 200
        if self.dossiers:
            assert self.web.get(f"/dossiers/{self.dossiers[-1]}/receipt").status_code == 200

    def disk_problem(self) -> str | None:
        """What the sync status says of the data disk (the pages show the same warning)."""
        problem = self.api.status()["disk"]["problem"]
        return None if problem is None else str(problem)

    def close(self) -> None:
        self.web.close()
        self.api.close()


# --- a full disk -----------------------------------------------------------------------------------


def test_a_full_disk_refuses_writes_clearly_and_recovers_without_a_restart(tmp_path):
    """The disk fills to its last byte under a serving edge: form (with a scan), API receive and
    API attachment are refused with the clear 503, reads go on, the process stays up; the
    ballast goes and the next writes succeed in the same process. Nothing acknowledged is lost,
    nothing refused is half there, the database is intact."""
    rng = random.Random(6)
    with tmpfs(tmp_path / "disk", 24) as disk:
        data = standalone(disk / "node")
        server = edge_server(data, free_port(), tmp_path).start()
        desk = Desk(server.url)
        try:
            for cycle in range(CYCLES):
                assert desk.try_form().status_code == 303
                assert desk.try_api().status_code == 201
                assert desk.try_attach().status_code == 201
                # The first cycle takes the last byte; later ones (soak) leave a few KiB, so that
                # some writes fit and others fail part-way.
                leave = 0 if cycle == 0 else rng.choice([0, 4096, 16384, 40960])
                fill(disk / "ballast", leave)
                refused_before = desk.refused
                for _ in range(3):
                    desk.try_form()
                    desk.try_api()
                    desk.try_attach()
                assert server.running, server.log()
                if cycle == 0:
                    # Not later: once the WAL has been checkpointed, a small write can reuse its
                    # space and succeed on a full disk, which is fine (it is counted as acknowledged).
                    assert desk.refused - refused_before == 9, "a write went through a full disk"
                desk.all_readable()
                (disk / "ballast").unlink()
                assert free_bytes(disk) > 1 << 20
                # Space is back: the same process takes the next dossier through both doors.
                assert desk.try_form().status_code == 303
                assert desk.try_api().status_code == 201
                assert desk.try_attach().status_code == 201
        finally:
            desk.close()
            server.stop()
        assert desk.refused >= 9
        assert "Traceback" not in server.log()
        count = assert_sound(data, desk.dossiers, desk.scans, exact=True)
        assert count == len(desk.dossiers)
        print(
            f"full disk: {CYCLES} fill-and-free cycles, {desk.refused} writes refused (503), "
            f"{count} dossiers and {len(desk.scans)} scans acknowledged, none lost, integrity ok"
        )


def test_sigkill_on_a_full_disk_then_space_returns_loses_nothing(tmp_path):
    """A power cut while a clerk keeps hitting a full disk. Power returns before the technician
    frees space: the box either serves (a warning in its log; every acknowledged dossier opens;
    writes are refused clearly; once space returns the same process takes new dossiers) or
    refuses to start in one line until space returns. After the last round everything
    acknowledged is there and the database is intact; the only dossier nobody was told about
    can be the one in flight at a cut."""
    with tmpfs(tmp_path / "disk", 24) as disk:
        data = standalone(disk / "node")
        server = edge_server(data, free_port(), tmp_path).start()
        desk = Desk(server.url)
        refused_in_flight = opened_full = 0
        try:
            for cut in range(KILLS):
                for _ in range(2):
                    assert desk.try_form().status_code == 303
                    assert desk.try_api().status_code == 201
                assert desk.try_attach().status_code == 201
                fill(disk / "ballast")
                refused, acknowledged = _writes_until_killed(server, desk.api.client.headers["authorization"])
                refused_in_flight += refused
                desk.dossiers += acknowledged
                if cut == 0:
                    # Not later: once the WAL has been checkpointed, a write can reuse its space
                    # and succeed on a full disk, which is fine (it is counted as acknowledged).
                    assert acknowledged == [], "a write went through a full disk"
                desk.close()
                if _start_on_a_full_disk(server):
                    opened_full += 1
                    desk = Desk(server.url, books=desk)
                    desk.all_readable()
                    answer = desk.try_api().status_code
                    assert cut > 0 or answer == 503
                    (disk / "ballast").unlink()
                else:
                    (disk / "ballast").unlink()
                    server.start()
                    desk = Desk(server.url, books=desk)
                    desk.all_readable()
                assert desk.try_form().status_code == 303
                assert desk.try_api().status_code == 201
        finally:
            desk.close()
            server.stop()
        assert "Traceback" not in server.log()
        count = assert_sound(data, desk.dossiers, desk.scans)
        assert count - len(desk.dossiers) <= KILLS, "more unacknowledged dossiers than cuts"
        print(
            f"SIGKILL on a full disk: {KILLS} power cuts, {refused_in_flight} writes refused in flight, "
            f"restarted on the full disk: {opened_full} served, {KILLS - opened_full} refused in one line; "
            f"{len(desk.dossiers)} dossiers and {len(desk.scans)} scans acknowledged, none lost, "
            f"{count - len(desk.dossiers)} in flight at a cut and kept"
        )


def _start_on_a_full_disk(server: Server) -> bool:
    """Start the box while its disk is still full. Whether its database opens depends on what
    the cut left (the WAL and its shared memory): it serves with a warning line, or it refuses
    in one line and exits 2. Returns whether it serves."""
    try:
        server.start()
    except RuntimeError:
        server.stop()  # it exited: close its log
        last = server.log().strip().splitlines()[-1]
        assert "is full: the box cannot open its database" in last, server.log()
        return False
    assert re.search(r"warning: the disk of .* is full", server.log()), server.log()
    return True


def _writes_until_killed(server: Server, token: str) -> tuple[int, list[str]]:
    """Receive dossiers through the API in a loop until the box is SIGKILLed mid-stream (after
    at least five answers); returns how many were refused (the clear 503) and the ids of those
    acknowledged."""
    refused: list[httpx.Response] = []
    acknowledged: list[str] = []
    stop = threading.Event()

    def keep_writing() -> None:
        with httpx.Client(base_url=server.url, timeout=10, headers={"authorization": token}) as client:
            while not stop.is_set():
                try:
                    response = client.post("/api/v1/dossiers", json=dossier_body("Trần Thị Bình"))
                except httpx.TransportError:
                    return  # the box is gone
                if response.status_code == 201:
                    acknowledged.append(str(response.json()["id"]))
                else:
                    refused.append(response)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(refused) + len(acknowledged) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
    finally:
        stop.set()
        writer.join(30)
    assert refused or acknowledged, "no write reached the box before the power cut"
    for response in refused:
        assert_refused_json(response)
    return len(refused), acknowledged


def one_line_refusal(data: Path) -> str:
    """``motcua edge serve`` on a disk it cannot use: exit 2 and one line, never a traceback."""
    done = run_cli("edge", "serve", "--data", str(data), "--port", str(free_port()))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_box_starting_on_a_read_only_or_full_disk_says_so_in_one_line(tmp_path):
    """The technician starts the box on a disk mounted read-only, then on a full one: each time
    one line that names the problem and exit code 2; with space back, it serves."""
    with tmpfs(tmp_path / "disk", 16) as disk:
        data = standalone(disk / "node")
        remount(disk, "ro")
        try:
            assert "read-only disk" in one_line_refusal(data)
        finally:
            remount(disk, "rw")
        fill(disk / "ballast")
        assert "is full" in one_line_refusal(data)
        (disk / "ballast").unlink()
        server = edge_server(data, free_port(), tmp_path).start()
        try:
            with Clerk(server.url, "canbo01") as clerk:
                accepted = api_receive(clerk, "Lê Văn Cường")
                assert accepted.status_code == 201, accepted.text
        finally:
            server.stop()
        assert_sound(data, [str(accepted.json()["id"])], exact=True)


def test_every_page_and_the_sync_status_warn_before_the_disk_is_full(tmp_path):
    """With ``disk_warn_mb = 8`` on a 24 MiB disk: no warning while there is room; below 8 MiB
    free every page says how much is left and the sync status says "low"; at the last byte both
    say full; once the ballast is gone the warning goes too."""
    with tmpfs(tmp_path / "disk", 24) as disk:
        data = standalone(disk / "node")
        write_settings(data, disk_warn_mb=8)
        server = edge_server(data, free_port(), tmp_path).start()
        desk = Desk(server.url)
        try:
            assert desk.disk_problem() is None
            assert 'id="disk-warning"' not in desk.web.get("/").text
            fill(disk / "ballast", leave_bytes=4 << 20)
            wait_until(lambda: desk.disk_problem() == "low", "the warning that the disk runs low")
            shown = LOW_VI.search(desk.web.get("/dossiers").text)
            assert shown, "the dossier list does not warn"
            assert 1 <= int(shown.group(1)) <= 4
            assert desk.try_api().status_code == 201  # low is a warning: writes still work
            fill(disk / "ballast")
            wait_until(lambda: desk.disk_problem() == "full", "the warning that the disk is full")
            assert FULL_VI in desk.web.get("/").text
            (disk / "ballast").unlink()
            wait_until(lambda: desk.disk_problem() is None, "the warning to go once space returned")
            assert 'id="disk-warning"' not in desk.web.get("/").text
        finally:
            desk.close()
            server.stop()


# --- a disk that turns read-only under the server --------------------------------------------------


def test_a_disk_turning_read_only_under_the_server_refuses_clearly_and_loses_nothing(tmp_path):
    """The kernel remounts the data disk read-only (an ext4 error) while the edge serves: the
    form and the API are refused with the clear 503, reads go on, the process stays up and
    stops cleanly. The box does not start on it (one line); the technician repairs the disk
    (e2fsck) and the box starts with everything acknowledged, and takes new dossiers."""
    with Ext4Disk(tmp_path / "disk.img", tmp_path / "disk", 48) as disk:
        data = standalone(disk.mountpoint / "node")
        server = edge_server(data, free_port(), tmp_path).start()
        desk = Desk(server.url)
        try:
            for _ in range(2):
                assert desk.try_form().status_code == 303
                assert desk.try_api().status_code == 201
            assert desk.try_attach().status_code == 201
            disk.fail()
            for _ in range(2):
                assert desk.try_form().status_code == 503
                assert desk.try_api().status_code == 503
                assert desk.try_attach().status_code == 503
            assert server.running, server.log()
            desk.all_readable()
            wait_until(lambda: desk.disk_problem() == "read_only", "the status to see the read-only disk")
            assert READ_ONLY_VI in desk.web.get("/").text
        finally:
            desk.close()
            server.stop()

        refused = run_cli("edge", "serve", "--data", str(data), "--port", str(free_port()))
        assert refused.returncode == 2, refused.stderr
        assert "read-only" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

        assert disk.repair() in (0, 1)  # 1: the error flag the failure left was cleared
        assert_sound(data, desk.dossiers, desk.scans, exact=True)
        server.start()
        again = Desk(server.url)
        try:
            assert again.try_api().status_code == 201
            assert again.try_form().status_code == 303
        finally:
            again.close()
            server.stop()
        assert_sound(data, desk.dossiers + again.dossiers, desk.scans + again.scans, exact=True)


# --- the sync loop through a full disk ------------------------------------------------------------


def test_the_sync_loop_lives_through_a_full_disk_and_catches_up(tmp_path):
    """Ninh Kiều's box serves with its background sync loop, its data on a small disk that
    fills up while the city has a dossier for it (routed from Cái Khế): the rounds fail to save
    what they receive, the process lives on and keeps trying; once space returns the dossier
    arrives, the box's own new dossier reaches the city, and everything converges."""
    with tmpfs(tmp_path / f"edge-{NINH_KIEU}", 32) as disk:
        world = World(
            tmp_path,
            accounts={"canbo01": ("clerk", NINH_KIEU), "canbo_caikhe": ("clerk", CAI_KHE)},
            batch_bytes=2048,
            batch_bytes_max=8192,  # batches grow as on a real box, and stay many per round
            blob_chunk_bytes=65536,
        )
        try:
            world.start()
            world.settle()
            world.close_nodes()
            server = world.serve_edge(NINH_KIEU)
            with Clerk(server.url, "canbo01") as lan:
                first = str(lan.receive("Phạm Văn Em")["id"])
                wait_until(lambda: lan.status()["waiting"] == 0, "the first dossier to reach the city")

                # The box checkpoints its WAL from a thread of its own and then writes into the
                # WAL file it already has: on a full disk small commits still fit there. Empty it
                # first, as after a quiet night, so the next commit needs new space.
                shrink_wal(disk / "motcua.db")
                fill(disk / "ballast")
                routed = _receive_routed_at_cai_khe(world)
                # Each failed round says why in one line of the log (its attempt record cannot be
                # written); two of them: the loop kept going after the first.
                wait_until(
                    lambda: server.log().count(FAILED_ROUND) >= 2,
                    "two rounds to fail on the full disk",
                )
                assert server.running, server.log()
                assert lan.client.get(f"/api/v1/dossiers/{routed}").status_code == 404
                assert_refused_json(api_receive(lan, "Võ Thị Hoa"))

                (disk / "ballast").unlink()
                wait_until(
                    lambda: lan.client.get(f"/api/v1/dossiers/{routed}").status_code == 200,
                    "the routed dossier to arrive once space returned",
                )
                late = str(lan.receive("Võ Thị Hoa")["id"])
                wait_until(lambda: lan.status()["waiting"] == 0, "the new dossier to reach the city")
                assert lan.status()["online"] is True
            world.stop_edge(NINH_KIEU)
            assert "Traceback" not in server.log()
            assert_sound(world.edges[NINH_KIEU].dir, [first, late, routed])
            assert_converged(world, {first: (NINH_KIEU,), late: (NINH_KIEU,), routed: (CAI_KHE, NINH_KIEU)})
        finally:
            world.close()


def shrink_wal(db: Path) -> None:
    """Checkpoint the whole WAL into the database and truncate it to nothing."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the WAL could not be truncated"
    finally:
        conn.close()
    assert db.with_name(db.name + "-wal").stat().st_size == 0


def _receive_routed_at_cai_khe(world: World) -> str:
    """Cái Khế (driven in this process) receives a dossier handled by Ninh Kiều and syncs it."""
    clerk = Actor("canbo_caikhe", "Phạm Thu Hà", CAI_KHE, "clerk")
    data = sample_input(applicant_name="Trần Thị Cúc", address_unit=CAI_KHE, handling_unit=NINH_KIEU)
    dossier = receive(world.open(CAI_KHE), clerk, data, [], ClockStatus(False, 0, None)).id
    assert world.round(CAI_KHE).ok
    return dossier


def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
