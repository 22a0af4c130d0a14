"""Property-based fault schedules against real servers (issue 6, "Faulty links and clocks").

Hypothesis draws schedules (tests/integration/schedules.py): clerks receive and accept dossiers,
a commune's link misbehaves for a round (cut at a byte offset either way, stall, delay, reset,
duplicated connection, a request withheld and delivered after later ones, down), the city
server restarts (SIGTERM or SIGKILL, maybe with its wall clock 26 years or 2 hours behind), and
a commune's box restarts with its wall clock off (-26y: a dead CMOS battery; +2y, +3d, -2h), or
boots hours, days or years ahead with its link down (decision 0008: it re-stamps what its clerks
wrote once the city's time corrects it).
The city is always a real ``motcua central serve`` process behind one fault proxy per commune;
a clock jump of a process is a restart with its wall clock off (tests/integration/skewclock), as
a dead battery shows at boot.

After each schedule the links heal and these must hold:

- convergence: rounds reach quiescence, scope digests equal, every log dense (no op lost, none
  twice), the city's dossiers are exactly the acknowledged ones, each at its units with the
  same timeline and the status the clerk last saw;
- HLC: per origin, stamps strictly increase with seq at every replica, and a replica's clock
  is never below the highest stamp it holds (after restarts 26 years behind too);
- due dates: a dossier whose appointment date was computed from a day that was not today
  exists only if the box called its clock suspect, the clerk confirmed, and the record says so;
  without confirmation the box refused it.

The examples of one test share one world (a city process, two communes): each example ends
healed and converged, which is what the next one starts from. ``MOTCUA_SOAK=1`` runs 140
longer schedules (about an hour here).
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

import httpx
import msgspec
import pytest
from hypothesis import Phase, example, given, note, settings
from schedules import (
    BootAheadOffline,
    Fault,
    RestartBox,
    RestartCity,
    Round,
    Step,
    Tally,
    Write,
    ahead_schedules,
    offset_ms,
    schedules,
    skewed_env,
    soak,
)
from servers import (
    CAI_KHE,
    HOUSEHOLD_BUSINESS,
    NINH_KIEU,
    Clerk,
    World,
    assert_converged,
    edge_server,
    free_port,
)

from edge import clockcheck
from edge.auth import Actor
from edge.dossiers import Received, perform, receive
from edge.errors import InvalidInput
from edge.i18n import TIMEZONE
from edge.node import Node, open_node
from edge.syncclient import CLOCKS_APART, RESTAMP_CHANNEL, RESTAMPED, UNEXPECTED, reference_skew_ms
from schema.dossier import Draft
from sync import attempts
from sync.clock import Clock, system_wall_ms
from sync.ops import decode

pytestmark = pytest.mark.slow

UNITS = (NINH_KIEU, CAI_KHE)
CLERKS = {NINH_KIEU: "canbo01", CAI_KHE: "canbo_caikhe"}
ROUND_TIMEOUT_S = 3.0
STALL_TIMEOUT_S = 1.0
"""A stalled link holds every chunk longer than this: the round times out."""
REFERENCE_SLACK_MS = 120_000
UNNOTICEABLE_MS = 24 * 3_600_000
"""A wall clock off by less than this (the schedules' "-2h") looks right to a box."""
NO_SHRINKING = (Phase.explicit, Phase.generate)
"""The examples of a test share one world, so a shrunk example would run on another world than
the failing one did; the failure prints the schedule that failed instead (``note``)."""


def clerk(unit: str) -> Actor:
    return Actor(CLERKS[unit], f"Cán bộ {unit}", unit, "clerk")


def vietnam_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, TIMEZONE).date()


# --- what a run remembers to check at the end -----------------------------------------------------


@dataclass
class Receipt:
    """A dossier the box acknowledged to the clerk."""

    id: str
    units: tuple[str, ...]
    true_days: set[date]
    """Today in Vietnam just before and just after the request."""
    suspect: bool
    confirmed: bool
    informed: bool
    """The box had the city's time for its current wall clock (it could know it was off)."""


@dataclass
class Run:
    world: World
    tally: Tally
    receipts: dict[str, Receipt] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    """dossier -> the status its clerk last saw."""
    acked: dict[str, int] = field(default_factory=dict)
    box_clock: dict[str, str] = field(default_factory=lambda: dict.fromkeys(UNITS, ""))
    city_clock: str = ""
    checked: set[str] = field(default_factory=set)
    seen: dict[str, int] = field(default_factory=dict)
    """Proxy counters at the end of the last example."""

    # --- the boxes, driven in this process --------------------------------------------------

    def node(self, unit: str) -> Node:
        return self.world.open(unit)

    def reopen(self, unit: str, clock: str) -> Node:
        """The box restarts with its wall clock ``clock`` off: a new process, as far as the
        node is concerned (calibration is not carried over; the HLC is reloaded)."""
        edge = self.world.edges[unit]
        if edge.node is not None:
            edge.node.close()
        skew = offset_ms(clock)
        edge.node = open_node(edge.dir, Clock(wall=lambda: system_wall_ms() + skew))
        self.box_clock[unit] = clock
        check_clock_not_below_log(edge.node, f"box {unit} restarted at {clock or 'the right time'}")
        return edge.node

    def informed(self, unit: str) -> bool:
        """Whether the box's last hello measured the wall clock it has now against the city's."""
        drift = reference_skew_ms(self.node(unit))
        expected = offset_ms(self.city_clock) - offset_ms(self.box_clock[unit])
        return drift is not None and abs(drift - expected) < REFERENCE_SLACK_MS

    def round(self, unit: str, timeout: float = ROUND_TIMEOUT_S) -> None:
        result = self.world.round(unit, timeout)
        assert result.error != UNEXPECTED, result.summary()
        node = self.node(unit)
        known = node.replica.peer_vector("central")[node.identity.node]
        assert known >= self.acked.get(unit, 0), "what the city acknowledged went backwards"
        self.acked[unit] = known
        self.tally.saw("round ok" if result.ok else f"round failed: {result.error}")

    # --- the steps ----------------------------------------------------------------------------

    def write(self, step: Write) -> None:
        unit = UNITS[step.unit]
        other = UNITS[1 - step.unit]
        node = self.node(unit)
        threshold = self.world.settings(unit).clock_skew_warn_s * 1000
        for i in range(step.count):
            routed = step.routed and i == 0
            status = clockcheck.for_node(node, threshold)
            informed = self.informed(unit)
            data = Draft(
                procedure="2.000720",
                applicant_name=f"Nguyễn Văn An {len(self.receipts)}",
                citizen_id="092085001234",
                dob=date(1985, 3, 14),
                phone="0912345678",
                address="12 Mậu Thân",
                address_unit=unit,
                handling_unit=other if routed else "",
                confirm_clock=step.confirm,
            )
            before = system_wall_ms()
            try:
                made = receive(node, clerk(unit), data, [], status)
            except InvalidInput as exc:
                refused: InvalidInput | None = exc
            else:
                refused = None
            if refused is not None:
                assert refused.field == "confirm_clock", str(refused)
                assert status.suspect, "refused although the clock was trusted"
                assert not step.confirm, "refused although the clerk confirmed the date"
                self.tally.saw("refused: clock suspect, not confirmed")
                continue
            assert not status.suspect or step.confirm, "a suspect clock's due date went out unconfirmed"
            self.receipts[made.id] = Receipt(
                made.id,
                (unit, other) if routed else (unit,),
                self.days_between(unit, before, system_wall_ms()),
                status.suspect,
                step.confirm,
                informed,
            )
            self.status[made.id] = made.status
            if status.suspect:
                assert made.clock_warning, "the clerk was not told why the clock is suspect"
                self.tally.saw("received on a suspect clock, confirmed")
            if step.accept:
                self.status[made.id] = perform(node, clerk(unit), made.id, "accept")["status"]

    def fault(self, step: Fault) -> None:
        unit = UNITS[step.unit]
        link = self.world.edges[unit].proxy
        timeout = ROUND_TIMEOUT_S
        if step.fault == "cut_up":
            link.set(cut_upstream_after=step.at)
        elif step.fault == "cut_down":
            link.set(cut_downstream_after=step.at)
        elif step.fault == "stall":
            link.set(stall_s=STALL_TIMEOUT_S * 1.5)
            timeout = STALL_TIMEOUT_S
        elif step.fault == "delay":
            link.set(delay_s=0.02)
        elif step.fault == "reset":
            link.set(reset=True)
        elif step.fault == "duplicate":
            link.set(duplicate_next=True)
        elif step.fault == "reorder":
            link.set(hold_request=step.at)
        elif step.fault == "down":
            link.set(down=True)
        try:
            self.round(unit, timeout)
        finally:
            link.heal()

    def restart_city(self, step: RestartCity) -> None:
        world = self.world
        assert world.central is not None
        if step.kill:
            world.central.kill()
        else:
            world.central.stop()
        start_city(world, step.clock)
        self.city_clock = step.clock

    def restart_box(self, step: RestartBox) -> None:
        # Here a power cut and a shutdown are the same reopen; the served test kills processes.
        unit = UNITS[step.unit]
        self.reopen(unit, step.clock)
        if offset_ms(step.clock) > 0:
            # A box whose clock is ahead can only learn it from the city; its sync loop's first
            # round at boot does that. Clerks writing before it, offline, are drawn by
            # test_boxes_booted_ahead_while_offline_reach_the_city (decision 0008).
            self.round(unit)

    def play(self, schedule: list[Step]) -> None:
        for step in schedule:
            if isinstance(step, Write):
                self.write(step)
            elif isinstance(step, Fault):
                self.fault(step)
            elif isinstance(step, Round):
                self.round(UNITS[step.unit])
            elif isinstance(step, RestartCity):
                self.restart_city(step)
            elif isinstance(step, RestartBox):
                self.restart_box(step)

    # --- healing and the invariants --------------------------------------------------------------

    def heal_and_check(self) -> None:
        world = self.world
        for unit in UNITS:
            world.edges[unit].proxy.heal()
        assert_converged(world, {r.id: r.units for r in self.receipts.values()})  # stops the city
        with world.city.opened() as city:
            check_clock_not_below_log(city.node, "the city")
            check_stamps_increase(city.node, "the city")
            dossiers = {
                entity
                for (entity,) in city.node.replica.conn.execute(
                    "SELECT entity FROM sync_entity WHERE kind = 'dossier'"
                )
            }
            assert dossiers == set(self.receipts), "the city's dossiers are not the acknowledged ones"
            for receipt in self.receipts.values():
                state = city.node.replica.state("dossier", receipt.id)
                assert state is not None
                assert state["status"] == self.status[receipt.id], receipt.id
                self.check_due_date(receipt, state)
        for unit in UNITS:
            stats = world.edges[unit].proxy.stats
            self.tally.add(
                {
                    "link cuts": stats.cuts - self.seen.get(f"cuts {unit}", 0),
                    "requests withheld": stats.held - self.seen.get(f"held {unit}", 0),
                    "withheld requests delivered late": stats.released - self.seen.get(f"released {unit}", 0),
                    "connections replayed": stats.duplicates - self.seen.get(f"duplicates {unit}", 0),
                }
            )
            self.seen.update(
                {
                    f"cuts {unit}": stats.cuts,
                    f"held {unit}": stats.held,
                    f"released {unit}": stats.released,
                    f"duplicates {unit}": stats.duplicates,
                }
            )
            check_stamps_increase(self.node(unit), f"box {unit}")
            check_clock_not_below_log(self.node(unit), f"box {unit}")
        start_city(world, "")
        self.city_clock = ""

    def recover(self) -> None:
        """After a failed example: a running city and healthy links, so the next example (or
        hypothesis' shrinking) starts from a working world, not from this one's wreck."""
        for unit in UNITS:
            self.world.edges[unit].proxy.heal()
        if self.world.central is None or not self.world.central.running:
            if self.world.central is not None:
                self.world.central.stop()
            start_city(self.world, "")
            self.city_clock = ""

    def days_between(self, unit: str, before_ms: int, after_ms: int) -> set[date]:
        """Today in Vietnam between two instants, as the box may rightly believe it: hours off,
        on its own clock or on the city's it calibrated against, is beyond what the box can
        notice (it suspects a clock days off), and moves the day near midnight."""
        days = {vietnam_day(before_ms), vietnam_day(after_ms)}
        for clock in (self.box_clock.get(unit, ""), self.city_clock):
            offset = offset_ms(clock)
            if abs(offset) < UNNOTICEABLE_MS:
                days |= {vietnam_day(before_ms + offset), vietnam_day(after_ms + offset)}
        return days

    def check_due_date(self, receipt: Receipt, state: dict[str, object]) -> None:
        first_time = receipt.id not in self.checked
        self.checked.add(receipt.id)
        received_at = state["received_at"]
        assert isinstance(received_at, int)
        day = vietnam_day(received_at)
        if day in receipt.true_days:
            if first_time:
                self.tally.saw("due date from the right day")
            return
        if receipt.suspect:
            assert receipt.confirmed, receipt
            assert state.get("clock_confirmed"), f"{receipt.id}: the record does not say the clerk confirmed"
            if first_time:
                self.tally.saw("due date from a wrong day, confirmed and recorded")
            return
        raise AssertionError(
            f"{receipt.id}: due date computed from {day:%d/%m/%Y} (today is "
            f"{', '.join(f'{d:%d/%m/%Y}' for d in sorted(receipt.true_days))}) on a clock the box trusted"
            f"{'' if receipt.informed else ' (it had not heard from the city since its clock moved)'}"
        )


class ServedRun(Run):
    """The same schedules with each commune's box a real ``motcua edge serve`` process: clerks
    use its JSON API, its own sync loop talks to the city, a restart is SIGTERM or SIGKILL and a
    clock jump is a restart with its wall clock off."""

    def __init__(self, world: World, tally: Tally) -> None:
        super().__init__(world, tally)
        self.clerks: dict[str, Clerk] = {}

    def serve(self, unit: str, clock: str = "") -> None:
        edge = self.world.edges[unit]
        if edge.server is None:
            edge.server = edge_server(edge.dir, free_port(), self.world.tmp)
        # Faulthandler: a box that hangs is made to dump its threads (see :meth:`hung`).
        edge.server.env = {**skewed_env(clock), "PYTHONFAULTHANDLER": "1"}
        self.world.serve_edge(unit)
        self.box_clock[unit] = clock
        self.clerks[unit] = Clerk(edge.server.url, CLERKS[unit])

    def serve_all(self) -> None:
        for unit in UNITS:
            server = self.world.edges[unit].server
            if server is None or not server.running:
                self.serve(unit, self.box_clock[unit])

    def stop_all(self) -> None:
        for unit in UNITS:
            clerk = self.clerks.pop(unit, None)
            if clerk is not None:
                clerk.close()
            self.world.stop_edge(unit)

    def last_ok(self, unit: str) -> object:
        try:
            return self.clerks[unit].status()["last_ok_ms"]
        except httpx.TimeoutException:
            raise self.hung(unit, "did not answer its sync status") from None

    def hung(self, unit: str, what: str) -> AssertionError:
        """The box stopped making progress: its threads' stacks (SIGABRT makes faulthandler
        print them to its log) for the failure message."""
        server = self.world.edges[unit].server
        status: object = None
        with contextlib.suppress(httpx.HTTPError):
            status = self.clerks[unit].client.get("/api/v1/sync/status", timeout=5).json()
        if server is not None and server.process is not None:
            server.process.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(10)
        log = server.log() if server is not None else ""
        return AssertionError(f"box {unit} {what} (clock {self.box_clock[unit]!r}): {status}\n{log}")

    def wait_round(self, unit: str, since: object, timeout: float = 30.0) -> None:
        """Until the box's loop completed a round after ``since`` (its last_ok_ms then)."""
        deadline = time.monotonic() + timeout
        while self.last_ok(unit) == since:
            if time.monotonic() > deadline:
                raise self.hung(unit, f"made no successful round in {timeout} s")
            time.sleep(0.2)
        self.tally.saw("round ok")

    def round(self, unit: str, timeout: float = ROUND_TIMEOUT_S) -> None:
        self.world.edges[unit].proxy.heal()
        self.wait_round(unit, self.last_ok(unit))

    def post_dossier(self, clerk: Clerk, unit: str, handling: str, confirm: bool) -> httpx.Response:
        return clerk.client.post(
            "/api/v1/dossiers",
            json={
                "procedure": HOUSEHOLD_BUSINESS,
                "applicant_name": f"Trần Thị Bích {len(self.receipts)}",
                "citizen_id": "092085001234",
                "phone": "0912345678",
                "address": "12 Mậu Thân",
                "address_unit": unit,
                "handling_unit": handling,
                "confirm_clock": confirm,
            },
        )

    def write(self, step: Write) -> None:
        unit = UNITS[step.unit]
        other = UNITS[1 - step.unit]
        clerk = self.clerks[unit]
        for i in range(step.count):
            routed = step.routed and i == 0
            before = system_wall_ms()
            try:
                response = self.post_dossier(clerk, unit, other if routed else "", step.confirm)
            except httpx.TimeoutException:
                raise self.hung(unit, "did not answer a clerk's receipt") from None
            after = system_wall_ms()
            if response.status_code == 422:
                assert response.json()["error"]["field"] == "confirm_clock", response.text
                assert not step.confirm, "refused although the clerk confirmed the date"
                self.tally.saw("refused: clock suspect, not confirmed")
                continue
            assert response.status_code == 201, response.text
            made = response.json()
            warned = bool(made["clock_warning"])
            assert not warned or step.confirm, "a suspect clock's due date went out unconfirmed"
            if warned:
                self.tally.saw("received on a suspect clock, confirmed")
            self.receipts[made["id"]] = Receipt(
                made["id"],
                (unit, other) if routed else (unit,),
                self.days_between(unit, before, after),
                warned,
                step.confirm,
                True,
            )
            self.status[made["id"]] = int(made["status"])
            if step.accept:
                self.status[made["id"]] = int(clerk.act(made["id"], "accept")["status"])

    def fault(self, step: Fault) -> None:
        unit = UNITS[step.unit]
        link = self.world.edges[unit].proxy
        before = link.stats.connections
        if step.fault == "down":
            # An outage that lasts: until the next round or fault step of this commune, across
            # writes and restarts (a box that boots offline cannot calibrate its clock).
            link.set(down=True)  # breaks the box's kept-alive connection too
            refused = link.stats.refused
            wait_for(lambda: link.stats.refused > refused, "the box to find the link down")
            self.tally.saw("served fault down")
            return
        link.heal()
        arm = {
            "cut_up": {"cut_upstream_after": step.at},
            "cut_down": {"cut_downstream_after": step.at},
            # A stall shorter than the loop's 20 s timeout (test 1 stalls past its timeout).
            "stall": {"stall_s": 0.5},
            "delay": {"delay_s": 0.02},
            "reset": {"reset": True},
            "duplicate": {"duplicate_next": True},
            "reorder": {"hold_request": step.at},
        }[step.fault]
        link.set(**arm)
        # The loop keeps its connection: break it so the next round opens one with the fault.
        link.drop()
        wait_for(lambda: link.stats.connections > before, "the box's next connection")
        time.sleep(1.0)
        link.heal()
        self.tally.saw(f"served fault {step.fault}")

    def restart_box(self, step: RestartBox) -> None:
        unit = UNITS[step.unit]
        server = self.world.edges[unit].server
        assert server is not None
        since = self.last_ok(unit)
        self.clerks.pop(unit).close()
        if step.kill:
            server.kill()
        else:
            server.stop()
        if offset_ms(step.clock) > 0:
            # See Run.restart_box: the loop's round at boot tells the box its clock is ahead, so
            # the link is up for it (test_boxes_booted_ahead_while_offline_... draws the case
            # where it is not).
            self.world.edges[unit].proxy.heal()
            self.serve(unit, step.clock)
            self.wait_round(unit, since)
        else:
            self.serve(unit, step.clock)

    def heal_and_check(self) -> None:
        self.stop_all()
        super().heal_and_check()
        self.serve_all()

    def recover(self) -> None:
        super().recover()
        with contextlib.suppress(Exception):
            self.serve_all()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_city(world: World, clock: str) -> None:
    server = world.city.server(world.central_port, world.tmp)
    server.env = skewed_env(clock)
    world.central = server.start()


def stamps_by_origin(node: Node) -> Iterator[tuple[str, list[int]]]:
    conn = node.replica.reader()
    try:
        rows = conn.execute(
            "SELECT n.node, o.body FROM sync_op AS o JOIN sync_node AS n ON n.id = o.node "
            "ORDER BY n.node, o.seq"
        ).fetchall()
    finally:
        conn.close()
    origin, stamps = None, []
    for node_id, body in rows:
        if node_id != origin:
            if origin is not None:
                yield origin, stamps
            origin, stamps = node_id, []
        stamps.append(decode(body).stamp)
    if origin is not None:
        yield origin, stamps


def check_stamps_increase(node: Node, name: str) -> None:
    for origin, stamps in stamps_by_origin(node):
        for before, after in itertools.pairwise(stamps):
            assert after > before, f"{name}: stamps of {origin} go backwards ({before} then {after})"


def check_clock_not_below_log(node: Node, name: str) -> None:
    highest = max((max(stamps) for _, stamps in stamps_by_origin(node)), default=0)
    assert node.clock.last.pack() >= highest, f"{name}: its clock is below a stamp it holds"


@contextlib.contextmanager
def shared_world(tmp_path) -> Iterator[World]:
    w = World(
        tmp_path,
        accounts={CLERKS[NINH_KIEU]: ("clerk", NINH_KIEU), CLERKS[CAI_KHE]: ("clerk", CAI_KHE)},
        batch_bytes=2048,
        batch_bytes_max=8192,  # batches grow as on a real box, and stay many per round
        blob_chunk_bytes=65536,
    )
    try:
        w.start()
        w.settle()
        yield w
    finally:
        w.close()


# --- the properties -------------------------------------------------------------------------------


def test_schedules_against_a_city_process_with_boxes_driven_here(tmp_path):
    """Boxes in this process (each restart reopens the node with its wall clock off), the real
    sync client through each commune's fault proxy, the city a real process."""
    tally = Tally("boxes driven here")
    started = time.monotonic()
    with shared_world(tmp_path) as world:
        run = Run(world, tally)

        @settings(max_examples=100 if soak() else 6, database=None, phases=NO_SHRINKING)
        @given(schedules(3, 25 if soak() else 10))
        # Always: a dead battery with a clerk who confirms and one who does not; the city's own
        # battery dead; a push withheld and delivered after the next round's, then a replayed
        # connection.
        @example(
            [RestartBox(0, True, "-26y"), Write(0, 2, True, True, True), Write(0, 1, False, False, False)]
        )
        @example([RestartCity(True, "-26y"), Round(1), Write(1, 1, False, True, True), Round(1)])
        @example(
            [
                Write(0, 3, False, False, False),
                Fault(0, "reorder", 2),
                Write(0, 1, False, True, False),
                Fault(0, "duplicate", 0),
            ]
        )
        def one(schedule: list[Step]) -> None:
            note(f"schedule: {schedule!r}")
            tally.example(schedule)
            try:
                run.play(schedule)
                run.heal_and_check()
            finally:
                run.recover()

        one()
    tally.report()
    print(f"  {time.monotonic() - started:.0f} s, {len(run.receipts)} dossiers acknowledged and checked")


def test_schedules_against_boxes_and_a_city_served_as_processes(tmp_path):
    """Both communes' boxes are ``motcua edge serve`` processes with their sync loops on; a
    clock jump restarts one with its wall clock off, a power cut is SIGKILL."""
    tally = Tally("boxes served as processes")
    started = time.monotonic()
    with shared_world(tmp_path) as world:
        run = ServedRun(world, tally)
        world.close_nodes()
        run.serve_all()
        try:

            @settings(max_examples=40 if soak() else 2, database=None, phases=NO_SHRINKING)
            @given(schedules(3, 16 if soak() else 8))
            # Always: a box whose battery died boots while its link is down; one clerk confirms the
            # date, one does not.
            @example(
                [
                    Fault(1, "down", 0),
                    RestartBox(1, True, "-26y"),
                    Write(1, 2, True, True, True),
                    Write(1, 1, False, False, False),
                    Fault(1, "reorder", 2),
                ]
            )
            def one(schedule: list[Step]) -> None:
                note(f"schedule: {schedule!r}")
                tally.example(schedule)
                try:
                    run.play(schedule)
                    run.heal_and_check()
                finally:
                    run.recover()

            one()
        finally:
            run.stop_all()
    tally.report()
    print(f"  {time.monotonic() - started:.0f} s, {len(run.receipts)} dossiers acknowledged and checked")


RESTAMPED_OPS = "ops re-stamped (all examples)"


class AheadRun(Run):
    """Boxes that boot with their clock ahead while their link is down (decision 0008): what
    the clerks receive there must reach the city once the link returns."""

    def __init__(self, world: World, tally: Tally) -> None:
        super().__init__(world, tally)
        self.offline: set[str] = set()

    def play(self, schedule: list[Step]) -> None:
        for step in schedule:
            if isinstance(step, BootAheadOffline):
                unit = UNITS[step.unit]
                self.world.edges[unit].proxy.set(down=True)
                self.offline.add(unit)
                self.reopen(unit, step.clock)
            else:
                if isinstance(step, Round | Fault) and UNITS[step.unit] in self.offline:
                    self.offline.discard(UNITS[step.unit])
                    self.world.edges[UNITS[step.unit]].proxy.heal()  # the link returns
                super().play([step])

    def round(self, unit: str, timeout: float = ROUND_TIMEOUT_S) -> None:
        super().round(unit, timeout)
        node = self.node(unit)
        me = node.identity.node
        if node.replica.peer_vector("central")[me] == node.replica.vector()[me]:
            return
        # Whatever the link did this round, the city must not be refusing the box's clock.
        for record in attempts.records(node.replica.conn)[-1:]:
            assert record.attempt.error != CLOCKS_APART, f"box {unit}: the city refuses its clock"

    def heal_and_check(self) -> None:
        self.offline.clear()
        super().heal_and_check()
        self.tally.outcomes[RESTAMPED_OPS] = sum(
            len(r.attempt.restamped)
            for unit in UNITS
            for r in attempts.records(self.node(unit).replica.conn)
            if r.attempt.channel == RESTAMP_CHANNEL
        )

    def check_due_date(self, receipt: Receipt, state: dict[str, object]) -> None:
        if not receipt.suspect and not receipt.informed:
            # A clock a few hours ahead, offline: nothing at the box can tell (no jump past its
            # last sign of life, no city); its date is the box's best knowledge. Decision 0008.
            self.checked.add(receipt.id)
            return
        super().check_due_date(receipt, state)


def test_boxes_booted_ahead_while_offline_reach_the_city(tmp_path):
    """Clocks hours, days and years ahead at boot, the link down; clerks receive and accept;
    the link returns, maybe faulty. Every acknowledged dossier reaches the city, both sides
    converge, and the city never refuses a box's clock once it has heard from it."""
    tally = Tally("booted ahead, offline")
    with shared_world(tmp_path) as world:
        run = AheadRun(world, tally)

        @settings(max_examples=40 if soak() else 2, database=None, phases=NO_SHRINKING)
        @given(ahead_schedules(2, 14 if soak() else 6))
        @example([BootAheadOffline(0, "+3h"), Write(0, 2, True, True, False), Round(0)])
        @example(
            [
                BootAheadOffline(1, "+3d"),
                Write(1, 2, False, True, True),
                Fault(1, "cut_up", 900),
                Write(1, 1, True, False, True),
                Round(1),
            ]
        )
        @example(
            [
                BootAheadOffline(0, "+2y"),
                Write(0, 1, False, True, True),
                BootAheadOffline(0, "+3d"),
                Write(0, 1, True, True, True),
                Round(0),
                Round(1),
            ]
        )
        def one(schedule: list[Step]) -> None:
            note(f"schedule: {schedule!r}")
            tally.example(schedule)
            try:
                run.play(schedule)
                run.heal_and_check()
            finally:
                run.recover()

        one()
    tally.report()
    assert tally.outcomes[RESTAMPED_OPS] > 0, "no schedule made a box re-stamp"


# --- what the schedules do not draw, and why ------------------------------------------------------


def booted_ahead_and_offline(world: World) -> tuple[Run, Node, Received]:
    """A box whose clock reads 3 days ahead when it starts, the link down; a clerk receives."""
    world.settle()
    run = Run(world, Tally("booted ahead"))
    world.edges[NINH_KIEU].proxy.set(down=True)
    node = run.reopen(NINH_KIEU, "+3d")
    status = clockcheck.for_node(node, world.settings(NINH_KIEU).clock_skew_warn_s * 1000)
    data = Draft(
        procedure=HOUSEHOLD_BUSINESS,
        applicant_name="Đỗ Văn Minh",
        citizen_id="092085001234",
        dob=date(1985, 3, 14),
        phone="0912345678",
        address="12 Mậu Thân",
        confirm_clock=True,
    )
    with pytest.raises(InvalidInput) as refused:
        receive(node, clerk(NINH_KIEU), msgspec.structs.replace(data, confirm_clock=False), [], status)
    assert refused.value.field == "confirm_clock"
    return run, node, receive(node, clerk(NINH_KIEU), data, [], status)


def test_a_box_booted_ahead_and_offline_asks_the_clerk_to_check_the_date(world):
    """The box cannot tell a clock set ahead from a long holiday with the power off, so a clock
    that reads days past the box's last sign of life is suspect until the city's time confirms
    it: the clerk is told why and confirms, and the record says so."""
    _, node, made = booted_ahead_and_offline(world)
    assert made.clock_warning is not None
    assert "3" in made.clock_warning
    assert node.replica.state("dossier", made.id)["clock_confirmed"]
    world.edges[NINH_KIEU].proxy.heal()
    assert world.round(NINH_KIEU).error != UNEXPECTED
    assert not clockcheck.for_node(node, 300_000).suspect, "the city's time did not clear the doubt"


def test_a_box_booted_ahead_and_offline_writes_what_the_city_refuses(world):
    """When the link returns, what the clerks received on the box reaches the city: the city's
    signed time shows the box's unacknowledged ops are stamped three days ahead, so the box
    re-stamps them (decision 0008), says so in its transmission record, and sends them."""
    _, node, made = booted_ahead_and_offline(world)
    me = node.identity.node
    written = node.replica.op(me, node.replica.vector()[me])
    assert written is not None
    world.edges[NINH_KIEU].proxy.heal()
    result = world.round(NINH_KIEU)
    assert result.ok, result.summary()
    delivered = node.replica.peer_vector("central")[me] == node.replica.vector()[me]
    assert delivered, f"the dossier never reached the city: {result.summary()}"
    now = system_wall_ms()
    assert node.clock.last.wall < now + 60_000, "the box's clock still issues stamps days ahead"
    (corrected,) = [r for r in attempts.records(node.replica.conn) if r.attempt.channel == RESTAMP_CHANNEL]
    assert made.id in corrected.attempt.entities
    assert corrected.attempt.error == RESTAMPED
    changes = {seq: (was, after) for seq, was, after in corrected.attempt.restamped}
    assert changes[written.seq][0] == written.stamp
    assert attempts.verify_chain(attempts.records(node.replica.conn), node.identity.public_raw) > 0
    assert world.central is not None
    world.central.stop()  # one writer per node: the city's file is opened here only once it stopped
    with world.city.opened() as city:
        state = city.node.replica.state("dossier", made.id)
    assert state is not None
    # The timeline says when it happened; what the citizen's receipt says stays as printed,
    # with the clerk's confirmation of the date on the record.
    assert abs(state["steps"][0]["at"] - now) < 600_000
    assert state["received_at"] > now + 2 * 86_400_000
    assert state["clock_confirmed"]
