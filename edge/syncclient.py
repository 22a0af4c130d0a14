"""The edge side of the sync protocol: one round with the city, :func:`sync_once`.

A round is a sequence of steps, each committed before the next, so a link cut at any point
loses at most the request in flight and the next round carries on from what was kept:

1. time       the city's clock; this box's clock is calibrated against it (offset persisted)
2. hello      who this box is and how it is; the city answers what it holds of this box's ops,
              the clock drift it saw and the certificates of the province's nodes
3. certs      keys the city vouches for are trusted, revocations applied
4. push       this box's own ops the city lacks, in bounded batches; every signed
              acknowledgement is checked against the city key and kept
5. blobs up   scans referenced by pushed ops, in chunks, resumed from what the city holds
6. pull       the next slices of this box's scope after the feed cursor; each batch merged
              (all or nothing), then the cursor saved
7. blobs down scans of the dossiers held here that this box lacks (whether they arrived in this
              round or the city did not hold them yet before), in chunks into a ``.part`` file,
              resumed, sha256-checked before they enter the blob store
8. digest     anti-entropy: the two scope digests must agree; if not, the cursor goes back to 0
              and the next round exchanges the whole scope again (merges are idempotent)

Every round, whatever its outcome, is appended to the node's signed attempt log
(:mod:`sync.attempts`) with its reason in words a clerk understands (English msgids, translated
when a page shows them): the dossier's transmission record is made of these. The background
loop that runs rounds is :mod:`edge.syncloop`.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edge import protocol
from edge.backupstate import backup_age_s
from edge.disk import is_disk_error
from edge.lantls import install_renewed
from edge.node import Node
from edge.protocol import RECORDED_KINDS
from edge.settings import Settings
from edge.syncstate import CENTRAL, SyncState
from sync import attempts, correction, restamp, wire
from sync.batch import encode_batch
from sync.blobs import BlobNotFound, check_digest, digest_of
from sync.errors import (
    BadSignature,
    ClockDriftError,
    CorruptBatch,
    EquivocationError,
    PeerTimeout,
    PeerUnavailable,
    PeerUnreachable,
    PlainLinkRefused,
    RevokedNode,
    SupersededBody,
    SyncError,
    UnknownNode,
    UntrustedPeer,
    VerificationError,
)
from sync.feed import EVERYWHERE
from sync.transport import HttpPeer, Peer

log = logging.getLogger("motcua.sync")

CHANNEL = "http"
RESTAMP_CHANNEL = "restamp"
"""The attempt log's channel of a correction of this box's own stamps (no bytes moved)."""
CORRECTED = attempts.Outcome.CORRECTED
"""Its outcome: not a sync ("last sync" counts only rounds whose outcome is "ok")."""
MAX_BLOB_BYTES = 64 * 1024 * 1024
"""A scan fetched from the city larger than this is refused (uploads are capped far lower)."""
PEER_TIMEOUT_S = 20.0
INCOMING = "incoming"
"""Directory (in the data directory) of scans being fetched: ``<sha256>.part`` files."""


def N_(message: str) -> str:
    """Marks a msgid for extraction; the page that shows it translates it."""
    return message


# Why a round failed, as a clerk reads it (English msgids; edge/locale translates them).
NO_CONNECTION = N_("No connection to the city server.")
TIMED_OUT = N_("The city server did not answer in time.")
CITY_TROUBLE = N_("The city server has a problem; the box will try again.")
REVOKED = N_("The city has revoked this box's key. Call city IT.")
UNKNOWN_BOX = N_("The city server does not know this box. Call city IT.")
OUT_OF_SCOPE = N_("The city server refused a change outside this commune's scope. Call city IT.")
STALE = N_("The box's clock is too far from the city's clock. Check the date and time.")
REPLAYED = N_("The city server received a request twice; the box will try again.")
TOO_OLD = N_("This box's software is too old for the city server. It needs an upgrade.")
BAD_SIGNATURE = N_("A signature did not verify, so nothing of it was applied. Call city IT.")
UNREADABLE = N_("Data from the city server could not be read. Call city IT if this repeats.")
CLOCKS_APART = N_("The clocks of this box and the city server are too far apart.")
REFUSED = N_("The city server refused the request. Call city IT.")
UNTRUSTED = N_(
    "The server that answered is not the city server (its certificate does not match); nothing was sent. "
    "Call city IT."
)
PLAIN_LINK = N_("The address of the city server is not HTTPS, so nothing was sent. Call city IT.")
DISK = N_("The box could not save what it received. Tell the technician.")
NOT_CONFIGURED = N_("This box is not set up to sync with the city.")
MISMATCH = N_(
    "The city server and this box disagree on what they hold; everything is exchanged again at the next sync."
)
DAMAGED_SCAN = N_("A scan from the city server was damaged on the way; it will be fetched again.")
INTERRUPTED = N_("Sync was interrupted because the box is shutting down.")
UNEXPECTED = N_("Unexpected error on the box. Tell the technician.")
RESTAMPED = N_(
    "The box's clock was ahead of the city's: changes made while it was wrong were re-dated to the "
    "city's time before they were sent."
)


class NotConfigured(SyncError):
    status = 400
    code = "sync_not_configured"


class Interrupted(SyncError):
    retryable = True
    code = "sync_interrupted"


def software_version() -> str:
    try:
        return version("motcua")
    except PackageNotFoundError:
        return "0+unknown"


_NOT_REFUSALS = (PeerUnreachable, Interrupted, wire.ReplayedRequest, wire.StaleRequest, ClockDriftError)
"""Round failures that are the link or the clock, not a refusal worth auditing."""


def _is_refusal(exc: BaseException | None) -> bool:
    return isinstance(exc, SyncError) and 400 <= exc.status < 500 and not isinstance(exc, _NOT_REFUSALS)


def explain(exc: BaseException) -> tuple[str, bool]:
    """(msgid a clerk reads, retryable) for an error that ended a round."""
    retryable = bool(getattr(exc, "retryable", False))
    if isinstance(exc, PeerTimeout):
        return TIMED_OUT, True
    if isinstance(exc, PeerUnavailable):
        return CITY_TROUBLE, True
    if isinstance(exc, PeerUnreachable):
        return NO_CONNECTION, True
    if is_disk_error(exc):
        # Space freed or the disk repaired, the next round can succeed: back off as for a link.
        return DISK, True
    if isinstance(exc, wire.ReplayedRequest):
        # A duplicated request (a proxy retrying): the first copy went through; nothing is wrong.
        return REPLAYED, True
    known: list[tuple[type[BaseException], str]] = [
        (Interrupted, INTERRUPTED),
        (NotConfigured, NOT_CONFIGURED),
        (UntrustedPeer, UNTRUSTED),
        (PlainLinkRefused, PLAIN_LINK),
        (RevokedNode, REVOKED),
        (UnknownNode, UNKNOWN_BOX),
        (wire.ScopeViolation, OUT_OF_SCOPE),
        (wire.StaleRequest, STALE),
        (wire.ProtocolMismatch, TOO_OLD),
        (BadSignature, BAD_SIGNATURE),
        (EquivocationError, BAD_SIGNATURE),
        (CorruptBatch, UNREADABLE),
        (VerificationError, UNREADABLE),
        (ClockDriftError, CLOCKS_APART),
        (SyncError, REFUSED),
        (OSError, DISK),
        (sqlite3.Error, DISK),
    ]
    for cls, message in known:
        if isinstance(exc, cls):
            return message, retryable
    return UNEXPECTED, False


@dataclass
class RoundResult:
    """What one round did. ``error`` is the msgid of why it stopped or what went wrong."""

    outcome: attempts.Outcome = attempts.Outcome.FAILED
    """OK, PARTIAL (something went through, not everything) or FAILED."""
    ops_sent: int = 0
    ops_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    duration_ms: int = 0
    error: str | None = None
    detail: str | None = None
    """The technical cause (English), for logs, the CLI and city IT."""
    retryable: bool = True
    entities: list[str] = field(default_factory=list)
    acks: list[wire.Ack] = field(default_factory=list)
    blobs_sent: int = 0
    blobs_received: int = 0
    blobs_waiting: int = 0
    """Scans the city does not hold yet (their commune has not uploaded them)."""
    digest_match: bool | None = None
    """Anti-entropy's verdict; None when it was not reached or skipped (the feed kept moving)."""
    record_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == attempts.Outcome.OK

    def summary(self) -> str:
        """One line for the shell and the log."""
        line = (
            f"{self.outcome}: {self.ops_sent} ops sent, {self.ops_received} received, "
            f"{self.bytes_sent} bytes sent, {self.bytes_received} received, "
            f"{self.blobs_sent + self.blobs_received} scans, {self.duration_ms} ms"
        )
        if self.error:
            line += f" — {self.error}" + (f" ({self.detail})" if self.detail else "")
        return line


@dataclass(frozen=True)
class _Batch:
    data: bytes
    """The encoded batch, as pushed (the city's acknowledgement names its sha256)."""
    carried: protocol.Carried


def _digest(sha: str) -> str:
    try:
        return check_digest(sha)
    except BlobNotFound as exc:
        raise CorruptBatch(f"the city server named a scan by a malformed hash: {sha!r:.80}") from exc


def _bytes_of(peer: Peer) -> tuple[int, int]:
    """Bytes on the wire so far, if the peer counts them (HttpPeer does)."""
    return int(getattr(peer, "sent", 0)), int(getattr(peer, "received", 0))


class _Round:
    """One round's steps and counters: an error at any step leaves the counters true."""

    def __init__(self, node: Node, peer: Peer, settings: Settings, stop: Callable[[], bool] | None) -> None:
        self.node = node
        self.replica = node.replica
        self.peer = peer
        self.settings = settings
        self.stop = stop
        self.me = node.identity.node
        self.keys = {node.config.unit, EVERYWHERE}
        self.result = RoundResult()
        self.entities: set[str] = set()
        self.problem: str | None = None
        self.cursor = SyncState.load(self.replica).feed_cursor
        self.pushed_head = 0
        self.correction_ms = 0
        """How far this round's calibration moved the clock (negative: it was ahead)."""
        if not node.config.central_key:
            raise NotConfigured("this node has no city key: create it from a node file")
        self.city_key = bytes.fromhex(node.config.central_key)

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop():
            raise Interrupted("the box is shutting down")

    # --- the steps -------------------------------------------------------------------------

    def pending(self, have: int) -> list[_Batch]:
        """This box's own ops after ``have``, as the encoded batches a push sends."""
        batches = self.replica.batches(
            {self.me: have},
            nodes=[self.me],
            max_bytes=self.settings.batch_bytes,
            grow_to=self.settings.batch_bytes_max,
        )
        return [_Batch(encode_batch(batch), protocol.carried([batch])) for batch in batches]

    def run(self) -> None:
        # What this round tries to send, known before any request: a round that cannot even
        # reach the city still counts as an attempt to send these dossiers.
        known_have = self.replica.peer_vector(CENTRAL)[self.me]
        batches = self.pending(known_have)
        for batch in batches:
            self.entities.update(batch.carried.entities)
        self._calibrate()
        # Bodies stamped too far ahead are given up in the hello, before they are re-stamped.
        given = correction.to_give_up(self.replica, known_have, self.node.clock.wall_ms())
        reply = self._hello(given)
        self._apply_certs(reply.certs)
        _install_lan_cert(self.node, reply.tls_cert)
        if self._restamp(given, reply) or reply.have != known_have:
            batches = self.pending(reply.have)
        self._push(batches, reply.have)
        self._upload_blobs()
        self._pull()
        self._fetch_blobs()
        self._anti_entropy()

    def _calibrate(self) -> None:
        self._check_stop()
        clock = self.node.clock
        nonce = secrets.token_bytes(wire.TIME_NONCE_BYTES)
        started = time.monotonic()
        # Signed by the city key for this nonce: nothing on the path sets this box's clock.
        reply = wire.check_time(self.peer.time(nonce), self.city_key, nonce)
        rtt_ms = int((time.monotonic() - started) * 1000)
        if wire.PROTOCOL not in reply.protocols:
            raise wire.ProtocolMismatch(
                f"the city server speaks protocol(s) {sorted(reply.protocols)}, this box {wire.PROTOCOL}"
            )
        before = clock.offset_ms
        offset = clock.calibrate(reply.time_ms + rtt_ms // 2)
        self.correction_ms = offset - before
        SyncState.set_clock_offset(self.replica, offset)
        SyncState.clear_forward_jump(self.replica)  # the city's time stands for the clock now

    def _oldest_waiting(self) -> int | None:
        """When this box made the oldest change the city has not acknowledged (protocol 2)."""
        at_city = self.replica.peer_vector(CENTRAL)[self.me]
        if self.replica.vector()[self.me] <= at_city:
            return None
        op = self.replica.op(self.me, at_city + 1)
        return None if op is None else op.hlc.wall

    def _hello(self, give_up: list[restamp.GiveUp]) -> wire.HelloReply:
        self._check_stop()
        clock = self.node.clock
        state = SyncState.load(self.replica)
        hello = wire.Hello(
            software=software_version(),
            head=self.replica.vector()[self.me],
            cursor=self.cursor,
            wall_ms=clock.wall_ms() - clock.offset_ms,
            backup_age_s=backup_age_s(self.node.data_dir),
            pending_blobs=len(state.blobs_up),
            last_error=state.last_error,
            oldest_waiting_ms=self._oldest_waiting(),
            certs_since_ms=state.certs_since_ms,
            give_up=give_up,
        )
        reply = self.peer.hello(hello)
        SyncState.set_clock_drift(self.replica, int(reply.drift_ms))
        self.replica.remember_peer(CENTRAL, {self.me: reply.have})
        return reply

    def _restamp(self, given: list[restamp.GiveUp], reply: wire.HelloReply) -> bool:
        """Re-stamp this box's ops the city does not hold that its clock stamped too far ahead of
        the city's signed time (decision 0008), once the city answered that it refuses their
        old bodies (sync.correction). Recorded in the attempt log with their old and new stamps."""
        done = correction.apply(
            self.replica,
            given,
            reply.have,
            reply.given_up,
            self.node.clock.wall_ms(),
            shift_ms=-self.correction_ms,
            record=self._record_restamp,
        )
        if done is None:
            return False
        log.warning(
            "the box's clock was ahead: ops #%d..#%d re-stamped to the city's time (%d dossiers)",
            done.first,
            done.last,
            len({entity for kind, entity in done.entities if kind in RECORDED_KINDS}),
        )
        return True

    def _record_restamp(self, conn: sqlite3.Connection, done: restamp.Restamped) -> None:
        attempts.append(
            conn,
            attempts.Attempt(
                at_ms=self.node.clock.wall_ms(),
                peer=CENTRAL,
                channel=RESTAMP_CHANNEL,
                ops_sent=0,
                ops_received=0,
                bytes_sent=0,
                bytes_received=0,
                duration_ms=0,
                outcome=CORRECTED,
                error=RESTAMPED,
                entities=sorted({entity for kind, entity in done.entities if kind in RECORDED_KINDS}),
                restamped=done.changes,
            ),
            self.node.identity.sign,
        )

    def _apply_certs(self, certs: Iterable[wire.Cert]) -> None:
        since = SyncState.load(self.replica).certs_since_ms
        checked = protocol.check_certs(certs, self.city_key)
        protocol.apply_certs(self.replica, self.me, checked)
        newest = max([since, *(cert.issued_ms for cert in checked)])
        if newest != since:
            SyncState.set_certs_since(self.replica, newest)

    def _push(self, batches: list[_Batch], have: int) -> None:
        self.pushed_head = have
        for batch in batches:
            self._check_stop()
            self.entities.update(batch.carried.entities)
            if batch.carried.blobs:
                # Queued before the push: once the city holds the ops, the scans must follow
                # even if this round is cut right after.
                up = SyncState.load(self.replica).blobs_up
                SyncState.set_blobs_up(self.replica, [*up, *batch.carried.blobs])
            try:
                reply = self.peer.push(batch.data)
            except SupersededBody:
                # Bodies the box gave up in a hello it no longer remembers (a restore from a
                # backup): the next round gives them up again and re-stamps them.
                correction.refused(self.replica, self.pushed_head + 1)
                raise
            ack = protocol.check_ack(reply, self.city_key, self.me, batch.data)
            self.result.acks.append(ack)
            self.result.ops_sent += batch.carried.ops
            self.pushed_head = max(self.pushed_head, ack.have)
            protocol.remember_acks(self.replica, self.me, [ack])

    def _upload_blobs(self) -> None:
        chunk = self.settings.blob_chunk_bytes
        for sha in SyncState.load(self.replica).blobs_up:
            self._check_stop()
            if not self.node.blobs.has(sha):
                log.warning("scan %s is referenced by an op of this box but missing here", sha)
                self._done_with(sha)
                continue
            data = self.node.blobs.get(sha)
            size = self.peer.blob_size(sha)
            stalls = 0
            while size < len(data):
                self._check_stop()
                new_size = self.peer.put_blob(sha, size, data[size : size + chunk])
                # The city answers what it holds: resume from there (it may hold less after a
                # restart); a city that keeps taking nothing is a fault, not a reason to spin.
                stalls = stalls + 1 if new_size <= size else 0
                if stalls > 2:
                    raise CorruptBatch(f"the city server does not take scan {sha} at byte {size}")
                size = new_size
            self._done_with(sha)
            self.result.blobs_sent += 1

    def _done_with(self, sha: str) -> None:
        up = SyncState.load(self.replica).blobs_up
        SyncState.set_blobs_up(self.replica, [s for s in up if s != sha])

    def _pull(self) -> None:
        while True:
            self._check_stop()
            reply = self.peer.pull(wire.PullRequest(cursor=self.cursor))
            self._apply_certs(reply.certs)
            for data in reply.batches:
                self.result.ops_received += self.replica.merge(data).applied
            if not reply.done and reply.cursor <= self.cursor:
                raise CorruptBatch(f"the city's feed did not move past {self.cursor}")
            SyncState.set_feed_cursor(self.replica, reply.cursor)
            self.cursor = reply.cursor
            if reply.done:
                return

    def _missing_scans(self) -> dict[str, int]:
        """Scans of the dossiers held here that this box lacks, with their size. The projection
        knows every attachment merged, so a scan the city did not hold yet when its op arrived
        is still fetched at a later round."""
        with self.node.reader() as conn:
            rows = conn.execute("SELECT sha256, max(size) FROM attachments GROUP BY sha256").fetchall()
        return {str(sha): int(size or 0) for sha, size in rows if not self.node.blobs.has(str(sha))}

    def _fetch_blobs(self) -> None:
        incoming = self.node.data_dir / INCOMING
        for sha, size in sorted(self._missing_scans().items()):
            self._check_stop()
            incoming.mkdir(exist_ok=True)
            part = incoming / f"{_digest(sha)}.part"
            try:
                data = self._fetch(sha, size, part)
            except BlobNotFound:
                self.result.blobs_waiting += 1  # its commune has not uploaded it yet
                continue
            if digest_of(data) != sha:
                part.unlink(missing_ok=True)
                log.warning("scan %s arrived damaged; it will be fetched again", sha)
                self.problem = self.problem or DAMAGED_SCAN
                continue
            self.node.blobs.put(data)
            part.unlink(missing_ok=True)
            self.result.blobs_received += 1

    def _fetch(self, sha: str, size: int, part: Path) -> bytes:
        """The scan's ``size`` bytes, resumed from what ``part`` already holds."""
        if not 0 < size <= MAX_BLOB_BYTES:
            raise CorruptBatch(f"scan {sha} has an impossible size ({size} bytes)")
        chunk = self.settings.blob_chunk_bytes
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            part.unlink()
            offset = 0
        with part.open("ab") as out:
            while offset < size:
                self._check_stop()
                piece = self.peer.get_blob(sha, offset, min(chunk, size - offset))
                if not piece:
                    break  # shorter than its op says: the hash check tells
                out.write(piece)
                out.flush()
                offset += len(piece)
        return part.read_bytes()

    def _comparison_due(self) -> bool:
        """Anti-entropy hashes every op of the scope at both ends (O(history): seconds of CPU at
        100,000 ops on a small box, in the web server's process): it is a safety net under the
        cursor, not the way changes travel, so it runs every ``digest_interval_s`` (0: every
        round), and on the next round after a mismatch or a clock that went back."""
        interval_ms = self.settings.digest_interval_s * 1000
        last = SyncState.load(self.replica).compared_at_ms
        now = self.node.clock.wall_ms()
        return interval_ms == 0 or not last or not 0 <= now - last < interval_ms

    def _anti_entropy(self) -> None:
        if not self._comparison_due():
            return
        for _ in range(3):
            self._check_stop()
            if self.replica.vector()[self.me] > self.pushed_head:
                return  # a clerk wrote meanwhile: no use asking the city to hash its side
            reply = self.peer.digest()
            if reply.feed_head > self.cursor:
                self._pull()  # ops arrived at the city meanwhile: catch up, then compare
                continue
            if self.replica.vector()[self.me] > self.pushed_head:
                return  # a clerk wrote meanwhile: the next round compares
            mine = self.replica.scope_digest(self.keys)
            self.result.digest_match = mine == reply.scope_digest
            if self.result.digest_match:
                SyncState.set_compared_at(self.replica, self.node.clock.wall_ms())
            else:
                SyncState.set_compared_at(self.replica, 0)
                log.warning(
                    "scope digests differ (cursor %d, city feed head %d): full re-exchange next round",
                    self.cursor,
                    reply.feed_head,
                )
                SyncState.set_feed_cursor(self.replica, 0)
                self.problem = self.problem or MISMATCH
            return


def _install_lan_cert(node: Node, chain: bytes) -> None:
    """A renewed HTTPS certificate for the office LAN, from the city (edge.lantls): installed
    for the server's next start; one that does not check out is logged and the round goes on."""
    try:
        if install_renewed(node.data_dir, chain):
            log.warning(
                "a renewed HTTPS certificate from the city is installed: restart the box's server to use it"
            )
    except (ValueError, OSError) as exc:
        log.error("the city sent an HTTPS certificate this box does not accept: %s", exc)


_round_locks: weakref.WeakKeyDictionary[Node, threading.Lock] = weakref.WeakKeyDictionary()
_round_locks_guard = threading.Lock()


def _round_lock(node: Node) -> threading.Lock:
    with _round_locks_guard:
        return _round_locks.setdefault(node, threading.Lock())


def sync_once(
    node: Node, peer: Peer, settings: Settings, *, stop: Callable[[], bool] | None = None
) -> RoundResult:
    """One round with the city through ``peer``; recorded in the attempt log whatever happens.

    Typed errors (sync refusals, a cut link, a full disk) end the round and are returned in the
    result; anything else is a bug: it is recorded too, then raised. Rounds of one node never
    overlap in a process (the loop and a "Sync now" wait for each other)."""
    with _round_lock(node):
        return _sync_once(node, peer, settings, stop)


def _sync_once(node: Node, peer: Peer, settings: Settings, stop: Callable[[], bool] | None) -> RoundResult:
    started = time.monotonic()
    offset_before = node.clock.offset_ms
    at_ms = node.clock.wall_ms()
    sent_before, received_before = _bytes_of(peer)
    step: _Round | None = None
    result = RoundResult()
    failure: BaseException | None = None
    try:
        step = _Round(node, peer, settings, stop)
        result = step.result
        step.run()
    except (SyncError, OSError, sqlite3.Error) as exc:
        failure = exc
    except Exception as exc:
        failure = exc
        log.exception("sync round failed unexpectedly")
    if step is not None:
        result.entities = sorted(step.entities)
    sent, received = _bytes_of(peer)
    result.bytes_sent, result.bytes_received = sent - sent_before, received - received_before
    result.duration_ms = int((time.monotonic() - started) * 1000)
    moved = result.ops_sent or result.ops_received or result.blobs_sent or result.blobs_received
    if _is_refusal(failure):
        assert isinstance(failure, SyncError)
        # Either the city refused this box (revoked, out of scope …) or this box refused what came
        # (a batch that does not verify): both are for the audit log.
        node.audit.record(
            "sync_refused", actor=node.config.central_url, code=failure.code, message=failure.message
        )
    if failure is not None:
        result.error, result.retryable = explain(failure)
        result.detail = str(failure) or failure.__class__.__name__
        result.outcome = attempts.Outcome.PARTIAL if moved else attempts.Outcome.FAILED
    elif step is not None and step.problem is not None:
        result.error, result.retryable, result.outcome = step.problem, True, attempts.Outcome.PARTIAL
    else:
        result.outcome, result.retryable = attempts.Outcome.OK, True
    # The calibration moved the clock: the round started at that corrected time.
    at_ms += node.clock.offset_ms - offset_before
    _record(node, result, at_ms)
    if failure is not None and not isinstance(failure, SyncError | OSError | sqlite3.Error):
        raise failure
    return result


def _record(node: Node, result: RoundResult, at_ms: int) -> None:
    attempt = protocol.attempt(
        CHANNEL,
        at_ms,
        result.outcome,
        ops_sent=result.ops_sent,
        ops_received=result.ops_received,
        bytes_sent=result.bytes_sent,
        bytes_received=result.bytes_received,
        duration_ms=result.duration_ms,
        error=result.error,
        entities=result.entities,
        acks=result.acks,
    )
    try:
        result.record_id = protocol.record(node, attempt)
        detail = None if result.error is None else f"{result.error} ({result.detail or ''})"
        SyncState.set_last_error(node.replica, detail)
    except (OSError, sqlite3.Error) as exc:
        if is_disk_error(exc):  # a full or read-only disk: the technician needs the line, not the stack
            log.error("could not record the sync attempt: %s", exc)
        else:
            log.exception("could not record the sync attempt")
    log.info("sync with the city: %s", result.summary())


def reference_skew_ms(node: Node) -> int | None:
    """How far this box's own clock was from the city's at the last hello (positive: behind);
    None before the first hello. For :func:`edge.clockcheck.check`'s ``reference_skew_ms``."""
    return SyncState.load(node.replica).clock_drift_ms


def syncs_with_city(node: Node) -> bool:
    """An edge made from a node file: it knows the city's address and key."""
    config = node.config
    return config.role == "edge" and bool(config.central_url) and bool(config.central_key)


def http_peer(node: Node) -> Peer:
    """The city over HTTPS, its certificate key checked against the node's ``tls_pin`` (the
    system's CA store without one); plain ``http://`` only when node.json says
    ``insecure_lan_test`` (a refused link is a failed round, recorded like any other)."""
    config = node.config
    if not config.central_url:
        raise NotConfigured("this node has no central_url")
    return HttpPeer(
        config.central_url,
        node.identity,
        node.clock,
        timeout=PEER_TIMEOUT_S,
        tls_pin=config.tls_pin,
        allow_plain_http=config.insecure_lan_test,
    )


def close_peer(peer: Peer | None) -> None:
    closer = getattr(peer, "close", None)
    if callable(closer):
        closer()


PeerFactory = Callable[[Node], Peer]


def run_round(node: Node, settings: Settings, factory: PeerFactory = http_peer) -> RoundResult:
    """One round on a fresh peer (the shell, a "Sync now" without a background loop)."""
    peer = factory(node)
    try:
        return sync_once(node, peer, settings)
    finally:
        close_peer(peer)
