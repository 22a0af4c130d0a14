"""Apply a procedure catalogue to a node: one ``procedure``/``upsert`` op per changed procedure.

The whole catalogue goes in one transaction of the replica's local-write API, so a file is
applied entirely or not at all (a power cut mid-import leaves the node as it was). A procedure
whose content already equals the file's writes no op: importing the same file again writes
nothing, and importing next year's catalogue writes only what the ministries changed, so the
sync that carries it to the communes stays small.

Procedures missing from the file are left as they are: a catalogue file adds and updates, it
does not retire procedures (that is a decision, not a side effect of a shorter file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.node import Node
from schema.catalogue import parse_catalogue
from schema.errors import SchemaError
from schema.procedures import ProcedureRecord

PROGRESS_EVERY = 500

Progress = Callable[[int, int], None]
"""Called with (procedures done, procedures in the file) every PROGRESS_EVERY and at the end."""


@dataclass(frozen=True)
class ImportReport:
    imported: int
    """Procedures new or changed: one op each."""
    unchanged: int


def read_catalogue(path: str | Path, fmt: str | None = None) -> list[ProcedureRecord]:
    """Parse a catalogue file; the format is ``fmt`` or the file's suffix (.csv, .json)."""
    file = Path(path)
    kind = fmt or file.suffix.lstrip(".").lower()
    if kind not in ("csv", "json"):
        raise SchemaError(f"{file.name}: cannot tell the format from the name; give --format csv or json")
    return parse_catalogue(file.read_bytes(), kind)


def unchanged(state: dict[str, Any] | None, payload: dict[str, Any]) -> bool:
    """True when the folded state already holds every field of ``payload`` with the same value."""
    if not state or not state.get("_created"):
        return False
    return all(name in state and state[name] == value for name, value in payload.items())


def apply_catalogue(
    node: Node, records: Sequence[ProcedureRecord], progress: Progress | None = None
) -> ImportReport:
    """Upsert every changed procedure in one transaction; see the module docstring."""
    node.require_reference_author("Procedures")
    imported = 0
    with node.replica.write() as w:
        for done, record in enumerate(records, 1):
            payload = record.as_payload()
            if not unchanged(w.state("procedure", record.code), payload):
                w.append("procedure", record.code, "upsert", payload)
                imported += 1
            if progress and (done % PROGRESS_EVERY == 0 or done == len(records)):
                progress(done, len(records))
    return ImportReport(imported, len(records) - imported)
