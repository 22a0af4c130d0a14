"""Clerks who keep a ledger of what the box acknowledged, and the checks made after a power cut.

Used by test_crash_soak.py. :class:`Ledger` records every write the clerks sent and how it was
answered: a 2xx answer is a promise (the write must be present after any crash, exactly once);
a request that got no answer (the process died under it) may or may not have been applied, but
never twice. Each :class:`ClerkWorker` is a thread using an edge's JSON API; it never retries a
write blindly: an action whose answer was lost is resolved by reading the dossier back first,
and a receipt whose answer was lost is not sent again (the API has no idempotency key, so a
resent POST /api/v1/dossiers would make a second dossier).

:func:`check_files` and :func:`check_dossiers` read a stopped node's files (a box's or the
city's); :func:`check_city_acks` compares what the city said it holds with what it holds after its
own power cut.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from servers import Clerk, Held, assert_dense, held

from central.city import City
from edge.node import Node

PATH: tuple[tuple[str, int, str], ...] = (
    ("accept", 2, ""),
    ("start", 4, ""),
    ("request_supplement", 5, "Thiếu bản sao giấy chứng nhận"),
    ("record_supplement", 4, ""),
    ("request_fees", 6, "Lệ phí đăng ký"),
    ("fees_paid", 4, ""),
    ("withdraw", 7, "Công dân rút hồ sơ"),
)
"""The actions a clerk takes on each dossier in turn (name, status after it, note): a dossier's
transitions are always a prefix of this path, so a lost or doubled step shows as a mismatch."""


DAILY_RECEIPTS = 9_000
"""Receipts a soak sends in one day at most (see :meth:`ClerkWorker.day_is_full`)."""


@dataclass
class Track:
    """One dossier a clerk received with a 2xx answer."""

    id: str
    code: str
    name: str
    routed: bool
    done: int = 0
    """Actions of PATH known to be applied (answered 2xx, or read back after a lost answer)."""
    in_flight: bool = False
    """An action was sent and its answer is not known: it may be applied or not."""


@dataclass
class Tally:
    receipts_acked: int = 0
    receipts_unanswered: int = 0
    receipts_retried: int = 0
    """Receipts sent again with their Idempotency-Key after a lost answer (a real client does)."""
    actions_acked: int = 0
    actions_unanswered: int = 0
    actions_read_back: int = 0
    """Unanswered actions that a read after the restart showed applied."""


@dataclass
class Ledger:
    """What the clerks sent and what was acknowledged; shared by the workers, read by the checks."""

    tracks: dict[str, Track] = field(default_factory=dict)
    sent_names: set[str] = field(default_factory=set)
    """Applicant names of every receipt sent (each is unique): answered or not."""
    tally: Tally = field(default_factory=Tally)
    in_flight: Counter[str] = field(default_factory=Counter)
    """Requests on the wire now, by kind ("receive", "act"): the killer aims at them."""
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> tuple[dict[str, Track], set[str]]:
        with self.lock:
            return {key: replace(t) for key, t in self.tracks.items()}, set(self.sent_names)

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)


class ClerkWorker(threading.Thread):
    """A clerk at the one-stop shop: receives dossiers (some for another handling unit) and moves
    its own along PATH, while ``serving`` is set; waits while the box is down."""

    def __init__(
        self,
        index: int,
        url: str,
        username: str,
        ledger: Ledger,
        serving: threading.Event,
        stop: threading.Event,
        seed: int,
        routed_to: str,
    ) -> None:
        super().__init__(name=f"clerk-{index}", daemon=True)
        self.index = index
        self.url = url
        self.username = username
        self.ledger = ledger
        self.serving = serving
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.routed_to = routed_to
        self.mine: list[str] = []
        """Ids of this clerk's dossiers that still have actions to take."""
        self.unanswered: tuple[str, dict[str, object], bool] | None = None
        """A receipt whose answer was lost (idempotency key, body, routed): sent again first."""
        self.sent = 0
        self.clerk: Clerk | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                if not self.serving.wait(0.2):
                    continue
                try:
                    if self.clerk is None:
                        self.clerk = Clerk(self.url, self.username)
                    if self.unanswered is not None:
                        self.receive(*self.unanswered)
                    elif self.mine and (self.rng.random() < 0.6 or self.day_is_full()):
                        self.act(self.rng.choice(self.mine))
                    elif not self.day_is_full():
                        self.receive()
                    else:
                        self.clerk.client.get("/api/v1/dossiers")  # a read, while the box is cut
                        self.stop_event.wait(0.05)
                except httpx.TransportError:
                    self.serving.wait(0.2)  # the box went down under the request
        except Exception as exc:  # any surprise fails the test, with its reason
            self.ledger.fail(f"{self.name}: {type(exc).__name__}: {exc}")
        finally:
            if self.clerk is not None:
                self.clerk.close()

    def day_is_full(self) -> bool:
        """A unit's codes number at most 9,999 dossiers a day (the portal's code format; the box
        refuses the 10,000th with a typed error): a long soak stops receiving short of that."""
        return self.ledger.tally.receipts_acked + self.ledger.tally.receipts_unanswered >= DAILY_RECEIPTS

    def receive(
        self, key: str | None = None, body: dict[str, object] | None = None, routed: bool = False
    ) -> None:
        """A new receipt, or (``key``) the one whose answer was lost, sent again with the same
        Idempotency-Key: the box must answer with the dossier it made, if it made one."""
        assert self.clerk is not None
        if key is None or body is None:
            self.sent += 1
            key = f"clerk-{self.index}-{self.sent}"
            routed = self.rng.random() < 0.2
            body = {
                "procedure": "2.000720",
                "applicant_name": f"Nguyễn Văn Sập {self.index}-{self.sent}",
                "citizen_id": "092085001234",
                "phone": "0912345678",
                "address": "12 Mậu Thân",
                **({"handling_unit": self.routed_to} if routed else {}),
            }
        else:
            with self.ledger.lock:
                self.ledger.tally.receipts_retried += 1
        name = str(body["applicant_name"])
        with self.ledger.lock:
            self.ledger.sent_names.add(name)
            self.ledger.in_flight["receive"] += 1
        try:
            response = self.clerk.client.post("/api/v1/dossiers", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            with self.ledger.lock:
                self.ledger.tally.receipts_unanswered += 1
            self.unanswered = (key, body, routed)
            raise
        finally:
            with self.ledger.lock:
                self.ledger.in_flight["receive"] -= 1
        self.unanswered = None
        if response.status_code != 201:
            self.ledger.fail(f"receive {name}: {response.status_code} {response.text[:300]}")
            return
        made = response.json()
        with self.ledger.lock:
            self.ledger.tracks[made["id"]] = Track(made["id"], made["code"], name, routed)
            self.ledger.tally.receipts_acked += 1
        if not routed:  # a routed dossier is the handling unit's to move
            self.mine.append(made["id"])

    def act(self, dossier_id: str) -> None:
        assert self.clerk is not None
        track = self.ledger.tracks[dossier_id]
        if track.in_flight and not self.read_back(track):
            return
        action, _, note = PATH[track.done]
        with self.ledger.lock:
            track.in_flight = True
            self.ledger.in_flight["act"] += 1
        try:
            response = self.clerk.client.post(
                f"/api/v1/dossiers/{dossier_id}/actions", json={"action": action, "note": note}
            )
        except httpx.TransportError:
            with self.ledger.lock:
                self.ledger.tally.actions_unanswered += 1
            raise
        finally:
            with self.ledger.lock:
                self.ledger.in_flight["act"] -= 1
        if response.status_code != 200:
            self.ledger.fail(f"{action} on {track.code}: {response.status_code} {response.text[:300]}")
            self.mine.remove(dossier_id)
            return
        with self.ledger.lock:
            track.done += 1
            track.in_flight = False
            self.ledger.tally.actions_acked += 1
        self._retire_if_done(track)

    def read_back(self, track: Track) -> bool:
        """After a lost answer: read the dossier (a read may be retried) to learn whether the
        action was applied. False when the box went down again before it answered."""
        assert self.clerk is not None
        response = self.clerk.client.get(f"/api/v1/dossiers/{track.id}")
        if response.status_code != 200:
            self.ledger.fail(f"read {track.code}: {response.status_code} {response.text[:300]}")
            self.mine.remove(track.id)
            return False
        moves = [s["to_status"] for s in response.json()["steps"] if s["action"] == "transition"]
        applied = len(moves) - track.done
        if applied not in (0, 1) or moves != [status for _, status, _ in PATH[: len(moves)]]:
            self.ledger.fail(f"{track.code} after a lost answer: moves {moves}, {track.done} known")
            self.mine.remove(track.id)
            return False
        with self.ledger.lock:
            track.done += applied
            track.in_flight = False
            self.ledger.tally.actions_read_back += applied
        self._retire_if_done(track)
        return track.id in self.mine

    def _retire_if_done(self, track: Track) -> None:
        if track.done == len(PATH) and track.id in self.mine:
            self.mine.remove(track.id)


# --- after a power cut ----------------------------------------------------------------------------


def check_files(directory: Path) -> list[str]:
    """``PRAGMA integrity_check`` and ``foreign_key_check`` of every database in a stopped
    node's directory (the node's, the audit log, the city's fleet.db). Returns the files."""
    names = []
    for path in sorted(directory.glob("*.db")):
        conn = sqlite3.connect(path)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            assert result == ["ok"], f"{path.name} after a power cut: {result[:5]}"
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            assert not broken, f"{path.name}: rows without their parent: {broken[:5]}"
        finally:
            conn.close()
        names.append(path.name)
    return names


@dataclass
class Found:
    receipts_present: int
    unanswered_present: int
    """Receipts whose answer was lost and that the box holds all the same."""
    lost: list[str]
    duplicates: list[str]


def check_dossiers(node: Node, unit: str, tracks: dict[str, Track], sent_names: set[str]) -> Found:
    """What a replica holds against what the clerks of ``unit`` were told: every acknowledged
    receipt with its code, every acknowledged action as a step (an unanswered one at most once),
    each sent receipt at most once, the unit's codes unique."""
    lost: list[str] = []
    duplicates: list[str] = []
    with node.reader() as conn:
        rows = {
            row[0]: (row[1], row[2], row[3])
            for row in conn.execute("SELECT id, code, applicant_name, receiving_unit FROM dossiers")
        }
        moves: dict[str, list[int]] = {}
        for dossier, to_status in conn.execute(
            "SELECT dossier_id, to_status FROM dossier_steps WHERE action = 'transition' "
            "ORDER BY dossier_id, position"
        ):
            moves.setdefault(dossier, []).append(to_status)
    mine = {key: value for key, value in rows.items() if value[2] == unit}
    for code, n in Counter(code for code, _, _ in mine.values()).items():
        if n > 1:
            duplicates.append(f"code {code} given {n} times")
    names = Counter(name for _, name, _ in mine.values())
    for name, n in names.items():
        if n > 1:
            duplicates.append(f"{name} received {n} times")
    for track in tracks.values():
        row = rows.get(track.id)
        if row is None or row[:2] != (track.code, track.name):
            lost.append(f"receipt {track.code} ({track.name}): {row}")
            continue
        got = moves.get(track.id, [])
        expected = [status for _, status, _ in PATH[: track.done]]
        longer = [status for _, status, _ in PATH[: track.done + 1]]
        if got != expected and not (track.in_flight and got == longer):
            (lost if len(got) < len(expected) else duplicates).append(
                f"{track.code}: steps {got}, acknowledged {expected}" + (" (+1 unanswered)" * track.in_flight)
            )
    acked_names = {t.name for t in tracks.values()}
    unanswered_present = sum(1 for name in sent_names - acked_names if names.get(name))
    return Found(len(tracks) - len(lost), unanswered_present, lost, duplicates)


def edge_believes_the_city_holds(db: Path, me: str) -> int:
    """What a running box learned the city holds of its ops (signed acks, hello), read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT seq FROM sync_peer WHERE peer = 'central' AND node = ?", (me,)).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def check_city_acks(city: City, me: str, told_edge: int) -> Held:
    """After the city's power cut: its log is dense, and it holds every op of ``me`` that it had
    acknowledged, in the signed acks it kept and in what the box learned from it."""
    hub = held(city.node)
    assert_dense("central", hub)
    holds = hub.vector.get(me, 0)
    signed = max((ack.have for ack in city.fleet.acks(me)), default=0)
    assert signed <= holds, f"the city signed an ack for {signed} ops of {me} but holds {holds}"
    assert told_edge <= holds, f"the box was told the city holds {told_edge} of its ops; it holds {holds}"
    return hub
