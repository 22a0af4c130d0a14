"""The sync protocol's messages, request signatures and node certificates (protocol 2).

Protocol 2 added ``Hello.oldest_waiting_ms`` (how long the oldest change has waited at the
edge) and ``Hello.certs_since_ms`` (only newer certificates in the reply). A hub serves
protocols 1 and 2: ``central/compat.py`` translates protocol 1's messages.

Every request from a node carries, in headers, its node id, the protocol version, a timestamp,
a nonce and an Ed25519 signature over (method, path, SHA-256 of the body, timestamp, nonce):
the hub checks the key is registered and not revoked, the time is within a window, and the
nonce was not seen before (:func:`verify_request`).

The hub vouches for node keys with :class:`Cert` s signed by the city key, so an edge that
trusts only the city key can verify ops forwarded from any other commune.

Bodies are msgpack (batches inside stay zstd-compressed bytes, verified by the replica).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from typing import Annotated, TypeVar

import msgspec

from sync.errors import BadSignature, CorruptBatch, SyncError
from sync.identity import Identity, check_binding, verify
from sync.restamp import MAX_GIVE_UP

PROTOCOL = 2
SUPPORTED = frozenset({1, 2})
"""Protocol versions a hub serves (the current one and, after an upgrade, the one before)."""
WINDOW_MS = 5 * 60 * 1000
"""How far a request's timestamp may be from the hub's clock (also the nonce memory)."""

Count = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
"""A seq, cursor, count or time in ms from a node: never negative, and within SQLite's INTEGER
(a larger number would fail where the hub stores it, not where it is read)."""
Millis = Annotated[int, msgspec.Meta(ge=0, le=(1 << 47) - 1)]
"""A wall-clock time in ms the hub tells a node: one an HLC stamp can hold (until year 6429),
so a damaged reply cannot set a box's clock where its next stamp would overflow."""
Leaf = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
"""A Merkle leaf hash (SHA-256 of an op's bytes)."""
Drift = Annotated[int, msgspec.Meta(ge=-(1 << 62), le=1 << 62)]
"""A difference of two clocks in ms, stored by the node as an SQLite INTEGER."""

H_PROTOCOL, H_NODE, H_TIME, H_NONCE, H_SIGNATURE = (
    "x-motcua-protocol",
    "x-motcua-node",
    "x-motcua-time",
    "x-motcua-nonce",
    "x-motcua-signature",
)


class StaleRequest(SyncError):
    status = 401
    code = "stale_request"


class ReplayedRequest(SyncError):
    status = 401
    code = "replayed_request"


class ProtocolMismatch(SyncError):
    status = 426
    code = "protocol_version"


class ScopeViolation(SyncError):
    status = 403
    code = "outside_write_scope"


# --- messages -----------------------------------------------------------------------------------


class Cert(msgspec.Struct, array_like=True, frozen=True):
    """The city's word that ``public_key`` speaks for ``node`` of ``unit``."""

    node: str
    unit: str
    public_key: bytes
    issued_ms: int
    revoked_after: int | None = None
    """Ops of this node after this seq are refused (None: not revoked)."""
    signature: bytes = b""

    def message(self) -> bytes:
        return msgspec.msgpack.encode(
            [b"motcua-cert/1", self.node, self.unit, self.public_key, self.issued_ms, self.revoked_after]
        )


class Hello(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """First message of a sync round: who I am, what I hold, how I am."""

    software: str
    head: Count
    """The sender's own highest seq."""
    cursor: Count
    """The sender's position in the hub's feed."""
    wall_ms: Count
    """The sender's uncorrected wall clock."""
    backup_age_s: Count | None = None
    pending_blobs: Count = 0
    last_error: str | None = None
    oldest_waiting_ms: Count | None = None
    """Protocol 2: when the oldest of the sender's own changes the hub lacks was made."""
    certs_since_ms: Count = 0
    """Protocol 2: the newest certificate the sender already holds (issue time); the hub sends
    only newer ones, so a hello stays small in a province of hundreds of boxes."""
    give_up: Annotated[list[tuple[Count, Leaf]], msgspec.Meta(max_length=MAX_GIVE_UP)] = []
    """(seq, leaf hash) of the sender's own op bodies it gives up before re-stamping them
    (decision 0008, :mod:`sync.correction`); empty in every round that corrects nothing."""


class HelloReply(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    time_ms: Millis
    """The hub's clock: the edge calibrates against it."""
    have: Count
    """The hub's highest contiguous seq of the sender's ops."""
    feed_head: Count
    drift_ms: Drift
    """hub time - sender's wall clock at receipt (positive: the sender is behind)."""
    certs: list[Cert] = []
    protocol: int = PROTOCOL
    tls_cert: bytes = b""
    """A renewed TLS certificate chain (PEM) for the sender's own server, when the hub has one
    for it; empty otherwise. The sender checks it against its own key and CA before using it."""
    given_up: bool = False
    """The hub recorded the hello's ``give_up`` list, for the seqs after ``have`` (read in the
    same transaction): it refuses those bodies from now on. A hub that predates the list
    answers False, and the sender re-stamps nothing."""


class Ack(msgspec.Struct, array_like=True, frozen=True):
    """The hub's signed receipt of a pushed batch: proof the ops arrived."""

    node: str
    have: int
    batch_sha256: bytes
    at_ms: int
    signature: bytes = b""

    def message(self) -> bytes:
        return msgspec.msgpack.encode([b"motcua-ack/1", self.node, self.have, self.batch_sha256, self.at_ms])


class PullRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    cursor: Count
    max_ops: Count = 2000


class PullReply(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    cursor: Count
    done: bool
    batches: list[bytes]
    """Encoded batches (zstd), merged in order."""
    certs: list[Cert] = []
    blobs: list[str] = []
    """sha256 of attachments referenced by these ops (the edge fetches those it lacks)."""


class TimeReply(msgspec.Struct, frozen=True):
    """The hub's clock, asked before anything is signed: a box whose clock reads 2000 learns the
    offset to sign its requests with, so its first signed request is not refused as stale.

    A box sends a fresh nonce (``?nonce=`` hex) and the city signs the reply with its key over
    the nonce, the time and the protocols (:func:`check_time`): something on the path can
    neither set a box's clock nor replay an old answer. A box of protocol 1 sends none and gets
    the unsigned reply it knows."""

    time_ms: Millis
    protocols: list[int]
    nonce: bytes = b""
    signature: bytes = b""

    def message(self) -> bytes:
        return b"motcua-time/1\n" + msgspec.msgpack.encode([self.nonce, self.time_ms, self.protocols])


class DigestReply(msgspec.Struct, frozen=True):
    scope_digest: bytes
    feed_head: int


_encoder = msgspec.msgpack.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


T = TypeVar("T")


def decode(data: bytes, kind: type[T]) -> T:
    try:
        return msgspec.msgpack.decode(data, type=kind)
    # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CorruptBatch(f"malformed {kind.__name__}: {exc}") from exc


# --- certificates and acknowledgements ----------------------------------------------------------


def issue_cert(
    city: Identity, node: str, unit: str, public_key: bytes, issued_ms: int, revoked_after: int | None
) -> Cert:
    check_binding(node, public_key)
    unsigned = Cert(node, unit, public_key, issued_ms, revoked_after)
    return msgspec.structs.replace(unsigned, signature=city.sign(unsigned.message()))


def check_cert(cert: Cert, city_key: bytes) -> Cert:
    check_binding(cert.node, cert.public_key)
    verify(city_key, cert.signature, cert.message())
    return cert


def sign_ack(city: Identity, node: str, have: int, batch: bytes, at_ms: int) -> Ack:
    unsigned = Ack(node, have, hashlib.sha256(batch).digest(), at_ms)
    return msgspec.structs.replace(unsigned, signature=city.sign(unsigned.message()))


def check_ack(ack: Ack, city_key: bytes) -> Ack:
    verify(city_key, ack.signature, ack.message())
    return ack


TIME_NONCE_BYTES = 16


def sign_time(city: Identity, time_ms: int, protocols: list[int], nonce: bytes) -> TimeReply:
    unsigned = TimeReply(time_ms, protocols, nonce)
    return msgspec.structs.replace(unsigned, signature=city.sign(unsigned.message()))


def check_time(reply: TimeReply, city_key: bytes, nonce: bytes) -> TimeReply:
    """The reply, if the city key signed it for this ``nonce``; BadSignature otherwise (an
    unsigned reply, another box's or an old one replayed, a changed time)."""
    if reply.nonce != nonce:
        raise BadSignature("the city's time reply does not answer this box's nonce")
    verify(city_key, reply.signature, reply.message())
    return reply


# --- signed requests ----------------------------------------------------------------------------


def _request_message(method: str, path: str, body: bytes, time_ms: int, nonce: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"motcua-req/1\n{method.upper()}\n{path}\n{digest}\n{time_ms}\n{nonce}".encode()


def sign_request(identity: Identity, method: str, path: str, body: bytes, time_ms: int) -> dict[str, str]:
    nonce = secrets.token_hex(16)
    signature = identity.sign(_request_message(method, path, body, time_ms, nonce))
    return {
        H_PROTOCOL: str(PROTOCOL),
        H_NODE: identity.node,
        H_TIME: str(time_ms),
        H_NONCE: nonce,
        H_SIGNATURE: base64.urlsafe_b64encode(signature).decode(),
    }


class NonceBook:
    """Nonces seen within the window; a nonce seen twice is a replay. In memory: a restart of
    the hub forgets them, but the timestamp window still bounds a replay to WINDOW_MS."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def use(self, node: str, nonce: str, now_ms: int) -> None:
        if len(self._seen) > 100_000 or (self._seen and len(self._seen) % 1000 == 0):
            self._seen = {k: t for k, t in self._seen.items() if now_ms - t <= WINDOW_MS}
        key = f"{node}:{nonce}"
        if key in self._seen:
            raise ReplayedRequest("this request was already received once (replay refused)")
        self._seen[key] = now_ms


def _number(text: str) -> int | None:
    """A header's whole number, or None. ASCII digits only: str.isdigit() also takes "²",
    which int() refuses, and a header may be any latin-1 text."""
    if not text or len(text) > 20 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now_ms: int,
    key_of: Callable[[str], bytes],
    nonces: NonceBook,
) -> str:
    """The node that signed this request; raises a typed error for anything else.

    ``key_of(node)`` returns the registered key or raises UnknownNode / RevokedNode."""
    version = headers.get(H_PROTOCOL, "")
    if _number(version) not in SUPPORTED:
        raise ProtocolMismatch(
            f"protocol version {version or 'none'} is not served here "
            f"(serving {sorted(SUPPORTED)}): upgrade motcua"
        )
    node = headers.get(H_NODE, "")
    time_text = headers.get(H_TIME, "")
    nonce = headers.get(H_NONCE, "")
    time_ms = _number(time_text)
    if not node or time_ms is None or not (16 <= len(nonce) <= 64):
        raise BadSignature("the request is not signed")
    if abs(now_ms - time_ms) > WINDOW_MS:
        raise StaleRequest(
            f"the request's time is {abs(now_ms - time_ms) // 1000} s away from the city's clock; "
            "check the box's clock"
        )
    try:
        signature = base64.urlsafe_b64decode(headers.get(H_SIGNATURE, "").encode())
    except ValueError as exc:
        raise BadSignature("the request's signature is malformed") from exc
    verify(key_of(node), signature, _request_message(method, path, body, time_ms, nonce))
    nonces.use(node, nonce, now_ms)
    return node
