"""Differential stateful test: several replicas, a cut and lossy network, lying clocks.

The model is a plain dict of every acknowledged op (node, seq) -> Op. After a full exchange all
replicas must hold exactly the model's ops and agree on every folded state, and each state must
equal both a from-scratch ``sync.fold.fold`` of the replica's ops and the hand-written rules.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from toydoc import DOC, FIELDS, STATUSES, TRANSITIONS, FakeWall, model_fold, open_replica, snapshot, trust_all

from sync.batch import encode_batch
from sync.errors import ClockDriftError
from sync.fold import Rejected, fold
from sync.identity import Identity
from sync.ops import Op

N = 4
MAX_DRIFT_MS = 60_000
YEAR_MS = 365 * 24 * 3600 * 1000
START_MS = 1_750_000_000_000
DOCS = ("d1", "d2", "d3")
IDENTITIES = [Identity.generate(unit) for unit in ("ua", "ub", "uc", "ud")[:N]]

REPLICA = st.integers(0, N - 1)


class Convergence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="motcua-conv-"))
        self.true_ms = START_MS
        self.skew = [0] * N
        self.walls = [FakeWall(START_MS) for _ in range(N)]
        self.replicas = [self._open(i) for i in range(N)]
        trust_all(self.replicas)
        self.model: dict[tuple[str, int], Op] = {}
        self.own = [0] * N  # acknowledged local writes per replica

    def _open(self, i: int):
        return open_replica(self.dir / f"r{i}.db", IDENTITIES[i], self.walls[i], max_drift_ms=MAX_DRIFT_MS)

    def _tick(self, ms: int) -> None:
        self.true_ms += ms
        for i, wall in enumerate(self.walls):
            wall.ms = self.true_ms + self.skew[i]

    def teardown(self) -> None:
        for r in self.replicas:
            r.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- rules ---------------------------------------------------------------------------

    FIELD_VALUES = st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 9), min_size=1, max_size=2)

    @rule(i=REPLICA, doc=st.sampled_from(DOCS), fields=FIELD_VALUES, ms=st.integers(0, 2_000))
    def create(self, i, doc, fields, ms) -> None:
        self._write(i, doc, "create", fields, ms)

    def _pick_doc(self, i, data) -> str:
        """Mostly a doc this replica already holds (so the write is valid here), else any."""
        held = sorted(e for (_, e), state in self.replicas[i].states("doc").items() if state.get("_created"))
        if held and data.draw(st.integers(0, 9)):
            return data.draw(st.sampled_from(held))
        return data.draw(st.sampled_from(DOCS))

    @rule(i=REPLICA, fields=FIELD_VALUES, ms=st.integers(0, 2_000), data=st.data())
    def set_fields(self, i, fields, ms, data) -> None:
        """Concurrent edits of one doc on several replicas race here."""
        self._write(i, self._pick_doc(i, data), "set", fields, ms)

    @rule(i=REPLICA, ms=st.integers(0, 2_000), data=st.data())
    def move(self, i, ms, data) -> None:
        """Mostly a transition valid here; concurrent moves elsewhere may still conflict."""
        doc = self._pick_doc(i, data)
        state = self.replicas[i].state("doc", doc) or {}
        valid = sorted(TRANSITIONS.get(state.get("status"), ()))
        status = data.draw(
            st.sampled_from(valid) if valid and data.draw(st.integers(0, 4)) else st.sampled_from(STATUSES)
        )
        self._write(i, doc, "move", {"to": status}, ms)

    def _write(self, i, doc, action, payload, ms) -> None:
        self._tick(ms)
        r = self.replicas[i]
        held = r.ops_of("doc", doc)
        before = snapshot(r)
        try:
            with r.write() as w:
                op = w.append("doc", doc, action, payload)
        except Rejected:
            assert snapshot(r) == before
            # the model agrees the write is not valid after what this replica holds
            probe = Op(r.identity.node, 1 << 40, 1 << 62, "doc", doc, action, payload)
            assert (probe.node, probe.seq) in model_fold([*held, probe])[1]
            return
        self.own[i] += 1
        assert op.seq == self.own[i]
        assert all(op.key > h.key for h in held)  # a local write is the newest its replica knows
        self.model[op.ident] = op

    @rule(a=REPLICA, b=REPLICA, max_bytes=st.integers(40, 400), data=st.data())
    def exchange(self, a, b, max_bytes, data) -> None:
        """Send a's batches to b over a bad link: lost, duplicated and reordered batches."""
        if a == b:
            return
        src, dst = self.replicas[a], self.replicas[b]
        sent = list(src.batches(dst.vector(), max_bytes=max_bytes))
        if not sent:
            return
        delivered = data.draw(st.lists(st.sampled_from(sent), max_size=len(sent) + 2))
        for batch in delivered:
            before = snapshot(dst)
            payload = encode_batch(batch) if data.draw(st.booleans()) else batch
            try:
                report = dst.merge(payload)
            except ClockDriftError as exc:
                drift = exc.drift_ms  # a legitimate outcome: the sender's clock is far ahead
                assert drift > MAX_DRIFT_MS
                assert snapshot(dst) == before
                continue
            assert report.applied == snapshot(dst)[0] - before[0]
            assert dst.vector().dominates(before[1])

    @rule(i=REPLICA)
    def restart(self, i) -> None:
        before = snapshot(self.replicas[i])
        self.replicas[i].close()
        self.replicas[i] = self._open(i)
        r = self.replicas[i]
        assert snapshot(r) == before
        # the HLC was persisted: whatever the wall says, the next stamp is after every op held
        newest = max((op.stamp for doc in DOCS for op in r.ops_of("doc", doc)), default=-1)
        assert r.clock.last.pack() >= newest

    @rule(i=REPLICA, back=st.integers(1, 20 * YEAR_MS) | st.integers(1, 5_000))
    def clock_jumps_back(self, i, back) -> None:
        self.skew[i] -= back
        self._tick(0)

    @rule(i=REPLICA, ahead=st.integers(1, 90_000))
    def clock_jumps_ahead(self, i, ahead) -> None:
        self.skew[i] = min(self.skew[i] + ahead, 2 * MAX_DRIFT_MS)
        self._tick(0)

    @rule()
    def full_exchange(self) -> None:
        # Time passes and every node is calibrated against the city's clock.
        self._tick(4 * MAX_DRIFT_MS)
        for r in self.replicas:
            r.clock.calibrate(self.true_ms)
        for _ in range(N + 1):
            moved = 0
            for a, src in enumerate(self.replicas):
                for b, dst in enumerate(self.replicas):
                    if a != b:
                        for batch in list(src.batches(dst.vector(), max_bytes=300)):
                            moved += dst.merge(batch).applied
            if not moved:
                break
        assert not moved, "no quiescence"
        first = self.replicas[0]
        want_vector = {}
        for node, seq in self.model:
            want_vector[node] = max(want_vector.get(node, 0), seq)
        for r in self.replicas:
            assert r.vector().to_dict() == want_vector
            assert r.pending_count() == 0
            assert r.op_count() == len(self.model)
            assert r.digest() == first.digest()
            assert r.state_digest() == first.state_digest()
            assert r.conflicts() == first.conflicts()
        for doc in DOCS:
            ops = [op for op in self.model.values() if op.entity == doc]
            for r in self.replicas:
                held = r.ops_of("doc", doc)
                assert held == sorted(ops, key=lambda op: op.key)
                state = r.state("doc", doc)
                if not ops:
                    assert state is None
                    continue
                want, want_conflicts = model_fold(ops)
                assert without_conflicts_(state) == want  # the hand-written rules
                scratch, scratch_conflicts = fold(DOC, held)  # the differential check
                assert without_conflicts_(state) == scratch
                got_conflicts = [(c.node, c.seq) for c in r.conflicts("doc", doc)]
                assert sorted(got_conflicts) == sorted(want_conflicts)
                assert sorted((c.node, c.seq) for c in scratch_conflicts) == sorted(want_conflicts)

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def acknowledged_writes_are_kept(self) -> None:
        for i, r in enumerate(self.replicas):
            assert r.vector()[r.identity.node] == self.own[i]
            assert r.op_count() >= self.own[i]
            assert r.op_count() == r.vector().total()  # the log holds 1..head of every node

    @invariant()
    def states_are_the_fold_of_their_ops(self) -> None:
        for r in self.replicas:
            for (_, doc), state in r.states("doc").items():
                assert without_conflicts_(state) == fold(DOC, r.ops_of("doc", doc))[0]


def without_conflicts_(state):
    return {k: v for k, v in state.items() if k != "_conflicts"}


Convergence.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_convergence = pytest.mark.slow(Convergence.TestCase)
