"""Node identity: the id names the key that speaks for it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import BadSignature, UnknownNode
from sync.identity import Identity, check_binding, fingerprint, node_id_for, unit_of, verify

UNITS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@settings(max_examples=25)
@given(UNITS, st.binary(max_size=200))
def test_sign_verify_round_trip(unit: str, message: bytes) -> None:
    ident = Identity.generate(unit)
    assert ident.unit == unit
    assert unit_of(ident.node) == unit
    assert ident.node == f"{unit}-{fingerprint(ident.public_raw)}"
    assert len(ident.node) == len(unit) + 17
    verify(ident.public_raw, ident.sign(message), message)
    check_binding(ident.node, ident.public_raw)


def test_private_key_round_trip_gives_the_same_node() -> None:
    ident = Identity.generate("u1")
    raw = ident.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    again = Identity.from_private_bytes("u1", raw)
    assert again.node == ident.node
    assert again.public_raw == ident.public_raw


def test_signature_of_another_key_or_message_does_not_verify() -> None:
    a, b = Identity.generate("u1"), Identity.generate("u1")
    assert a.node != b.node
    sig = a.sign(b"hello")
    with pytest.raises(BadSignature):
        verify(b.public_raw, sig, b"hello")
    with pytest.raises(BadSignature):
        verify(a.public_raw, sig, b"hellO")
    with pytest.raises(BadSignature):
        verify(b"short", sig, b"hello")


def test_binding_refuses_a_key_that_is_not_the_ids() -> None:
    a, b = Identity.generate("u1"), Identity.generate("u1")
    with pytest.raises(UnknownNode):
        check_binding(a.node, b.public_raw)


def test_empty_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="unit"):
        node_id_for("", b"\x00" * 32)
