"""Typed errors of the sync library.

Every error carries an HTTP status (for the one handler that maps errors to responses) and
says whether retrying the same thing later can succeed::

    SyncError                      base; status 500, not retryable
    ├── PeerUnreachable            retryable: no connection (refused, reset) to the peer
    │   ├── PeerTimeout            retryable: the peer did not answer in time
    │   └── PeerUnavailable        retryable: the peer answered that it is in trouble (5xx)
    ├── PeerRefused                fatal: the peer refused the request with a code this side
    │                              does not know (a known code is raised as its own class)
    ├── UntrustedPeer              the peer's TLS certificate is not the pinned or trusted one
    ├── PlainLinkRefused           an http:// address where HTTPS is required
    ├── ClockDriftError            a remote stamp is further ahead than the allowed drift (409)
    ├── SupersededBody             retryable: a body its origin gave up before re-stamping it (409)
    ├── VerificationError          fatal: bytes do not prove what they claim (400)
    │   ├── CorruptBatch           undecodable, truncated or malformed input
    │   ├── BadSignature           signature or Merkle proof does not verify
    │   └── EquivocationError      the same (node, seq) with two different bodies
    ├── UnknownNode                no trusted key for an origin (403)
    ├── RevokedNode                the origin's key was revoked (403)
    ├── UnknownKind                an op names an entity kind nobody registered (400)
    └── MigrationError             a migration failed; nothing of it was applied
        └── SchemaTooNew           the database was written by newer code
"""

from __future__ import annotations


class SyncError(Exception):
    status = 500
    retryable = False
    code = "sync_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PeerUnreachable(SyncError):
    status = 503
    retryable = True
    code = "peer_unreachable"


class PeerTimeout(PeerUnreachable):
    pass


class PeerUnavailable(PeerUnreachable):
    pass


class PeerRefused(SyncError):
    """A 4xx whose error code names no class; ``status`` is the peer's."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UntrustedPeer(SyncError):
    """The peer's TLS certificate does not match the pin (or no trusted CA issued it): whoever
    answered is not known to be the peer, and nothing was sent to it. Retryable: the real peer
    may answer again later (a box on the wrong network, an impostor gone)."""

    status = 495
    retryable = True
    code = "peer_untrusted"


class PlainLinkRefused(SyncError):
    """The peer's address is plain ``http://`` and this side requires HTTPS; nothing was sent."""

    status = 400
    code = "plain_link_refused"


class ClockDriftError(SyncError):
    status = 409
    code = "clock_drift"

    def __init__(self, message: str, drift_ms: int) -> None:
        super().__init__(message)
        self.drift_ms = drift_ms


class SupersededBody(SyncError):
    """An op body its origin gave up, before re-stamping the op, for a corrected one
    (decision 0008): refused for good, not as an equivocation. The origin sends the corrected
    body at its next round."""

    status = 409
    retryable = True
    code = "superseded"


class VerificationError(SyncError):
    status = 400
    code = "verification_failed"


class CorruptBatch(VerificationError):
    code = "corrupt_batch"


class BadSignature(VerificationError):
    code = "bad_signature"


class EquivocationError(VerificationError):
    code = "equivocation"


class UnknownNode(SyncError):
    status = 403
    code = "unknown_node"


class RevokedNode(SyncError):
    status = 403
    code = "revoked_node"


class UnknownKind(SyncError):
    status = 400
    code = "unknown_kind"


class MigrationError(SyncError):
    code = "migration_failed"


class SchemaTooNew(MigrationError):
    code = "schema_too_new"
