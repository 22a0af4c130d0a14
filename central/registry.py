"""Registering and revoking nodes: who may sync with the city, under which key.

``add_node`` makes a new node's key pair, registers the public half (the city replica trusts
it; fleet.db keeps the registration and the city's signed certificate of it) and returns the
node file the commune's box is made from (``motcua edge init --node FILE``). The node file holds
the node's PRIVATE key: it is written with mode 0600 and belongs on the box only.

``revoke_node`` refuses the node's ops after those the city already holds, and every request of
the node from its next one on; the re-issued certificate tells the edges.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from central.city import City
from central.fleet import Registration
from edge.errors import ConfigError
from schema.units import CENTRE, COMMUNE, DEPARTMENT, SPECIAL_ZONE, WARD, province_units
from sync import wire
from sync.identity import Identity
from sync.transport import check_pin

NODE_KINDS = frozenset({COMMUNE, WARD, SPECIAL_ZONE, DEPARTMENT, CENTRE})


@dataclass(frozen=True)
class NewNode:
    identity: Identity
    registration: Registration
    node_file: dict[str, Any]


def check_unit(city: City, unit: str) -> None:
    units = {u.code: u for u in province_units(city.province)}
    found = units.get(unit.strip())
    if found is None:
        raise ConfigError(f"unit {unit!r} is not a unit of province {city.province}")
    if found.kind not in NODE_KINDS:
        raise ConfigError(
            f"unit {unit} is a {found.kind}: nodes serve communes, wards, special zones and departments"
        )


def add_node(
    city: City,
    unit: str,
    central_url: str,
    *,
    tls_pin: str | None = None,
    insecure_lan_test: bool = False,
) -> NewNode:
    """Register a node of ``unit``. ``tls_pin``: the pin of the city's TLS certificate key the
    box will check (:func:`sync.transport.spki_pin`); ``insecure_lan_test``: let the box sync over
    plain ``http://`` (tests and the demo only: a box refuses it otherwise)."""
    unit = unit.strip()
    check_unit(city, unit)
    if not central_url.startswith(("http://", "https://")):
        raise ConfigError(f"the central URL must start with http:// or https://, not {central_url!r}")
    if tls_pin is not None:
        try:
            tls_pin = check_pin(tls_pin)
        except ValueError as exc:
            raise ConfigError(f"--tls-pin: {exc}") from exc
    identity = Identity.generate(unit)
    now = city.node.clock.wall_ms()
    cert = wire.issue_cert(city.node.identity, identity.node, unit, identity.public_raw, now, None)
    city.node.replica.trust(identity.node, identity.public_raw)
    city.fleet.register(cert)
    registration = city.fleet.registration(identity.node)
    assert registration is not None
    node_file = {
        "node": identity.node,
        "unit": unit,
        "province": city.province,
        "private_key": identity.private_bytes().hex(),
        "central_url": central_url.rstrip("/"),
        "central_key": city.node.identity.public_raw.hex(),
        "central_node": city.node.identity.node,
        "tls_pin": tls_pin,
        "insecure_lan_test": insecure_lan_test,
    }
    return NewNode(identity, registration, node_file)


def write_node_file(path: str | Path, node_file: dict[str, Any]) -> None:
    """Write a node file readable by its owner only; refuse to overwrite one."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{target} already exists; refusing to overwrite a node file") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(node_file, out, indent=2)
        out.write("\n")


def revoke_node(city: City, node: str) -> Registration:
    registration = city.fleet.registration(node)
    if registration is None:
        raise ConfigError(f"no node {node} is registered here")
    if registration.revoked:
        return registration
    after = city.node.replica.revoke(node)
    now = city.node.clock.wall_ms()
    cert = wire.issue_cert(
        city.node.identity, node, registration.unit, registration.public_key, now, revoked_after=after
    )
    city.fleet.mark_revoked(node, now, after, cert)
    revoked = city.fleet.registration(node)
    assert revoked is not None
    return revoked
