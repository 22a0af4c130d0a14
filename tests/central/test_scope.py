"""The write scope as a pure function: which ops an edge of a unit may author."""

from __future__ import annotations

import pytest

from central.compat import dialect
from central.scope import check_batch, dossier_units
from sync import wire
from sync.ops import Op

A, B, C = "31135", "31120", "31150"


def op(kind: str, entity: str, action: str, payload: dict | None = None, seq: int = 1) -> Op:
    return Op(f"{A}-0123456789abcdef", seq, 1, kind, entity, action, payload or {})


def dossier(receiving: str, handling: str, *transfers: str) -> dict:
    steps = [{"handling_unit": handling}] + [{"handling_unit": unit} for unit in transfers]
    return {
        "_created": True,
        "receiving_unit": receiving,
        "handling_unit": transfers[-1] if transfers else handling,
        "steps": steps,
    }


def test_a_unit_creates_the_dossiers_it_receives_only():
    check_batch([op("dossier", "d1", "create", {"receiving_unit": A, "handling_unit": B})], A, {})
    with pytest.raises(wire.ScopeViolation):
        check_batch([op("dossier", "d1", "create", {"receiving_unit": B, "handling_unit": B})], A, {})


def test_a_dossier_created_earlier_in_the_batch_is_in_scope():
    ops = [
        op("dossier", "d1", "create", {"receiving_unit": A, "handling_unit": A}),
        op("dossier", "d1", "transition", {"to": 2}, seq=2),
    ]
    check_batch(ops, A, {})


def test_ops_on_a_dossier_the_unit_never_held_are_refused():
    with pytest.raises(wire.ScopeViolation, match="neither received nor handled"):
        check_batch([op("dossier", "d1", "transition", {"to": 2})], A, {("dossier", "d1"): dossier(B, C)})
    with pytest.raises(wire.ScopeViolation):
        check_batch([op("dossier", "d9", "set", {"fee": 1})], A, {})


def test_a_unit_that_handled_a_dossier_once_may_still_write_to_it():
    """Units only grow: a concurrent transfer away never locks an edge out (the fold decides)."""
    state = dossier(B, A, C)
    assert dossier_units(state) == {A, B, C}
    check_batch([op("dossier", "d1", "transition", {"to": 2})], A, {("dossier", "d1"): state})


def test_re_creating_another_units_dossier_is_refused():
    with pytest.raises(wire.ScopeViolation, match="re-creates"):
        check_batch(
            [op("dossier", "d1", "create", {"receiving_unit": A, "handling_unit": A})],
            A,
            {("dossier", "d1"): dossier(B, B)},
        )


def test_accounts_password_changes_of_the_own_unit_only():
    account = {"_created": True, "unit": A}
    check_batch([op("account", "u", "set", {"password_hash": "h"})], A, {("account", "u"): account})
    for bad in (
        op("account", "u", "set", {"password_hash": "h", "role": "admin"}),
        op("account", "u", "create", {"username": "u", "unit": A}),
    ):
        with pytest.raises(wire.ScopeViolation):
            check_batch([bad], A, {("account", "u"): account})
    with pytest.raises(wire.ScopeViolation):
        check_batch([op("account", "u", "set", {"password_hash": "h"})], A, {("account", "u"): {"unit": B}})
    with pytest.raises(wire.ScopeViolation):
        check_batch([op("account", "u", "set", {"password_hash": "h"})], A, {})


@pytest.mark.parametrize("kind", ["unit", "procedure", "mystery"])
def test_reference_data_and_unknown_kinds_are_the_citys(kind):
    with pytest.raises(wire.ScopeViolation):
        check_batch([op(kind, "x", "upsert", {"name": "x"})], A, {})


def test_one_bad_op_refuses_the_whole_batch():
    ops = [
        op("dossier", "d1", "create", {"receiving_unit": A, "handling_unit": A}),
        op("unit", A, "upsert", {"name": "x"}, seq=2),
    ]
    with pytest.raises(wire.ScopeViolation):
        check_batch(ops, A, {})


def test_only_served_protocol_versions_have_a_dialect():
    assert dialect(wire.PROTOCOL).version == wire.PROTOCOL
    with pytest.raises(wire.ProtocolMismatch):
        dialect(wire.PROTOCOL + 1)
