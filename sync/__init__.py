"""motcua.sync: a signed, CRDT-like change log on SQLite.

Generic: it knows entity kinds, op kinds and reducers, never dossiers. The domain hands it
:class:`~sync.fold.Kind` objects (pure reducers) and optional projectors; everything else —
op encoding, hybrid logical clocks, signatures, version vectors, merge — lives here.

The names below are sync's public surface: every name another package imports from one of
sync's modules is re-exported here (tests/sync/test_exported_members.py holds this). The
protocol's modules (``attempts``, ``ops``, ``restamp``, ``wire``) are imported as modules.
"""

from sync.attempts import Outcome, latest
from sync.batch import (
    Batch,
    Verified,
    decode_batch,
    decompress,
    encode_batch,
    verify_batch,
    verify_run,
)
from sync.blobs import (
    BlobNotFound,
    BlobStore,
    FileBlobStore,
    check_digest,
    digest_of,
)
from sync.clock import Clock, Stamp
from sync.db import MIGRATIONS, connect, open_side
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
from sync.fold import (
    Conflict,
    Kind,
    Reducer,
    Rejected,
    State,
)
from sync.identity import (
    FINGERPRINT_HEX,
    Identity,
    check_binding,
    fingerprint,
    verify,
)
from sync.migrations import (
    Migration,
    apply,
    current_version,
    from_directory,
)
from sync.ops import Op
from sync.replica import Replica, Writer
from sync.transport import HttpPeer, Peer, check_pin, spki_pin
from sync.wire import ScopeViolation

__all__ = [
    "EVERYWHERE",
    "FINGERPRINT_HEX",
    "MIGRATIONS",
    "BadSignature",
    "Batch",
    "BlobNotFound",
    "BlobStore",
    "Clock",
    "ClockDriftError",
    "Conflict",
    "CorruptBatch",
    "EquivocationError",
    "FileBlobStore",
    "HttpPeer",
    "Identity",
    "Kind",
    "Migration",
    "Op",
    "Outcome",
    "Peer",
    "PeerTimeout",
    "PeerUnavailable",
    "PeerUnreachable",
    "PlainLinkRefused",
    "Reducer",
    "Rejected",
    "Replica",
    "RevokedNode",
    "ScopeViolation",
    "Stamp",
    "State",
    "SupersededBody",
    "SyncError",
    "UnknownNode",
    "UntrustedPeer",
    "VerificationError",
    "Verified",
    "Writer",
    "apply",
    "check_binding",
    "check_digest",
    "check_pin",
    "connect",
    "current_version",
    "decode_batch",
    "decompress",
    "digest_of",
    "encode_batch",
    "fingerprint",
    "from_directory",
    "latest",
    "open_side",
    "spki_pin",
    "verify",
    "verify_batch",
    "verify_run",
]
