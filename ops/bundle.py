"""Sneakernet: the sync protocol's signed batches carried in one file on a USB stick.

A bundle is one file::

    MAGIC  zstd( msgpack( Envelope(contents, signature) ) )

``contents`` is the msgpack of :class:`Contents`: who wrote it and for whom, what the sender
believed the receiver held, the encoded batches (each already sealed by its origin), the city's
certificates and acknowledgements, and the attachment blobs the ops reference. ``signature`` is
the sender's Ed25519 signature over ``CONTEXT + sha256(contents)``. A reader checks the signature
before it looks at anything inside, so a tampered or truncated file is refused whole.

Two directions, mirroring a network round (:mod:`edge.syncclient`, :mod:`central.hub`):

- edge -> city: the edge's own ops the city lacks as far as the edge knows. The city imports it
  through the same :class:`~central.hub.Hub` a network push goes through (registered, not
  revoked, signature, write scope; merges are idempotent, so a second import is harmless), but
  checks every batch before merging any. Its signed acknowledgements come back as a small
  city -> edge bundle written next to the imported file (``FILE.ack``).
- city -> edge: the next slices of the node's scope after its feed cursor, like a pull, with
  certificates and the city's latest acknowledgement of the node's ops.

Both sides record the transfer in their attempt logs (channel "bundle" on the edge, endpoints
"bundle" and "bundle_out" in fleet.db).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import zstandard

from central import scope
from central.city import City
from central.fleet import AttemptRow, RequestOutcome
from central.hub import MAX_PULL_OPS, Caller, Counts, Hub, check_sender
from edge import protocol
from edge.node import Node
from edge.syncclient import explain
from edge.syncstate import CENTRAL, SyncState
from sync import attempts, restamp, wire
from sync.batch import Batch, decode_batch, decompress, encode_batch
from sync.blobs import digest_of
from sync.errors import ClockDriftError, CorruptBatch, RevokedNode, SyncError, UnknownNode
from sync.identity import Identity, verify
from sync.ops import Op

MAGIC = b"MOTCUA-BUNDLE/1\n"
CONTEXT = b"motcua-bundle/1"
TO_CITY = "city"
MAX_BUNDLE_BYTES = 2 * 1024 * 1024 * 1024
"""A bundle that decompresses to more than this is refused (a stick holds a few GB at most)."""
PROGRESS_EVERY = 20
"""Bundles with more batches than this report progress every this many batches."""
CHANNEL = "bundle"

Progress = Callable[[str], None]


class WrongBundle(SyncError):
    """A well-formed bundle that is not for this node (another addressee, another city)."""

    status = 400
    code = "bundle_not_for_this_node"


class Superseded(SyncError):
    """A bundle the box wrote before it corrected its clock and re-stamped those ops."""

    status = 409
    code = "bundle_superseded"


class Contents(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    protocol: int
    sender: str
    to: str
    """``TO_CITY`` for an edge's bundle; the node id for the city's."""
    created_ms: wire.Count
    base: wire.Count | None
    """Edge: the seq of its own ops it believed the city held. City: the node's feed cursor.
    None: the bundle carries no ops (a receipt)."""
    head: wire.Count | None
    """Edge: its own highest seq. City: the feed cursor after these ops."""
    batches: list[bytes]
    certs: list[wire.Cert] = []
    acks: list[wire.Ack] = []
    blobs: dict[str, bytes] = {}
    feed_cursor: wire.Count | None = None
    """Edge: its position in the city's feed, so the city's next bundle starts there."""


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    contents: bytes
    signature: bytes


@dataclass
class ExportReport:
    path: Path
    to: str
    base: int
    head: int
    ops: int = 0
    batches: int = 0
    blobs: int = 0
    bytes: int = 0

    def summary(self) -> str:
        return (
            f"wrote {self.path}: {self.ops} ops in {self.batches} batches, {self.blobs} scans, "
            f"{self.bytes} bytes, for {self.to} (after #{self.base}, up to #{self.head})"
        )


@dataclass
class ImportReport:
    sender: str
    ops: int = 0
    applied: int = 0
    duplicates: int = 0
    blobs: int = 0
    acks: list[wire.Ack] = field(default_factory=list)
    have: int | None = None
    """City: its highest contiguous seq of the sender's ops after the import."""
    cursor: int | None = None
    """Edge: its feed cursor after the import."""
    ack_path: Path | None = None
    warning: str | None = None

    def summary(self) -> str:
        line = (
            f"imported bundle of {self.sender}: {self.ops} ops ({self.applied} new, "
            f"{self.duplicates} already held), {self.blobs} scans"
        )
        if self.have is not None:
            line += f"; the city holds this node's ops up to #{self.have}"
        if self.cursor is not None:
            line += f"; feed cursor {self.cursor}"
        if self.acks and self.have is None:
            line += f"; the city confirms ops up to #{max(a.have for a in self.acks)}"
        if self.ack_path is not None:
            line += f"\nreceipt for the box: {self.ack_path}"
        if self.warning:
            line += f"\nwarning: {self.warning}"
        return line


# --- the file --------------------------------------------------------------------------------


def _message(contents: bytes) -> bytes:
    return CONTEXT + hashlib.sha256(contents).digest()


def seal(contents: Contents, identity: Identity) -> bytes:
    """The bundle file's bytes, signed by ``identity``."""
    body = msgspec.msgpack.encode(contents)
    envelope = msgspec.msgpack.encode(Envelope(body, identity.sign(_message(body))))
    return MAGIC + zstandard.ZstdCompressor(level=3, write_checksum=True).compress(envelope)


def open_envelope(data: bytes) -> Envelope:
    """The envelope of a bundle file, not yet verified; CorruptBatch for anything unreadable."""
    if not data.startswith(MAGIC):
        raise CorruptBatch("this file is not a motcua bundle (or its first bytes are damaged)")
    try:
        raw = decompress(data[len(MAGIC) :], MAX_BUNDLE_BYTES, "the file")
    except CorruptBatch as exc:
        # A stick pulled early cuts the file's end: the frame that ends it is missing.
        raise CorruptBatch(f"the bundle is damaged or truncated: {exc}") from exc
    try:
        return msgspec.msgpack.decode(raw, type=Envelope)
    # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CorruptBatch(f"the bundle is damaged or truncated: {exc}") from exc


def claimed_sender(envelope: Envelope) -> Contents:
    """The contents, not yet verified: only to learn whose key verifies them."""
    try:
        return msgspec.msgpack.decode(envelope.contents, type=Contents)
    # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CorruptBatch(f"the bundle's contents do not decode: {exc}") from exc


def check_signature(envelope: Envelope, public_key: bytes) -> None:
    verify(public_key, envelope.signature, _message(envelope.contents))


def write_file(path: Path, data: bytes) -> None:
    """Atomically: a stick pulled mid-write leaves no half bundle under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_since(path: str | Path, key: str) -> int:
    """``--since-vector FILE``: a JSON number, or an object holding ``key`` (a node id for an
    edge's vector, "cursor" at the city)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CorruptBatch(f"{path} is not JSON: {exc}") from exc
    if isinstance(value, dict):
        value = value.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CorruptBatch(f"{path}: expected a number or an object with {key!r}, got {value!r:.80}")
    return value


# --- what batches carry ------------------------------------------------------------------------


def _decode_all(encoded: list[bytes], progress: Progress | None) -> list[Batch]:
    out = []
    for i, data in enumerate(encoded, 1):
        out.append(decode_batch(data))
        _report(progress, len(encoded), i, "batches checked")
    return out


def _check_blobs(blobs: dict[str, bytes]) -> None:
    for sha, data in blobs.items():
        if digest_of(data) != sha:
            raise CorruptBatch(f"scan {sha:.16}… in the bundle does not match its hash")


def _referenced(node: Node, shas: Iterable[str]) -> set[str]:
    wanted = list(shas)
    if not wanted:
        return set()
    with node.reader() as conn:
        rows = conn.execute(
            f"SELECT DISTINCT sha256 FROM attachments WHERE sha256 IN ({','.join('?' * len(wanted))})",
            wanted,
        ).fetchall()
    return {str(row[0]) for row in rows}


def _store_blobs(node: Node, blobs: dict[str, bytes], carried: Iterable[str]) -> int:
    """Keep the scans an op refers to (in this bundle or already merged), none other."""
    keep = set(carried) | _referenced(node, blobs)
    stored = 0
    for sha, data in sorted(blobs.items()):
        if sha in keep and not node.blobs.has(sha):
            node.blobs.put(data)
            stored += 1
    return stored


def _report(progress: Progress | None, total: int, done: int, what: str) -> None:
    if progress is not None and total > PROGRESS_EVERY and (done % PROGRESS_EVERY == 0 or done == total):
        progress(f"  {done}/{total} {what}")


def _blobs_up(node: Node) -> list[str]:
    return list(SyncState.load(node.replica).blobs_up)


# --- at an edge --------------------------------------------------------------------------------


def export_from_edge(node: Node, out: Path, since: int | None = None) -> ExportReport:
    """Write the edge's own ops the city lacks (as far as the edge knows) and their scans."""
    me = node.identity.node
    replica = node.replica
    started = time.monotonic()
    at_ms = node.clock.wall_ms()
    base = replica.peer_vector(CENTRAL)[me] if since is None else since
    batches = list(replica.batches({me: base}, nodes=[me]))
    carried = protocol.carried(batches)
    shas = [*carried.blobs, *_blobs_up(node)]
    blobs = {sha: node.blobs.get(sha) for sha in dict.fromkeys(shas) if node.blobs.has(sha)}
    contents = Contents(
        protocol=wire.PROTOCOL,
        sender=me,
        to=TO_CITY,
        created_ms=at_ms,
        base=base,
        head=replica.vector()[me],
        batches=[encode_batch(batch) for batch in batches],
        blobs=blobs,
        feed_cursor=SyncState.load(replica).feed_cursor,
    )
    data = seal(contents, node.identity)
    write_file(out, data)
    report = ExportReport(out, TO_CITY, base, contents.head or 0, carried.ops, len(batches))
    report.blobs, report.bytes = len(blobs), len(data)
    protocol.record(
        node,
        protocol.attempt(
            CHANNEL,
            at_ms,
            attempts.Outcome.OK,
            ops_sent=report.ops,
            bytes_sent=len(data),
            duration_ms=int((time.monotonic() - started) * 1000),
            entities=carried.entities,
        ),
    )
    return report


def import_at_edge(node: Node, path: Path, progress: Progress | None = None) -> ImportReport:
    """Apply the city's bundle (or receipt) for this node; refused whole unless everything in
    it verifies. Recorded in the attempt log either way."""
    started = time.monotonic()
    at_ms = node.clock.wall_ms()
    data = b""
    report = ImportReport(sender="?")
    error: str | None = None
    try:
        data = path.read_bytes()
        report = _import_at_edge(node, data, progress)
    except BaseException as exc:
        error = explain(exc)[0]
        if isinstance(exc, SyncError):
            sender = report.sender if report.sender != "?" else _claimed_by(data)
            node.audit.record(
                "bundle_refused", actor=sender, path=str(path), code=exc.code, message=exc.message
            )
        raise
    finally:
        protocol.record(
            node,
            protocol.attempt(
                CHANNEL,
                at_ms,
                attempts.Outcome.FAILED if error else attempts.Outcome.OK,
                ops_received=report.applied,
                bytes_received=len(data),
                duration_ms=int((time.monotonic() - started) * 1000),
                error=error,
                acks=report.acks,
            ),
        )
    return report


def _claimed_by(data: bytes) -> str:
    """Who a refused bundle says wrote it (unverified: for the audit log), or "?"."""
    try:
        return claimed_sender(open_envelope(data)).sender[:100]
    except SyncError:
        return "?"


def _import_at_edge(node: Node, data: bytes, progress: Progress | None) -> ImportReport:
    me = node.identity.node
    replica = node.replica
    if not node.config.central_key or not node.config.central_node:
        raise WrongBundle("this box is not set up to sync with a city (no city key)")
    city_key = bytes.fromhex(node.config.central_key)
    envelope = open_envelope(data)
    contents = claimed_sender(envelope)
    if contents.sender != node.config.central_node:
        raise WrongBundle(f"the bundle was written by {contents.sender}, not by this box's city")
    check_signature(envelope, city_key)
    if contents.to != me:
        raise WrongBundle(f"the bundle is for node {contents.to}, not for this box ({me})")

    # Everything is checked before anything is applied.
    certs = {cert.node: cert for cert in protocol.check_certs(contents.certs, city_key)}
    acks = [protocol.check_ack(ack, city_key, me) for ack in contents.acks]
    batches = _decode_all(contents.batches, progress)
    verified = [protocol.verify_with_certs(replica, certs, batch) for batch in batches]
    _check_blobs(contents.blobs)

    # Apply: certificates, then batches in order (each all or nothing), cursor, receipts, scans.
    protocol.apply_certs(replica, me, certs.values())
    report = ImportReport(sender=contents.sender, acks=acks)
    for i, batch in enumerate(batches, 1):
        merged = replica.merge(batch, verified=verified[i - 1])
        report.applied += merged.applied
        report.duplicates += merged.duplicates
        report.ops += protocol.op_count([batch])
        _report(progress, len(batches), i, "batches merged")
    cursor = SyncState.load(replica).feed_cursor
    if contents.base is not None and contents.head is not None:
        if contents.base <= cursor:
            cursor = max(cursor, contents.head)
            SyncState.set_feed_cursor(replica, cursor)
        else:
            report.warning = (
                f"the bundle starts at feed position {contents.base} but this box is at {cursor}: "
                "its ops were merged, the next sync brings what lies between"
            )
    report.cursor = cursor
    protocol.remember_acks(replica, me, acks)
    report.blobs = _store_blobs(node, contents.blobs, protocol.attachments(batches))
    return report


# --- at the city --------------------------------------------------------------------------------


def node_of_unit(city: City, unit: str) -> str:
    """The one live node of a unit (``--unit CODE``)."""
    live = [r.node for r in city.fleet.registrations() if r.unit == unit and not r.revoked]
    if len(live) != 1:
        found = "no live node" if not live else f"{len(live)} live nodes ({', '.join(live)}): use --node"
        raise WrongBundle(f"unit {unit} has {found}")
    return live[0]


def export_from_city(city: City, node_id: str, out: Path, since: int | None = None) -> ExportReport:
    """Write the next slices of a node's scope after its feed cursor (as fleet.db last heard
    it, or ``since``), with certificates and the city's latest receipt of the node's ops."""
    registration = city.fleet.registration(node_id)
    if registration is None:
        raise UnknownNode(f"node {node_id} is not registered with the city")
    started = time.monotonic()
    hub = Hub(city)
    at_ms = hub.now_ms()
    status = city.fleet.status(node_id)
    base = since if since is not None else int(status.cursor or 0) if status else 0
    caller = Caller(node_id, registration.unit, wire.PROTOCOL)
    counts = Counts()
    encoded: list[bytes] = []
    shas: dict[str, None] = {}
    position = base
    while True:
        reply = hub.pull(caller, wire.PullRequest(cursor=position, max_ops=MAX_PULL_OPS), counts)
        encoded.extend(reply.batches)
        shas.update(dict.fromkeys(reply.blobs))
        position = max(position, reply.cursor)
        if reply.done or not reply.batches:
            break
    acks = city.fleet.acks(node_id)[-1:]
    contents = Contents(
        protocol=wire.PROTOCOL,
        sender=city.node.identity.node,
        to=node_id,
        created_ms=at_ms,
        base=base,
        head=position,
        batches=encoded,
        certs=[*city.fleet.certs(), hub.own_cert],
        acks=acks,
        blobs={sha: city.node.blobs.get(sha) for sha in shas if city.node.blobs.has(sha)},
    )
    data = seal(contents, city.node.identity)
    write_file(out, data)
    report = ExportReport(out, node_id, base, position, counts.ops_out, len(encoded), len(contents.blobs))
    report.bytes = len(data)
    city.fleet.record_attempt(
        AttemptRow(
            node=node_id,
            at_ms=at_ms,
            endpoint="bundle_out",
            ops_in=0,
            ops_out=counts.ops_out,
            bytes_in=0,
            bytes_out=len(data),
            duration_ms=int((time.monotonic() - started) * 1000),
            outcome=RequestOutcome.OK,
            error_code=None,
            error=None,
        ),
        contact=False,
    )
    return report


def import_at_city(city: City, path: Path, progress: Progress | None = None) -> ImportReport:
    """Apply an edge's bundle with the network path's checks; every batch is checked before
    any is merged. Recorded in fleet.db like a push; the receipt is written to ``FILE.ack``."""
    started = time.monotonic()
    at_ms = city.node.clock.wall_ms()
    data = b""
    claimed = "?"
    counts = Counts()
    try:
        data = path.read_bytes()
        envelope = open_envelope(data)
        contents = claimed_sender(envelope)
        claimed = contents.sender[:100]
        report = _import_at_city(city, envelope, contents, counts, progress)
    except SyncError as exc:
        _record_at_city(city, claimed, at_ms, started, len(data), counts, exc)
        city.node.audit.record(
            "bundle_refused", actor=claimed, path=str(path), code=exc.code, message=exc.message
        )
        raise
    _record_at_city(city, claimed, at_ms, started, len(data), counts, None)
    receipt = Contents(
        protocol=wire.PROTOCOL,
        sender=city.node.identity.node,
        to=contents.sender,
        created_ms=city.node.clock.wall_ms(),
        base=None,
        head=None,
        batches=[],
        acks=report.acks,
    )
    report.ack_path = path.with_name(path.name + ".ack")
    write_file(report.ack_path, seal(receipt, city.node.identity))
    return report


def _import_at_city(
    city: City, envelope: Envelope, contents: Contents, counts: Counts, progress: Progress | None
) -> ImportReport:
    registration = city.fleet.registration(contents.sender)
    if registration is None:
        raise UnknownNode(f"node {contents.sender} is not registered with the city")
    if registration.revoked:
        raise RevokedNode(f"node {contents.sender} was revoked by the city; its bundles are refused")
    check_signature(envelope, registration.public_key)
    if contents.to not in (TO_CITY, city.node.identity.node):
        raise WrongBundle(f"the bundle is for {contents.to}, not for this city")
    if contents.protocol not in wire.SUPPORTED:
        raise wire.ProtocolMismatch(f"bundle protocol {contents.protocol} is not served here")
    caller = Caller(contents.sender, registration.unit, contents.protocol)
    hub = Hub(city)
    replica = city.node.replica

    # The network path checks one batch at a time; a bundle is refused whole, so every batch is
    # checked (origin, signatures, write scope over all its ops together) before any is merged.
    # Each batch is decoded and verified once: the merges take what was verified here.
    batches = _decode_all(contents.batches, progress)
    counts.ops_in = protocol.op_count(batches)
    for batch in batches:
        check_sender(caller, batch, "bundle")
    verified = [replica.verify(batch) for batch in batches]
    ops = [v.op for checked in verified for v in checked]
    states = {key: replica.state(*key) for key in scope.entities(ops)}
    scope.check_batch(ops, caller.unit, states)
    _check_blobs(contents.blobs)
    _refuse_superseded(city, ops, [(v.op.seq, v.body) for checked in verified for v in checked])
    _refuse_ahead(city, ops)

    report = ImportReport(sender=contents.sender, ops=counts.ops_in)
    before = replica.op_count()
    for i, (data, batch, checked) in enumerate(zip(contents.batches, batches, verified, strict=True), 1):
        report.acks.append(hub.merge_own(caller, data, batch, checked))
        _report(progress, len(batches), i, "batches merged")
    report.applied = replica.op_count() - before
    report.duplicates = report.ops - report.applied
    report.have = replica.vector()[caller.node]
    if contents.base is not None and contents.base > (report.have or 0):
        report.warning = (
            f"the box believed the city held its ops up to #{contents.base}, the city holds #{report.have}: "
            "the next sync (or bundle) sends what lies between"
        )
    report.blobs = _store_blobs(city.node, contents.blobs, protocol.attachments(batches))
    if contents.feed_cursor is not None:
        city.fleet.report(caller.node, have=report.have, cursor=contents.feed_cursor)
    return report


def _refuse_superseded(city: City, ops: list[Op], bodies: list[tuple[int, bytes]]) -> None:
    """A bundle written before its box re-stamped its tail (decision 0008) carries the old
    bodies of ops the city now holds corrected, or that the box gave up in a hello before
    correcting them: refused whole, as superseded, not as an equivocation (the same ops, only
    stamped later)."""
    replica = city.node.replica
    stale = []
    for op in ops:
        held = replica.op(op.node, op.seq)
        if held is not None and held != op and restamp.is_superseded_by(op, held):
            stale.append(op.seq)
    if ops:
        stale = sorted({*stale, *replica.given_up(ops[0].node, bodies)})
    if stale:
        raise Superseded(
            f"the bundle carries {len(stale)} op(s) of node {ops[0].node} (#{min(stale)}..#{max(stale)}) as "
            "they were before the box corrected its clock: superseded by the box's corrected log. Nothing "
            "of it was applied; the box sends the corrected ops at its next sync (or in a new bundle)."
        )


def _refuse_ahead(city: City, ops: list[Op]) -> None:
    """Ops stamped further ahead of the city's clock than the allowed drift: the bundle is refused
    whole here (a push refuses batch by batch), with what to do about it."""
    clock = city.node.clock
    newest = max((op.hlc.wall for op in ops), default=0)
    drift = newest - max(clock.wall_ms(), clock.last.wall)
    if drift > clock.max_drift_ms:
        raise ClockDriftError(
            f"the bundle's changes are stamped {drift // 60_000} min ahead of the city's clock: the box's "
            "clock was ahead when they were made. Nothing of it was applied; once the box syncs with the "
            "city over the network it re-dates them and sends them (or exports a new bundle).",
            drift_ms=drift,
        )


def _record_at_city(
    city: City, node: str, at_ms: int, started: float, size: int, counts: Counts, exc: SyncError | None
) -> None:
    outcome = (
        RequestOutcome.OK
        if exc is None
        else RequestOutcome.REFUSED
        if exc.status < 500
        else RequestOutcome.FAILED
    )
    city.fleet.record_attempt(
        AttemptRow(
            node=node,
            at_ms=at_ms,
            endpoint="bundle",
            ops_in=counts.ops_in,
            ops_out=0,
            bytes_in=size,
            bytes_out=0,
            duration_ms=int((time.monotonic() - started) * 1000),
            outcome=outcome,
            error_code=None if exc is None else exc.code,
            error=None if exc is None else exc.message,
        ),
        contact=False,
    )
    if exc is None and city.fleet.registration(node) is not None:
        city.fleet.report(node, last_ok_ms=at_ms)
