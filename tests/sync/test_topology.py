"""Convergence in the topology production runs: one hub, four commune boxes following its feed.

A differential state machine over real SQLite files and the real domain kinds. The hub is the
city's own request handlers (:class:`topology.CityHub` over :class:`central.hub.Hub`: the
write-scope check and the signed acknowledgement on push, the feed slice and certificates on
pull); each box is a partial replica of its ward with its feed cursor. Rules: clerks' writes at
each box (receive, edit, status moves, transfers to another ward, a password change), two boxes
moving the same dossier while neither knows of the other's move, writes authored at the hub (an
account for a ward, reference data, a city admin's action on a dossier), pushes and pulls of any
box at any time over a link that loses, duplicates and reorders, a pull split in two (the hub
answers, other boxes push and the hub writes, then the answer lands and the cursor is kept),
restarts of any replica from its file, clock jumps.

Checked at every step: the hub holds every op it acknowledged, a box keeps every write it made,
no cursor a box keeps has passed an op of its scope the box does not hold, no push of a box's
ops in order is refused. After a full exchange: every box's scope digest is the hub's, each box
holds exactly the ops of its scope (each once), and every replica that holds an entity has the
same folded state, conflicts and projection row, each equal to a fold from scratch.

Size: ``MOTCUA_SOAK=1`` (``make soak``) runs many more and longer examples.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from topology import (
    BOXLESS,
    CITY,
    MAX_DRIFT_MS,
    START_MS,
    UNITS,
    Box,
    Change,
    CityHub,
    FakeWall,
    HubDriver,
    Ident,
    correct,
    dossier_row,
    pending,
    pull_all,
    receipt,
    say_hello,
    scratch_dir,
    template,
)

from schema import KINDS, PILOT_PROCEDURES, next_statuses
from schema.status import Status
from sync import correction as fix
from sync import ops as opcodec
from sync.batch import decode_batch, encode_batch
from sync.errors import ClockDriftError, SupersededBody
from sync.fold import Registry, Rejected, fold
from sync.identity import Identity
from sync.wire import PullReply, ScopeViolation, check_ack

SOAK = os.environ.get("MOTCUA_SOAK") == "1"
N = len(UNITS)
BOX = st.integers(0, N - 1)
YEAR_MS = 365 * 24 * 3600 * 1000
REGISTRY = Registry(KINDS)
WARDS = (*UNITS, BOXLESS)
NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thu Dung")
ROLES = ("clerk", "leader")


def deliveries(count: int) -> st.SearchStrategy[list[int]]:
    """Which of ``count`` messages arrive, in which order: all in order (most often), or a lossy,
    duplicating, reordering link."""
    perfect = st.just(list(range(count)))
    if not count:
        return perfect
    bad = st.lists(st.integers(0, count - 1), min_size=1, max_size=count + 2)
    return st.one_of(perfect, perfect, bad)


class Topology(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        made = template()
        self.dir = scratch_dir("motcua-topo-")
        shutil.copytree(made.directory, self.dir, dirs_exist_ok=True)
        self.true_ms = START_MS + 3_600_000
        self.skew = [0] * N
        self.hub_skew = 0
        self.walls = [FakeWall(self.true_ms) for _ in range(N)]
        self.hub_wall = FakeWall(self.true_ms)
        self.hub: HubDriver = CityHub(self.dir / "city", self.hub_wall)
        self.boxes = [
            Box(
                self.dir / f"{unit}.db",
                Identity.from_private_bytes(unit, made.keys[unit]),
                unit,
                self.walls[i],
            )
            for i, unit in enumerate(UNITS)
        ]
        self.acked = [box.head() for box in self.boxes]
        """The highest of each box's seqs the hub has acknowledged (the box received the ack)."""
        self.written: list[list[Ident]] = [
            [(box.node, seq) for seq in range(1, box.head() + 1)] for box in self.boxes
        ]
        """Every write a box's clerk made (the box answered it)."""
        self.hub_written = self.hub.have(self.hub.node)
        self.in_flight: list[PullReply | None] = [None] * N
        self.withheld: list[bytes | None] = [None] * N
        """A push of each box held up on the link, to land later."""
        self.known = list(self.acked)
        """What each box last heard the hub holds of its ops (a hello's answer, an ack)."""
        self.received = [0] * N
        self.hub_changes = [0] * N
        """Changes that reached the hub since each box's pull in flight was answered."""

    def _hub_changed(self) -> None:
        self.hub_changes = [n + 1 for n in self.hub_changes]

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:  # every run that got this far ends converged, checked
                self.full_exchange()
        finally:
            for box in self.boxes:
                box.close()
            self.hub.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- time ------------------------------------------------------------------------------

    def _tick(self, ms: int) -> None:
        self.true_ms += ms
        for i, wall in enumerate(self.walls):
            wall.ms = self.true_ms + self.skew[i]
        self.hub_wall.ms = self.true_ms + self.hub_skew

    def _calibrate(self, i: int) -> int:
        """What a sync round starts with: the box adopts the city's (signed) time; how far that
        moved its clock."""
        clock = self.boxes[i].replica.clock
        before = clock.offset_ms
        return clock.calibrate(self.hub.now_ms()) - before

    def _hello(self, i: int, correction: int | None) -> int:
        """A round's hello, as the sync client does it: after a calibration, the bodies of the
        box's ops stamped beyond the allowed drift of the city's time (or given up in a hello
        whose answer was lost) are given up in the hello, then the ops the hub lacks among them
        are re-stamped (decision 0008, sync.correction). A push held up on the link with the old
        bodies lands before the hello (kept on both sides) or is refused after it. Returns the
        hub's head of the box's ops."""
        box = self.boxes[i]
        now = box.replica.clock.wall_ms()
        given = [] if correction is None else fix.to_give_up(box.replica, self.known[i], now)
        reply = self.hub.hello(box.caller, given)
        self.known[i] = reply.have
        if given:
            event("a box gave up bodies stamped ahead")
        if fix.apply(box.replica, given, reply.have, reply.given_up, now, shift_ms=-(correction or 0)):
            event("a box re-stamped its tail stamped ahead")
        return reply.have

    @rule(ms=st.integers(0, 120_000))
    def time_passes(self, ms: int) -> None:
        self._tick(ms)

    @rule(
        i=BOX,
        jump=st.integers(-20 * YEAR_MS, -1)
        | st.integers(-5_000, 90_000)
        | st.integers(MAX_DRIFT_MS, 2 * MAX_DRIFT_MS)
        | st.sampled_from([2 * 3_600_000, 3 * 86_400_000, 2 * YEAR_MS]),
    )
    def box_clock_jumps(self, i: int, jump: int) -> None:
        """Back as far as a dead CMOS battery takes it, ahead by seconds, hours, days or years
        (the box re-stamps what it wrote ahead at its next calibrated round)."""
        self.skew[i] += jump
        self._tick(0)

    @rule(ms=st.integers(-5_000, MAX_DRIFT_MS // 2))
    def hub_clock_jumps(self, ms: int) -> None:
        self.hub_skew = max(-5_000, min(self.hub_skew + ms, MAX_DRIFT_MS // 2))
        self._tick(0)

    # --- clerks at the boxes ------------------------------------------------------------------

    def _write(self, i: int, changes: list[Change], ms: int) -> bool:
        """A clerk's write at box ``i``; False if the box refused it (then nothing changed)."""
        self._tick(ms)
        box = self.boxes[i]
        head = box.head()
        try:
            with box.replica.write() as w:
                made = [w.append(c.kind, c.entity, c.action, c.payload) for c in changes]
        except Rejected:
            assert box.head() == head
            return False
        assert [op.seq for op in made] == list(range(head + 1, head + 1 + len(made)))
        self.written[i].extend(op.ident for op in made)
        return True

    def _held_dossiers(self, replica_states: dict) -> list[str]:
        return sorted(entity for (_, entity), state in replica_states.items() if state.get("_created"))

    def _pick_dossier(self, i: int, data: st.DataObject) -> str | None:
        held = self._held_dossiers(self.boxes[i].replica.states("dossier"))
        return data.draw(st.sampled_from(held)) if held else None

    @rule(i=BOX, handler=st.sampled_from(WARDS) | st.none(), ms=st.integers(0, 2_000), data=st.data())
    def receive(self, i: int, handler: str | None, ms: int, data: st.DataObject) -> None:
        """A clerk receives a dossier; for another ward (non-territorial) now and then."""
        unit = UNITS[i]
        self.received[i] += 1
        entity = f"{unit}-{self.received[i]}"
        procedure = data.draw(st.sampled_from([p.code for p in PILOT_PROCEDURES]))
        payload = receipt(
            unit,
            self.received[i],
            handler or unit,
            self.walls[i].ms,
            procedure,
            data.draw(st.sampled_from(NAMES)),
        )
        assert self._write(i, [Change("dossier", entity, "create", payload)], ms)

    @rule(i=BOX, ms=st.integers(0, 2_000), data=st.data())
    def edit(self, i: int, ms: int, data: st.DataObject) -> None:
        """Concurrent edits of one dossier at several boxes race here."""
        entity = self._pick_dossier(i, data)
        if entity is None:
            return
        fields = data.draw(
            st.fixed_dictionaries(
                {"applicant_phone": st.sampled_from(["0901234567", "0912345678"])},
                optional={
                    "fee": st.integers(0, 3).map(lambda n: n * 50_000),
                    "applicant_name": st.sampled_from(NAMES),
                },
            )
        )
        self._write(i, [Change("dossier", entity, "set", fields)], ms)

    def _move(self, state: dict, role: str, data: st.DataObject) -> int:
        """Mostly a move valid on ``state``, now and then any status (then the box refuses it)."""
        valid = next_statuses(Status(state["status"]), role) if state.get("_created") else []
        if valid and data.draw(st.integers(0, 5)):
            return int(data.draw(st.sampled_from(valid)))
        return int(data.draw(st.sampled_from(list(Status))))

    @rule(i=BOX, role=st.sampled_from(ROLES), ms=st.integers(0, 2_000), data=st.data())
    def move(self, i: int, role: str, ms: int, data: st.DataObject) -> None:
        entity = self._pick_dossier(i, data)
        if entity is None:
            return
        to = self._move(self.boxes[i].replica.state("dossier", entity) or {}, role, data)
        payload = {"to": to, "by": f"canbo_{UNITS[i]}", "role": role}
        self._write(i, [Change("dossier", entity, "transition", payload)], ms)

    @rule(i=BOX, to=st.sampled_from(WARDS), ms=st.integers(0, 2_000), data=st.data())
    def transfer(self, i: int, to: str, ms: int, data: st.DataObject) -> None:
        """The dossier's scope grows: the new ward's box gets its whole history."""
        entity = self._pick_dossier(i, data)
        if entity is None:
            return
        payload = {"handling_unit": to, "by": f"canbo_{UNITS[i]}", "role": "clerk"}
        self._write(i, [Change("dossier", entity, "transfer", payload)], ms)

    @rule(role=st.sampled_from(ROLES), data=st.data())
    def two_boxes_move_one_dossier(self, role: str, data: st.DataObject) -> None:
        """Two boxes that hold the same dossier each move it, neither knowing of the other's move:
        the later move in HLC order ends a conflict, at every replica alike."""
        holders: dict[str, list[int]] = {}
        for i, box in enumerate(self.boxes):
            for entity in self._held_dossiers(box.replica.states("dossier")):
                holders.setdefault(entity, []).append(i)
        shared = sorted(entity for entity, boxes in holders.items() if len(boxes) > 1)
        if not shared:
            return
        entity = data.draw(st.sampled_from(shared))
        pair = data.draw(st.permutations(holders[entity]))[:2]
        for i in pair:
            to = self._move(self.boxes[i].replica.state("dossier", entity) or {}, role, data)
            payload = {"to": to, "by": f"canbo_{UNITS[i]}", "role": role}
            self._write(i, [Change("dossier", entity, "transition", payload)], 1)

    @rule(i=BOX, data=st.data())
    def change_password(self, i: int, data: st.DataObject) -> None:
        accounts = sorted(e for (_, e), s in self.boxes[i].replica.states("account").items() if s.get("unit"))
        if not accounts:
            return
        entity = data.draw(st.sampled_from(accounts))
        hashed = data.draw(st.sampled_from(["$argon2id$v=19$new1", "$argon2id$v=19$new2"]))
        assert self._write(i, [Change("account", entity, "set", {"password_hash": hashed})], 500)

    # --- the city authors ---------------------------------------------------------------------

    def _hub_write(self, changes: list[Change]) -> None:
        self._tick(1_000)
        head = self.hub.have(self.hub.node)
        try:
            made = self.hub.write(changes)
        except Rejected:
            assert self.hub.have(self.hub.node) == head
            return
        assert [op.seq for op in made] == list(range(head + 1, head + 1 + len(made)))
        self.hub_written = made[-1].seq
        self._hub_changed()

    @rule(unit=st.sampled_from((*UNITS, CITY)), n=st.integers(0, 2), data=st.data())
    def city_writes_an_account(self, unit: str, n: int, data: st.DataObject) -> None:
        entity = f"canbo{n}_{unit}"
        if self.hub.state("account", entity) is None:
            payload = {
                "username": entity,
                "full_name": data.draw(st.sampled_from(NAMES)),
                "unit": unit,
                "role": data.draw(st.sampled_from(ROLES)),
                "password_hash": "$argon2id$v=19$first",
            }
            self._hub_write([Change("account", entity, "create", payload)])
        else:
            change = data.draw(st.sampled_from([{"active": False}, {"active": True}, {"role": "leader"}]))
            self._hub_write([Change("account", entity, "set", change)])

    @rule(
        unit=st.sampled_from(WARDS),
        procedure=st.sampled_from([p.code for p in PILOT_PROCEDURES]),
        n=st.integers(0, 9),
    )
    def city_edits_reference_data(self, unit: str, procedure: str, n: int) -> None:
        self._hub_write(
            [
                Change("unit", unit, "upsert", {"name": f"Phường {unit} ({n})"}),
                Change("procedure", procedure, "upsert", {"fee": n * 10_000}),
            ]
        )

    @rule(data=st.data())
    def city_admin_acts_on_a_dossier(self, data: st.DataObject) -> None:
        held = sorted(e for _, e in self.hub_dossiers())
        if not held:
            return
        entity = data.draw(st.sampled_from(held))
        state = self.hub.state("dossier", entity) or {}
        actor = {"by": "quantri", "role": "admin"}
        action = data.draw(st.sampled_from(["transition", "transfer", "set"]))
        if action == "transition":
            change = Change("dossier", entity, action, {"to": self._move(state, "admin", data), **actor})
        elif action == "transfer":
            change = Change(
                "dossier", entity, action, {"handling_unit": data.draw(st.sampled_from(WARDS)), **actor}
            )
        else:
            change = Change("dossier", entity, action, {"portal_code": f"G22.{data.draw(st.integers(0, 9))}"})
        self._hub_write([change])

    def hub_dossiers(self) -> set[tuple[str, str]]:
        return {key for key in self.hub.entities([*WARDS, CITY]) if key[0] == "dossier"}

    # --- the link ---------------------------------------------------------------------------

    @rule(max_bytes=st.sampled_from([200, 1_000, 1 << 20]), calibrate=st.booleans(), data=st.data())
    def push_a_box_with_writes(self, max_bytes: int, calibrate: bool, data: st.DataObject) -> None:
        waiting = [i for i, box in enumerate(self.boxes) if box.head() > self.hub.have(box.node)]
        if waiting:
            self.push(data.draw(st.sampled_from(waiting)), max_bytes, calibrate, data)

    @rule(i=BOX, max_bytes=st.sampled_from([200, 1_000, 1 << 20]), calibrate=st.booleans(), data=st.data())
    def push(self, i: int, max_bytes: int, calibrate: bool, data: st.DataObject) -> None:
        """A round's push: calibration (or not), the hello, a re-stamp if due, the batches over
        a bad link; now and then one batch is held up on the link and lands later."""
        box = self.boxes[i]
        have = self._hello(i, self._calibrate(i) if calibrate else None)
        bodies = [
            encode_batch(batch)
            for batch in box.replica.batches({box.node: have}, nodes=[box.node], max_bytes=max_bytes)
        ]
        for k in data.draw(deliveries(len(bodies))):
            if self.withheld[i] is None and not data.draw(st.integers(0, 7)):
                self.withheld[i] = bodies[k]
                continue
            self._deliver(i, bodies[k], ack_lost=not data.draw(st.integers(0, 4)))

    @precondition(lambda self: any(body is not None for body in self.withheld))
    @rule(data=st.data())
    def withheld_push_lands(self, data: st.DataObject) -> None:
        self._withheld_lands(
            data.draw(st.sampled_from([i for i, b in enumerate(self.withheld) if b is not None]))
        )

    @rule(
        i=BOX,
        ahead=st.integers(MAX_DRIFT_MS // 2, 2 * MAX_DRIFT_MS),
        ms=st.integers(0, 2 * MAX_DRIFT_MS),
        data=st.data(),
    )
    def a_push_is_held_up_across_the_next_round(
        self, i: int, ahead: int, ms: int, data: st.DataObject
    ) -> None:
        """A box runs minutes fast; a clerk writes; its push is held up on the link. The box's
        next round corrects its clock and gives up (and re-stamps) what is beyond the allowed
        drift; then the held-up push lands, at once or once the hub's time has caught up with
        its stamps (decision 0008: refused after the hello, whatever the hub's clocks say)."""
        self.skew[i] += ahead
        self._tick(0)
        self.receive(i, None, 0, data)
        box = self.boxes[i]
        bodies = [
            encode_batch(batch)
            for batch in box.replica.batches({box.node: self.hub.have(box.node)}, nodes=[box.node])
        ]
        self._hello(i, self._calibrate(i))
        self._tick(ms)
        for body in bodies:
            event("a push held up on the link landed late")
            self._deliver(i, body, ack_lost=True)

    def _withheld_lands(self, i: int) -> None:
        body, self.withheld[i] = self.withheld[i], None
        assert body is not None
        event("a push held up on the link landed late")
        self._deliver(i, body, ack_lost=True)  # its sender stopped waiting long ago

    def _deliver(self, i: int, body: bytes, *, ack_lost: bool) -> None:
        """One push reaches the hub: applied and acknowledged, or refused for a reason the
        machine expects, with nothing applied."""
        box = self.boxes[i]
        before = self.hub.have(box.node)
        ops = [opcodec.decode(b) for run in decode_batch(body).runs for b in run.ops]
        try:
            ack = self.hub.push(box.caller, body)
        except ClockDriftError as exc:
            assert exc.drift_ms > MAX_DRIFT_MS  # noqa: PT017 (a refusal the machine expects)
            assert self.hub.have(box.node) == before
            event("push refused: the box's clock ahead")
            return
        except ScopeViolation:
            event("push refused: a batch after a gap")
            # Only a batch that overtook an earlier one the hub lacks (a gap) may be refused.
            first = min(op.seq for op in ops)
            assert first > before + 1, f"the city refused box {i}'s batch from #{first} in order"
            assert self.hub.have(box.node) == before
            return
        except SupersededBody:
            # Only bodies the box gave up (and re-stamped, or will at its next hello).
            event("push refused: bodies the box gave up before re-stamping")
            assert any(box.replica.op(op.node, op.seq) != op for op in ops) or fix.pending_from(box.replica)
            assert self.hub.have(box.node) == before
            return
        check_ack(ack, self.hub.public_key)
        self._hub_changed()
        assert ack.node == box.node
        assert ack.have == self.hub.have(box.node) >= before
        if not ack_lost:
            self.acked[i] = max(self.acked[i], ack.have)
            self.known[i] = ack.have

    @rule(i=BOX, max_ops=st.integers(1, 3), calibrate=st.booleans())
    def pull_asks(self, i: int, max_ops: int, calibrate: bool) -> None:
        """The hub answers a pull; the answer lands later (pull_lands), other rules between."""
        if calibrate:
            self._calibrate(i)
        box = self.boxes[i]
        self.in_flight[i] = self.hub.pull(box.caller, box.cursor, max_ops)
        self.hub_changes[i] = 0

    @precondition(lambda self: any(self.in_flight))
    @rule(data=st.data())
    def pull_lands(self, data: st.DataObject) -> None:
        i = data.draw(st.sampled_from([i for i, reply in enumerate(self.in_flight) if reply is not None]))
        reply, self.in_flight[i] = self.in_flight[i], None
        assert reply is not None
        self._land(i, reply, data.draw(deliveries(len(reply.batches))))

    def _land(self, i: int, reply: PullReply, plan: list[int]) -> None:
        """The hub's answer reaches box ``i``: the batches of ``plan`` merged in its order; the
        cursor kept only if every batch was (the sync client's rule)."""
        box = self.boxes[i]
        box.trust(reply.certs, self.hub.public_key)
        whole = set(plan) == set(range(len(reply.batches)))
        for k in plan:
            try:
                box.replica.merge(reply.batches[k])
            except ClockDriftError as exc:
                # The box's clock went back after the round calibrated it: refused, retried later.
                assert exc.drift_ms > MAX_DRIFT_MS  # noqa: PT017
                whole = False
                break
        if whole:
            if self.hub_changes[i]:
                event("a pull landed after other changes reached the hub")
            box.save_cursor(reply.cursor)
            self._check_cursor(i)

    @rule(i=BOX, max_ops=st.integers(1, 3), city_writes=st.booleans(), data=st.data())
    def others_push_while_a_pull_is_in_flight(
        self, i: int, max_ops: int, city_writes: bool, data: st.DataObject
    ) -> None:
        """The hub answers box i's pull; another box's push (and a write of the city) reach the
        hub before the answer reaches box i, which then keeps the answer's cursor."""
        self._calibrate(i)
        box = self.boxes[i]
        reply = self.hub.pull(box.caller, box.cursor, max_ops)
        self.hub_changes[i] = 0
        waiting = [
            j for j, other in enumerate(self.boxes) if j != i and other.head() > self.hub.have(other.node)
        ]
        if waiting:
            self.push(data.draw(st.sampled_from(waiting)), 1 << 20, True, data)
        if city_writes:
            unit = data.draw(st.sampled_from(WARDS))
            self._hub_write([Change("unit", unit, "upsert", {"name": f"Phường {unit} (mới)"})])
        self._land(i, reply, list(range(len(reply.batches))))

    @rule(i=BOX, max_ops=st.integers(1, 3))
    def pull_round(self, i: int, max_ops: int) -> None:
        self._calibrate(i)
        pull_all(self.hub, self.boxes[i], max_ops)
        self._check_cursor(i)

    def _check_cursor(self, i: int) -> None:
        box = self.boxes[i]
        missing = self.hub.owed(box.keys, box.cursor, box.node) - box.held()
        assert not missing, f"box {i}'s cursor {box.cursor} passed ops it never received: {sorted(missing)}"

    @rule(i=BOX)
    def box_forgets_its_cursor(self, i: int) -> None:
        """What the sync client does when the scope digests differ: pull the whole scope again
        from 0 (every op a duplicate now; the hub walks the scope instead of the feed)."""
        self.boxes[i].save_cursor(0)

    # --- restarts ---------------------------------------------------------------------------

    @rule(i=BOX)
    def box_restarts(self, i: int) -> None:
        box = self.boxes[i]
        before = (box.replica.digest(), box.replica.state_digest(), box.cursor)
        box.restart()
        assert (box.replica.digest(), box.replica.state_digest(), box.cursor) == before

    @rule()
    def hub_restarts(self) -> None:
        self.hub.restart()

    # --- the full exchange -------------------------------------------------------------------

    @rule()
    def full_exchange(self) -> None:
        self.hub_skew = 0  # the city's clock is set right
        self._tick(4 * MAX_DRIFT_MS)
        self.withheld = [None] * N  # what was held up on the link is lost
        for _ in range(3):
            moved = 0
            for i, box in enumerate(self.boxes):
                have = self._hello(i, self._calibrate(i))
                for batch in list(box.replica.batches({box.node: have}, nodes=[box.node])):
                    ack = self.hub.push(box.caller, encode_batch(batch))
                    self.acked[i] = max(self.acked[i], ack.have)
                    self.known[i] = ack.have
                    moved += 1
            for box in self.boxes:
                moved += pull_all(self.hub, box, max_ops=50)
            if not moved:
                break
        assert not moved, "no quiescence"
        conflicts = sum(len(self.hub.conflicts("dossier", e)) for _, e in self.hub_dossiers())
        event(f"dossier conflicts after a full exchange: {min(conflicts, 3)}{'+' if conflicts >= 3 else ''}")
        routed = sum(
            1
            for box in self.boxes
            for key in self.hub.entities(box.keys)
            if key[0] == "dossier" and (self.hub.state(*key) or {}).get("receiving_unit") != box.unit
        )
        event(
            f"dossiers held by a box that did not receive them: {min(routed, 3)}{'+' if routed >= 3 else ''}"
        )
        for i, box in enumerate(self.boxes):
            assert self.hub.have(box.node) == box.head() == len(self.written[i])
            self._check_cursor(i)
            self._check_scope(i)

    def _check_scope(self, i: int) -> None:
        box = self.boxes[i]
        assert box.replica.scope_digest(box.keys) == self.hub.digest(box.caller)
        entities = self.hub.entities(box.keys)
        assert set(box.replica.states()) == entities
        every: list[Ident] = []
        for kind, entity in sorted(entities):
            ops = box.replica.ops_of(kind, entity)
            idents = [op.ident for op in ops]
            assert len(set(idents)) == len(idents), f"{kind} {entity} holds an op twice at box {i}"
            assert ops == self.hub.ops_of(kind, entity)  # the same ops, stamps included
            every.extend(idents)
            state = box.replica.state(kind, entity)
            assert state == self.hub.state(kind, entity)
            assert state is not None
            scratch, conflicts = fold(REGISTRY[kind], ops)
            assert {k: v for k, v in state.items() if k != "_conflicts"} == scratch
            assert [[c.node, c.seq, c.action, c.reason] for c in conflicts] == state.get("_conflicts", [])
            assert box.replica.conflicts(kind, entity) == self.hub.conflicts(kind, entity)
            if kind == "dossier":
                assert dossier_row(box.replica, entity) == self.hub.dossier_row(entity)
        assert box.held() == set(every)  # nothing out of scope, nothing twice

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def the_hub_keeps_what_it_acknowledged(self) -> None:
        for i, box in enumerate(self.boxes):
            assert self.hub.have(box.node) >= self.acked[i]
        assert self.hub.have(self.hub.node) >= self.hub_written

    @invariant()
    def a_box_keeps_every_write_it_answered(self) -> None:
        for i, box in enumerate(self.boxes):
            assert box.head() == len(self.written[i])


Topology.TestCase.settings = settings(
    max_examples=200 if SOAK else 16,
    stateful_step_count=120 if SOAK else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_topology = pytest.mark.slow(Topology.TestCase)


def test_a_push_held_up_on_the_link_lands_after_its_ops_were_restamped(tmp_path):
    """A box 15 minutes fast pushes an op; the request is held up on the link. The city's HLC runs
    9 minutes ahead of its wall (another box, fast within the tolerance, pushed). At the box's
    next round the city's time corrects its clock and the box gives up the op's body in its
    hello (decision 0008): the city, which lacks the op, records it as given up, and the box
    re-stamps. The held-up request then lands: its old body is 15 minutes ahead of the city's
    wall, yet within 10 minutes of its HLC, and before the fix the city took it, leaving two
    bodies of one op for good. Now it is refused as superseded, and the corrected op is the one
    the city, the box and every other box hold."""
    made = template()
    shutil.copytree(made.directory, tmp_path, dirs_exist_ok=True)
    now = START_MS + 3_600_000
    walls = [FakeWall(now) for _ in UNITS]
    hub = CityHub(tmp_path / "city", FakeWall(now))
    a, b = (
        Box(tmp_path / f"{unit}.db", Identity.from_private_bytes(unit, made.keys[unit]), unit, walls[i])
        for i, unit in enumerate(UNITS[:2])
    )
    try:
        walls[1].ms = now + 9 * 60_000
        with b.replica.write() as w:
            w.append("dossier", f"{b.unit}-0", "set", {"applicant_phone": "0901234567"})
        for body in pending(hub, b):
            hub.push(b.caller, body)
        walls[0].ms = now + 15 * 60_000
        with a.replica.write() as w:
            old = w.append("dossier", f"{a.unit}-0", "set", {"applicant_phone": "0912345678"})
        known = hub.have(a.node)
        held_up = pending(hub, a)

        hello = say_hello(hub, a, known)
        assert hello.reply.given_up
        assert [seq for seq, _ in hello.given] == [old.seq]
        for body in held_up:
            with pytest.raises(SupersededBody):
                hub.push(a.caller, body)  # lands now; its sender stopped waiting long ago
        assert hub.have(a.node) == known
        assert correct(a, hello) is not None
        for body in pending(hub, a):
            hub.push(a.caller, body)
        pull_all(hub, a)
        new = a.replica.op(a.node, a.head())
        assert new is not None
        assert new.stamp < old.stamp
        assert new == hub.op(a.node, a.head())
        assert a.replica.scope_digest(a.keys) == hub.digest(a.caller)
        for body in held_up:  # later still: refused again, nothing applied
            with pytest.raises(SupersededBody):
                hub.push(a.caller, body)
        assert hub.op(a.node, a.head()) == new
    finally:
        a.close()
        b.close()
        hub.close()
