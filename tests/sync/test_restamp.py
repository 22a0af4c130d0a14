"""Re-stamping a node's unacknowledged tail stamped in the future (sync/restamp.py, decision 0008).

A box whose clock ran days ahead wrote ops nobody accepts; once a trusted time says so it gives
them new stamps. What must hold afterwards: the log is dense, every seal verifies (at the box
and at a hub that holds a seal the correction split), the acknowledged prefix is byte for byte
what the hub holds, the hub accepts the rest and both converge, and the clock never issues a
stamp at or below an op it keeps.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from toydoc import FakeWall, batches_of, open_replica, trust_all, write

from sync import attempts, restamp
from sync.batch import seal_run, verify_run
from sync.clock import DEFAULT_MAX_DRIFT_MS, Stamp
from sync.errors import ClockDriftError
from sync.identity import Identity
from sync.ops import Op
from sync.replica import Replica

NOW_MS = 1_750_000_000_000
DAY_MS = 86_400_000


def push(src: Replica, hub: Replica, max_bytes: int) -> int:
    """Push ``src``'s own ops the hub lacks, batch by batch, until the hub refuses one (as a
    round does); return the hub's head of them."""
    me = src.identity.node
    for batch in batches_of(src, {me: hub.vector()[me]}, max_bytes=max_bytes):
        try:
            hub.merge(batch)
        except ClockDriftError:
            break
    return hub.vector()[me]


def bodies(r: Replica, node: str) -> dict[int, bytes]:
    node_id = r._ids[node]
    return dict(r.conn.execute("SELECT seq, body FROM sync_op WHERE node = ?", (node_id,)).fetchall())


def verify_everything(r: Replica, node: str, max_bytes: int, *, in_order: bool = True) -> None:
    """Every op of ``node`` held by ``r`` goes out in runs that verify against their seals,
    each seq exactly once (in seq order, unless seals nest)."""
    seen: list[int] = []
    for batch in r.batches({}, nodes=[node], max_bytes=max_bytes):
        for run in batch.runs:
            seen.extend(v.op.seq for v in verify_run(run, r._verify))
    assert (seen if in_order else sorted(seen)) == list(range(1, r.vector()[node] + 1))


def highest_stamp(r: Replica) -> int:
    return (
        max(
            msgspec.msgpack.decode(body, type=Op).stamp
            for (body,) in r.conn.execute("SELECT body FROM sync_op").fetchall()
        )
        if r.op_count()
        else 0
    )


class World:
    def __init__(self, root: Path) -> None:
        self.box_wall = FakeWall(NOW_MS)
        self.hub_wall = FakeWall(NOW_MS)
        self.box = open_replica(root / "box.db", Identity.generate("box"), self.box_wall)
        self.hub = open_replica(root / "hub.db", Identity.generate("hub"), self.hub_wall)
        self.third = open_replica(root / "third.db", Identity.generate("third"), FakeWall(NOW_MS))
        trust_all([self.box, self.hub, self.third])
        self.me = self.box.identity.node

    def close(self) -> None:
        for r in (self.box, self.hub, self.third):
            r.close()

    def restamp(self) -> restamp.Restamped | None:
        acked = self.hub.vector()[self.me]
        shift = self.box_wall.ms - self.hub_wall.ms
        return self.box.restamp_tail(acked, self.hub_wall.ms, shift_ms=shift)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def test_a_tail_stamped_days_ahead_is_restamped_and_the_hub_takes_it(world) -> None:
    box, hub = world.box, world.hub
    write(hub, "d1", "create", {"title": "from the city"})
    for batch in batches_of(hub):
        box.merge(batch)
    write(box, "d1", "set", {"note": "before"})
    acked = push(box, hub, 1 << 20)
    assert acked == 1
    world.box_wall.ms += 3 * DAY_MS  # the box reboots three days ahead, offline
    write(box, "d1", "set", {"note": "ahead"})
    write(box, "d2", "create", {"title": "new"})
    assert push(box, hub, 1 << 20) == 1, "the hub refuses stamps three days ahead"
    prefix = bodies(box, world.me)[1]

    done = world.restamp()

    assert done is not None
    assert (done.first, done.last) == (2, 3)
    assert [c[0] for c in done.changes] == [2, 3]
    assert all(after < before for _, before, after in done.changes)
    assert all(Stamp.unpack(a).wall <= world.hub_wall.ms for _, _, a in done.changes)
    assert bodies(box, world.me)[1] == prefix, "an acknowledged op changed"
    assert box.clock.last.pack() == highest_stamp(box)
    assert box.clock.last.wall < world.hub_wall.ms + DEFAULT_MAX_DRIFT_MS
    verify_everything(box, world.me, 1 << 20)
    assert push(box, hub, 1 << 20) == 3
    assert hub.digest() == box.digest()
    assert hub.state_digest() == box.state_digest()
    assert box.state("doc", "d1")["note"] == "ahead"
    # A second correction finds nothing to do.
    assert world.restamp() is None


def test_a_restamped_op_stays_after_the_other_nodes_ops_it_may_have_seen(world) -> None:
    box, hub = world.box, world.hub
    world.box_wall.ms += 3 * DAY_MS
    write(hub, "d1", "create", {"title": "t"})
    world.hub_wall.ms += 60_000
    write(hub, "d1", "set", {"owner": "city"})
    for batch in batches_of(hub):
        box.merge(batch)
    write(box, "d1", "set", {"owner": "box"})  # written after seeing the city's edit
    # The box's wall clock three days ahead says the op was written "now minus three days",
    # before the city's edit; the fold must keep it after the edit it saw.
    world.box_wall.ms -= 30 * 60_000
    world.restamp()
    assert push(box, hub, 1 << 20) == 1
    assert hub.state("doc", "d1")["owner"] == "box"
    assert box.state("doc", "d1")["owner"] == "box"


def test_a_seal_over_acknowledged_and_refused_ops_is_split(world) -> None:
    """The box sealed its ops before and after the jump together; the hub took the first part
    of the seal with a proof and refused the rest. The correction keeps that seal, so the hub
    and the box can still prove the acknowledged ops under it, and seals the rest anew; the
    hub forwards both parts to a third replica, which verifies them."""
    box, hub, third = world.box, world.hub, world.third
    for i in range(6):
        write(box, f"d{i}", "create", {"title": f"t{i}" * 8})
    world.box_wall.ms += 2 * 365 * DAY_MS
    for i in range(6):
        write(box, f"d{i}", "set", {"note": f"n{i}" * 8})
    acked = push(box, hub, 200)
    assert 0 < acked < 6 + 6
    seal_rows = box.conn.execute("SELECT first, last FROM sync_seal").fetchall()
    assert seal_rows == [(1, 12)]
    held_at_hub = {seq: b for seq, b in bodies(hub, world.me).items()}

    done = world.restamp()

    assert done is not None
    assert done.first == 7
    assert done.last == 12
    assert {s: b for s, b in bodies(box, world.me).items() if s <= acked} == held_at_hub
    assert box.conn.execute("SELECT first, last FROM sync_seal ORDER BY first").fetchall() == [
        (1, 12),
        (7, 12),
    ]
    for max_bytes in (100, 200, 1 << 20):
        verify_everything(box, world.me, max_bytes)
    assert push(box, hub, 200) == 12
    assert hub.digest() == box.digest()
    verify_everything(hub, world.me, 150)
    for batch in batches_of(hub, max_bytes=150):
        third.merge(batch)
    assert third.digest() == hub.digest()
    assert third.state_digest() == hub.state_digest()


def test_nothing_is_restamped_when_nothing_is_beyond_the_drift(world) -> None:
    world.box_wall.ms += 5 * 60_000
    write(world.box, "d1", "create", {"title": "t"})
    before = world.box.digest()
    assert world.restamp() is None
    assert world.box.digest() == before


def test_the_attempt_log_keeps_the_correction(world) -> None:
    box = world.box
    world.box_wall.ms += DAY_MS
    write(box, "d1", "create", {"title": "t"})
    kept: list[attempts.Record] = []

    def record(conn, done: restamp.Restamped) -> None:
        attempt = attempts.Attempt(
            at_ms=world.hub_wall.ms,
            peer="hub",
            channel="restamp",
            ops_sent=0,
            ops_received=0,
            bytes_sent=0,
            bytes_received=0,
            duration_ms=0,
            outcome="corrected",
            error=None,
            entities=sorted(e for _, e in done.entities),
            restamped=done.changes,
        )
        kept.append(attempts.append(conn, attempt, box.identity.sign))

    done = box.restamp_tail(0, world.hub_wall.ms, shift_ms=DAY_MS, record=record)
    assert done is not None
    (stored,) = attempts.records(box.conn)
    assert stored == kept[0]
    ((seq, was, now),) = stored.attempt.restamped
    assert seq == 1
    assert Stamp.unpack(was).wall == NOW_MS + DAY_MS
    assert Stamp.unpack(now).wall == NOW_MS
    assert attempts.verify_chain([stored], box.identity.public_raw) == 1


def test_an_attempt_without_corrections_hashes_as_before_the_field_existed() -> None:
    class Legacy(msgspec.Struct, array_like=True):
        at_ms: int
        peer: str
        channel: str
        ops_sent: int
        ops_received: int
        bytes_sent: int
        bytes_received: int
        duration_ms: int
        outcome: str
        error: str | None
        entities: list[str]
        acks: list[bytes]

    fields = (1, "central", "http", 2, 3, 4, 5, 6, "ok", None, ["d"], [b"ack"])
    legacy = hashlib.sha256(
        attempts.CONTEXT + attempts.GENESIS + msgspec.msgpack.encode(Legacy(*fields))
    ).digest()
    assert attempts.record_hash(attempts.GENESIS, attempts.Attempt(*fields)) == legacy


def test_a_pre_correction_body_is_told_from_an_equivocation() -> None:
    old = Op("n", 3, Stamp(NOW_MS + DAY_MS, 0).pack(), "doc", "d1", "set", {"note": "x"})
    new = Op("n", 3, Stamp(NOW_MS, 4).pack(), "doc", "d1", "set", {"note": "x"})
    assert restamp.is_superseded_by(old, new)
    assert not restamp.is_superseded_by(new, old), "a correction only moves stamps back"
    forged = Op("n", 3, old.stamp, "doc", "d1", "set", {"note": "y"})
    assert not restamp.is_superseded_by(forged, new)


# --- the property ------------------------------------------------------------------------------

phase = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 3), st.text("abc", max_size=12)),
        st.tuples(st.just("write"), st.integers(0, 3), st.text("abc", max_size=12)),
        st.tuples(st.just("hub"), st.integers(0, 3)),
        st.tuples(st.just("push"), st.sampled_from([120, 400, 1 << 20])),
        st.tuples(st.just("pull")),
        st.tuples(st.just("seal")),
    ),
    max_size=12,
)
ahead = st.sampled_from([2 * 3_600_000, 3 * DAY_MS, 2 * 365 * DAY_MS])
steps = st.builds(lambda before, jump, after: [*before, ("jump", jump), *after], phase, ahead, phase)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.sampled_from([120, 400, 1 << 20]))
def test_after_a_restamp_the_log_is_dense_sealed_and_converges(schedule, max_bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w = World(Path(tmp))
        try:
            box, hub = w.box, w.hub
            created: set[str] = set()
            for step in schedule:
                if step[0] == "write":
                    # The box edits the city's entity when it holds it (its op then follows
                    # the city's ops it saw), else one of its own.
                    entity = f"h{step[1]}" if box.state("doc", f"h{step[1]}") else f"d{step[1]}"
                    if entity in created or entity.startswith("h"):
                        write(box, entity, "set", {"note": step[2]})
                    else:
                        write(box, entity, "create", {"title": step[2]})
                        created.add(entity)
                elif step[0] == "jump":
                    w.box_wall.ms = w.hub_wall.ms + step[1]
                elif step[0] == "hub":
                    w.hub_wall.ms += 1000
                    entity = f"h{step[1]}"
                    action = "set" if hub.state("doc", entity) else "create"
                    write(hub, entity, action, {"title": "city"})
                elif step[0] == "push":
                    push(box, hub, step[1])
                elif step[0] == "pull":
                    for batch in batches_of(hub, {n: box.vector()[n] for n in (w.me, hub.identity.node)}):
                        box.merge(batch)
                elif step[0] == "seal":
                    box.seal_pending()
            acked = hub.vector()[w.me]
            prefix = {s: b for s, b in bodies(box, w.me).items() if s <= acked}

            done = w.restamp()
            event("re-stamped" if done else "nothing to re-stamp")
            if (
                done is not None
                and done.first > 1
                and box.conn.execute(
                    "SELECT 1 FROM sync_seal WHERE first < ? AND last >= ?", (done.first, done.first)
                ).fetchone()
            ):
                event("a seal split")

            mine = bodies(box, w.me)
            assert sorted(mine) == list(range(1, box.vector()[w.me] + 1)), "the log is not dense"
            assert {s: b for s, b in mine.items() if s <= acked} == prefix
            assert prefix == {s: b for s, b in bodies(hub, w.me).items()}
            stamps = [msgspec.msgpack.decode(mine[s], type=Op).stamp for s in sorted(mine)]
            assert stamps == sorted(set(stamps)), "stamps no longer grow with seq"
            assert box.clock.last.pack() >= highest_stamp(box)
            verify_everything(box, w.me, max_bytes)
            assert push(box, hub, max_bytes) == box.vector()[w.me], "the hub still refuses the tail"
            for batch in batches_of(hub, {n: box.vector()[n] for n in (w.me, hub.identity.node)}):
                box.merge(batch)
            assert hub.digest() == box.digest()
            assert hub.state_digest() == box.state_digest()
            verify_everything(hub, w.me, max_bytes)
            after = write(box, "d9", "create", {"title": "later"})
            assert after.stamp > highest_stamp(hub)
        finally:
            w.close()


def test_a_seal_nested_in_another_loses_no_op_on_the_way_out(world) -> None:
    """Each seq goes out under the seal with the greatest first that covers it: a newer seal
    inside an older one (only a re-stamp makes one; a node could sign one) never hides the
    older seal's ops after it."""
    box = world.box
    for i in range(10):
        write(box, "d1", "create" if i == 0 else "set", {"note": str(i)})
    box.seal_pending()
    node_id = box._ids[world.me]
    inner = [body for seq, body in sorted(bodies(box, world.me).items()) if 5 <= seq <= 8]
    seal = seal_run(world.me, 5, inner, box.identity.sign)
    box.conn.execute(
        "INSERT INTO sync_seal (node, first, last, root, signature) VALUES (?,?,?,?,?)",
        (node_id, seal.first, seal.last, seal.root, seal.signature),
    )
    for max_bytes in (60, 1 << 20):
        verify_everything(box, world.me, max_bytes, in_order=False)
    for batch in batches_of(box):
        world.hub.merge(batch)
    assert world.hub.digest() == box.digest()
