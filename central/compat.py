"""Where protocol versions meet: one :class:`Dialect` per version central serves.

Central serves the versions in :data:`sync.wire.SUPPORTED` (the current one and, after an
upgrade, the one before), so a commune whose box was not updated yet keeps syncing. Requests
name their version in a header; :func:`sync.wire.verify_request` refuses the others with 426.
A dialect turns a request body of its version into today's message and today's reply into
its version's bytes; the hub itself only ever sees current messages. Protocol 1 is today's, so
its dialect is the identity. When protocol 2 comes, protocol 1 gets a subclass here that fills
or drops what changed, and its tests.
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


DIALECTS: dict[int, Dialect] = {wire.PROTOCOL: Dialect()}

missing = wire.SUPPORTED - set(DIALECTS)
if missing:  # pragma: no cover - a release mistake, caught at import by every test
    raise RuntimeError(f"protocol versions {sorted(missing)} are served but have no dialect")


def dialect(version: int) -> Dialect:
    found = DIALECTS.get(version)
    if found is None or version not in wire.SUPPORTED:
        raise wire.ProtocolMismatch(f"protocol version {version} is not served here")
    return found
