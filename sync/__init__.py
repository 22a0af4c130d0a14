"""motcua.sync: a signed, CRDT-like change log on SQLite.

Generic: it knows entity kinds, op kinds and reducers, never dossiers. The domain hands it
:class:`~sync.fold.Kind` objects (pure reducers) and optional projectors; everything else —
op encoding, hybrid logical clocks, signatures, version vectors, merge — lives here.
"""

from sync.clock import Clock, Stamp
from sync.errors import (
    ClockDriftError,
    CorruptBatch,
    EquivocationError,
    MigrationError,
    SchemaTooNew,
    SyncError,
    UnknownKind,
    UnknownNode,
    VerificationError,
)
from sync.fold import Conflict, Kind, Rejected, fold, lww, state_machine
from sync.identity import Identity, node_id_for
from sync.ops import Op
from sync.vector import Vector

__all__ = [
    "Clock",
    "ClockDriftError",
    "Conflict",
    "CorruptBatch",
    "EquivocationError",
    "Identity",
    "Kind",
    "MigrationError",
    "Op",
    "Rejected",
    "SchemaTooNew",
    "Stamp",
    "SyncError",
    "UnknownKind",
    "UnknownNode",
    "Vector",
    "VerificationError",
    "fold",
    "lww",
    "node_id_for",
    "state_machine",
]
