"""Node identity: an Ed25519 key pair and the node id derived from it.

A node id is ``<unit code>-<fingerprint>``, the fingerprint being the first 16 hex digits of
SHA-256 over the raw public key, so an id names both where a node works and which key speaks
for it (:func:`check_binding`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sync.errors import BadSignature, UnknownNode

FINGERPRINT_HEX = 16


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def fingerprint(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:FINGERPRINT_HEX]


def node_id_for(unit: str, public_raw: bytes) -> str:
    if not unit:
        raise ValueError("unit code must not be empty")
    return f"{unit}-{fingerprint(public_raw)}"


def check_binding(node: str, public_raw: bytes) -> None:
    """Refuse a key that is not the one the node id was derived from."""
    if not node.endswith("-" + fingerprint(public_raw)):
        raise UnknownNode(f"key fingerprint does not match node id {node}")


def unit_of(node: str) -> str:
    return node.rsplit("-", 1)[0]


def verify(public_raw: bytes, signature: bytes, message: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


@dataclass(frozen=True)
class Identity:
    """A node's own key pair and id. The private key never leaves the node unencrypted."""

    node: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, unit: str) -> Identity:
        private = Ed25519PrivateKey.generate()
        return cls(node_id_for(unit, raw_public(private.public_key())), private)

    @classmethod
    def from_private_bytes(cls, unit: str, raw: bytes) -> Identity:
        private = Ed25519PrivateKey.from_private_bytes(raw)
        return cls(node_id_for(unit, raw_public(private.public_key())), private)

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key: for the node's key file only (mode 0600 or encrypted)."""
        return self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_raw(self) -> bytes:
        return raw_public(self.private.public_key())

    @property
    def unit(self) -> str:
        return unit_of(self.node)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)
