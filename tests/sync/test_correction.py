"""A box's correction of ops stamped ahead, against requests held up on the link (sync/correction.py).

Each test is one interleaving of a push held up on the link with the box's next round, which
gives up the old bodies in its hello and then re-stamps what the city lacks (decision 0008).
The city is the city's own request handlers over a real SQLite replica (tests/sync/topology.py);
the held-up request is the bytes of the push as the box sent it. Whatever the order, the box
and the city end with one body of each op, every scope digest agrees, and nothing a clerk
wrote is lost; the tests that would have failed before the fix say so.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from topology import (
    START_MS,
    UNITS,
    Box,
    CityHub,
    FakeWall,
    correct,
    pending,
    pull_all,
    receipt,
    say_hello,
    template,
)

from sync import correction
from sync import ops as opcodec
from sync.batch import PROTOCOL, Batch, Run, encode_batch, seal_run
from sync.errors import ClockDriftError, EquivocationError, SupersededBody
from sync.identity import Identity
from sync.merkle import leaf_hash
from sync.ops import Op

AHEAD_MS = 15 * 60_000
"""How fast box A's clock runs: beyond the 10 minutes the city allows."""


@dataclass
class World:
    hub: CityHub
    a: Box
    b: Box
    walls: list[FakeWall]
    hub_wall: FakeWall
    now: int

    def tick(self, ms: int) -> None:
        self.now += ms
        self.hub_wall.ms = self.now
        for wall in self.walls:
            wall.ms += ms

    def write(self, box: Box, entity: str, action: str, payload: dict) -> Op:
        with box.replica.write() as w:
            return w.append("dossier", entity, action, payload)

    def push_all(self, box: Box) -> None:
        for body in pending(self.hub, box):
            self.hub.push(box.caller, body)

    def converged(self) -> None:
        for box in (self.a, self.b):
            self.push_all(box)
        for box in (self.a, self.b):
            pull_all(self.hub, box)
        for box in (self.a, self.b):
            assert self.hub.have(box.node) == box.head()
            assert box.replica.scope_digest(box.keys) == self.hub.digest(box.caller)
            for seq in range(1, box.head() + 1):
                assert box.replica.op(box.node, seq) == self.hub.op(box.node, seq)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = template()
    shutil.copytree(made.directory, tmp_path, dirs_exist_ok=True)
    now = START_MS + 3_600_000
    walls = [FakeWall(now) for _ in UNITS[:2]]
    hub_wall = FakeWall(now)
    hub = CityHub(tmp_path / "city", hub_wall)
    a, b = (
        Box(tmp_path / f"{unit}.db", Identity.from_private_bytes(unit, made.keys[unit]), unit, walls[i])
        for i, unit in enumerate(UNITS[:2])
    )
    try:
        yield World(hub, a, b, walls, hub_wall, now)
    finally:
        a.close()
        b.close()
        hub.close()


def fast_writes(world: World, count: int = 1, handler: str | None = None) -> tuple[list[Op], list[bytes]]:
    """Box A, its clock 15 minutes fast, receives a dossier and edits it (``count`` ops in all);
    the push that carries them is held up on the link. Returns the ops and the held-up bodies."""
    a = world.a
    world.walls[0].ms = world.now + AHEAD_MS
    entity = f"{a.unit}-9"
    ops = [world.write(a, entity, "create", receipt(a.unit, 9, handler or a.unit, world.walls[0].ms))]
    for n in range(count - 1):
        ops.append(world.write(a, entity, "set", {"applicant_phone": f"090123456{n}"}))
    return ops, pending(world.hub, a)


def land(world: World, bodies: list[bytes]) -> None:
    for body in bodies:
        world.hub.push(world.a.caller, body)


def test_held_up_push_lands_after_the_corrected_push_and_is_refused(world: World) -> None:
    a, hub = world.a, world.hub
    known = hub.have(a.node)
    old, held_up = fast_writes(world)
    done = correct(a, say_hello(hub, a, known))
    assert done is not None
    world.push_all(a)
    world.tick(AHEAD_MS)  # the city's wall has passed the old stamps: drift alone would take them
    with pytest.raises(SupersededBody):
        land(world, held_up)
    world.converged()
    assert hub.op(a.node, old[0].seq) == done.after[0] != old[0]


def test_held_up_push_that_lands_before_the_hello_is_kept_on_both_sides(world: World) -> None:
    """What the city took before the hello is acknowledged: the box keeps that body too."""
    a, hub = world.a, world.hub
    known = hub.have(a.node)
    old, held_up = fast_writes(world, count=2)
    world.tick(AHEAD_MS)  # it lands once the city's time has caught up with its stamps
    land(world, held_up)
    hello = say_hello(hub, a, known)
    assert hello.reply.have == a.head()
    assert correct(a, hello) is None
    world.converged()
    assert [a.replica.op(a.node, op.seq) for op in old] == old


def test_only_the_part_the_city_lacks_is_restamped_after_the_part_it_took(world: World) -> None:
    """The link took the first op alone (its batch held up, landing before the hello); the
    second is still ahead at the hello and is re-stamped, after the first."""
    a, b, hub = world.a, world.b, world.hub
    world.walls[1].ms = world.now + 9 * 60_000  # box B, fast within the tolerance, moves the city's HLC
    world.write(b, f"{b.unit}-9", "create", receipt(b.unit, 9, b.unit, world.walls[1].ms))
    world.push_all(b)
    known = hub.have(a.node)
    old, _ = fast_writes(world, count=2)
    first = next(a.replica.batches({a.node: known}, nodes=[a.node], max_bytes=1))
    assert [len(run.ops) for run in first.runs] == [1]
    hub.push(a.caller, encode_batch(first))  # 15 minutes ahead of the city's wall, 6 of its HLC
    hello = say_hello(hub, a, known)
    assert hello.reply.have == old[0].seq
    assert [seq for seq, _ in hello.given] == [op.seq for op in old]
    done = correct(a, hello)
    assert done is not None
    assert [op.seq for op in done.after] == [old[1].seq]
    assert old[0].stamp < done.after[0].stamp  # the edit stays after the dossier it edits
    assert done.after[0].stamp != old[1].stamp
    world.converged()
    assert a.replica.op(a.node, old[0].seq) == old[0]


def test_a_hello_whose_answer_was_lost_is_given_up_again_and_corrected_even_on_time(world: World) -> None:
    """The city recorded the given-up bodies but its answer never arrived. By the next round the
    city's time has passed the old stamps: nothing is ahead any more, yet the city refuses
    those bodies, so the box re-stamps them anyway (to a new stamp) and they go through."""
    a, hub = world.a, world.hub
    known = hub.have(a.node)
    old, held_up = fast_writes(world)
    say_hello(hub, a, known)  # recorded at the city; the answer is lost
    assert correction.pending_from(a.replica) == old[0].seq
    world.tick(2 * AHEAD_MS)
    with pytest.raises(SupersededBody):
        land(world, held_up)  # what a box that forgot the list would push: refused
    hello = say_hello(hub, a, known)
    assert [seq for seq, _ in hello.given] == [old[0].seq]
    done = correct(a, hello)
    assert done is not None
    assert done.after[0].stamp != old[0].stamp
    assert correction.pending_from(a.replica) is None
    world.converged()


def test_a_box_restored_from_before_its_hello_gives_its_bodies_up_again_once_refused(
    world: World,
) -> None:
    """The city recorded the given-up bodies; the box was then restored from a backup taken just
    before it kept their mark, and its clock is right by now: it pushes the old bodies, the city
    refuses them as superseded, and the next round gives them up again and re-stamps them."""
    a, hub = world.a, world.hub
    known = hub.have(a.node)
    old, held_up = fast_writes(world)
    say_hello(hub, a, known)
    a.replica.set_meta(correction.PENDING, "")  # what the restored box remembers
    world.tick(2 * AHEAD_MS)
    with pytest.raises(SupersededBody):
        land(world, held_up)
    correction.refused(a.replica, known + 1)  # what the sync client does with that refusal
    done = correct(a, say_hello(hub, a, known))
    assert done is not None
    assert [op.seq for op in done.before] == [op.seq for op in old]
    world.converged()


def test_a_box_that_pulled_the_old_body_keeps_it_and_everyone_converges(world: World) -> None:
    """The held-up push lands before the hello and box B, the dossier's handling unit, pulls the
    old body: the box that wrote it sees the city hold it and re-stamps nothing of it."""
    a, b, hub = world.a, world.b, world.hub
    known = hub.have(a.node)
    old, held_up = fast_writes(world, handler=b.unit)
    world.tick(AHEAD_MS)
    land(world, held_up)
    pull_all(hub, b)
    assert b.replica.op(a.node, old[0].seq) == old[0]
    assert correct(a, say_hello(hub, a, known)) is None
    world.converged()
    assert b.replica.op(a.node, old[0].seq) == a.replica.op(a.node, old[0].seq) == old[0]


def test_giving_up_refuses_no_body_the_city_holds_and_lets_no_other_body_in(world: World) -> None:
    """A hello that names a body the city holds records nothing (the body stays acknowledged,
    a duplicate of it is taken again); another body of a held op is still an equivocation."""
    a, hub = world.a, world.hub
    old, held_up = fast_writes(world)
    with pytest.raises(ClockDriftError):
        land(world, held_up)  # 15 minutes ahead of the city: refused
    world.tick(AHEAD_MS)
    land(world, held_up)
    assert hub.op(a.node, old[0].seq) == old[0]
    reply = hub.hello(a.caller, [(old[0].seq, leaf_hash(opcodec.encode(old[0])))])
    assert reply.have == old[0].seq
    land(world, held_up)  # the same body again: a duplicate, acknowledged, not refused
    first = old[0]
    earlier = Op(a.node, first.seq, first.stamp - 1, first.kind, first.entity, first.action, first.payload)
    with pytest.raises(EquivocationError):
        hub.push(a.caller, sealed(a, [earlier]))
    assert hub.op(a.node, old[0].seq) == old[0]
    world.converged()


def sealed(box: Box, ops: list[Op]) -> bytes:
    """Ops under a seal of the box's key (what a box that signs two bodies of one op sends)."""
    bodies = [opcodec.encode(op) for op in ops]
    seal = seal_run(box.node, ops[0].seq, bodies, box.identity.sign)
    return encode_batch(Batch(PROTOCOL, box.node, [Run(seal, bodies)]))
