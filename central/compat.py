"""Where protocol versions meet: one :class:`Dialect` per version central serves.

Central serves the versions in :data:`sync.wire.SUPPORTED` (the current one and, after an
upgrade, the one before), so a commune whose box was not updated yet keeps syncing. Requests
name their version in a header; :func:`sync.wire.verify_request` refuses the others with 426.
A dialect turns a request body of its version into today's message and today's reply into
its version's bytes; the hub itself only ever sees current messages. Protocol 2 is today's, so
its dialect is the identity; protocol 1 (before ``Hello.oldest_waiting_ms``) has its own.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from sync import wire

T = TypeVar("T")


class Dialect:
    version = wire.PROTOCOL

    def decode(self, data: bytes, kind: type[T]) -> T:
        return wire.decode(data, kind)

    def encode(self, message: msgspec.Struct) -> bytes:
        return wire.encode(message)


class HelloV1(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Protocol 1's hello: protocol 2 added ``oldest_waiting_ms``."""

    software: str
    head: wire.Count
    cursor: wire.Count
    wall_ms: wire.Count
    backup_age_s: wire.Count | None = None
    pending_blobs: wire.Count = 0
    last_error: str | None = None


class Protocol1(Dialect):
    """A box one version behind: its hello lacks the age of its oldest waiting change (the
    dashboard shows it as unknown); its replies are today's minus nothing it cannot skip (its
    decoders ignore unknown fields), stamped with its own version."""

    version = 1

    def decode(self, data: bytes, kind: type[T]) -> T:
        if kind is wire.Hello:
            old = wire.decode(data, HelloV1)
            upgraded = wire.Hello(**msgspec.structs.asdict(old), oldest_waiting_ms=None, certs_since_ms=0)
            return upgraded  # type: ignore[return-value]
        return wire.decode(data, kind)

    def encode(self, message: msgspec.Struct) -> bytes:
        if isinstance(message, wire.HelloReply):
            message = msgspec.structs.replace(message, protocol=self.version)
        return wire.encode(message)


DIALECTS: dict[int, Dialect] = {wire.PROTOCOL: Dialect(), 1: Protocol1()}

missing = wire.SUPPORTED - set(DIALECTS)
if missing:  # pragma: no cover - a release mistake, caught at import by every test
    raise RuntimeError(f"protocol versions {sorted(missing)} are served but have no dialect")


def dialect(version: int) -> Dialect:
    found = DIALECTS.get(version)
    if found is None or version not in wire.SUPPORTED:
        raise wire.ProtocolMismatch(f"protocol version {version} is not served here")
    return found
