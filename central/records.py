"""Verifying a commune's transmission record at the city.

A clerk prints, or exports as JSON, the record of every attempt to send a dossier
(``/dossiers/{id}/record.json`` on the box). The city checks that the key that signed the log is
the one it registered for that box, that the chain of records is unbroken, and that every
acknowledgement in it was signed by the city key: the record then proves, without a screenshot,
when the box tried to send the dossier, why it failed, and when the city received it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import msgspec

from central.city import City
from edge.views.sync import records_from_json
from sync import attempts, wire
from sync.errors import BadSignature, CorruptBatch, UnknownNode


@dataclass(frozen=True)
class RecordCheck:
    node: str
    unit: str
    dossier: str
    records: int
    """Records in the chain, all verified."""
    concerning: list[attempts.Record]
    """The attempts that carried the dossier's changes."""
    acks: int
    """Acknowledgements in those attempts, each verified against the city key."""


def verify_record(city: City, document: dict[str, Any]) -> RecordCheck:
    """Raise BadSignature/UnknownNode/CorruptBatch when the record does not hold up."""
    try:
        node = str(document["node"])
        node.encode("utf-8")  # a lone surrogate ("\ud800" in the JSON) is no node id: ValueError
        public_key = base64.b64decode(document["public_key"])
        dossier = str(document["dossier"])
        log = records_from_json(document)
        for record in log:
            # The box hashed each attempt's msgpack: a number past 64 bits cannot be one of them.
            msgspec.msgpack.encode(record.attempt)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CorruptBatch(f"not a transmission record: {exc}") from exc
    registration = city.fleet.registration(node)
    if registration is None:
        raise UnknownNode(f"node {node} is not registered at this city")
    if registration.public_key != public_key:
        raise BadSignature(f"the record is signed by a key the city never registered for {node}")
    count = attempts.verify_chain(log, public_key)
    city_key = city.node.identity.public_raw
    concerning = [r for r in log if dossier in r.attempt.entities]
    acks = 0
    for record in concerning:
        for raw in record.attempt.acks:
            ack = wire.check_ack(wire.decode(raw, wire.Ack), city_key)
            if ack.node != node:
                raise BadSignature(f"record {record.id} carries an acknowledgement for another node")
            acks += 1
    return RecordCheck(node, registration.unit, dossier, count, concerning, acks)
