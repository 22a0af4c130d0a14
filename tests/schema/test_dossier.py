from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import openapi, receipt
from schema import catalogue, fields, reasons, status
from schema.dossier import (
    APPLICANT_TYPES,
    CHANNELS,
    DOCUMENT_FORMS,
    ApplicantType,
    Channel,
    Created,
    Document,
    DocumentForm,
    Draft,
    Registers,
    max_length,
)


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


documents = st.builds(
    Document,
    name=text(2000),
    form=st.sampled_from(DocumentForm),
    count=st.integers(min_value=1, max_value=99),
)
drafts = st.builds(
    Draft,
    procedure=text(200),
    applicant_type=st.sampled_from(ApplicantType),
    applicant_name=text(200),
    citizen_id=text(200),
    dob=st.none() | st.dates(min_value=date(1900, 1, 1)),
    phone=text(200),
    email=text(200),
    address=text(2000),
    address_unit=text(200),
    documents=st.lists(documents, max_size=5),
    fee=st.none() | st.integers(min_value=0, max_value=10**12),
    channel=st.sampled_from(Channel),
    handling_unit=text(200),
    confirm_clock=st.booleans(),
)


@given(drafts)
def test_a_draft_round_trips_through_json(draft):
    assert msgspec.json.decode(msgspec.json.encode(draft), type=Draft) == draft


@given(drafts)
def test_a_draft_round_trips_through_a_plain_dict(draft):
    # What the API's body is before decoding: the enums are their plain values on the wire.
    plain = msgspec.to_builtins(draft)
    assert plain["channel"] in CHANNELS
    assert plain["applicant_type"] in APPLICANT_TYPES
    assert msgspec.convert(plain, type=Draft) == draft


def test_the_value_tuples_are_the_enums():
    assert DOCUMENT_FORMS == ("original", "copy", "electronic") == tuple(DocumentForm)
    assert APPLICANT_TYPES == ("citizen", "organisation") == tuple(ApplicantType)
    assert CHANNELS == ("direct", "online") == tuple(Channel)


def test_the_status_sets_are_schema_status_own():
    from schema import dossier

    assert dossier.CLOSED is status.CLOSED
    assert dossier.OPEN is status.OPEN
    assert dossier.DEADLINE_RUNNING is status.DEADLINE_RUNNING


def test_the_openapi_document_lists_the_enums_values():
    schemas = openapi.SCHEMAS
    for name in ("DossierCreate", "DossierSummary"):
        assert schemas[name]["properties"]["channel"]["enum"] == list(CHANNELS)
        assert schemas[name]["properties"]["applicant_type"]["enum"] == list(APPLICANT_TYPES)
    for name in ("Document", "ReceivedDocument"):
        assert schemas[name]["properties"]["form"]["enum"] == list(DOCUMENT_FORMS)


def test_the_fold_accepts_exactly_the_enums_values():
    for name, values in (("channel", CHANNELS), ("applicant_type", APPLICANT_TYPES)):
        check = fields.DOSSIER_CHECKS[name]
        assert all(check(value) is None for value in values)
        assert check("fax") is not None
        assert check(None) is not None


def test_the_catalogue_and_the_receipt_know_the_same_forms():
    assert catalogue.FORMS == DOCUMENT_FORMS
    assert receipt.accepted_forms({}) == list(DOCUMENT_FORMS)
    assert receipt.accepted_forms({"original": False}) == ["copy", "electronic"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"procedure": "2.000720", "applicant_name": "An", "channel": "fax"}',
        b'{"procedure": "2.000720", "applicant_name": "An", "fee": -1}',
        b'{"procedure": "2.000720", "applicant_name": "An", "documents": [{"name": "x", "form": "copy", '
        b'"count": 0}]}',
        b'{"procedure": "2.000720", "applicant_name": "' + b"A" * 201 + b'"}',
        b'{"procedure": "2.000720"}',
        b'{"procedure": "2.000720", "applicant_name": "An", "nickname": "An"}',
    ],
)
def test_a_draft_keeps_its_bounds(body):
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=Draft)


def _resolved(schema, defs):
    if "$ref" in schema:
        return {**defs[schema["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    if "anyOf" in schema:
        (other,) = (option for option in schema["anyOf"] if option != {"type": "null"})
        return {**other, **{k: v for k, v in schema.items() if k != "anyOf"}}
    return schema


@pytest.mark.parametrize(("name", "struct"), [("DossierCreate", Draft), ("Document", Document)])
def test_the_openapi_request_schema_is_the_structs_own(name, struct):
    (top,), defs = msgspec.json.schema_components([struct])
    own = defs[top["$ref"].rsplit("/", 1)[1]]
    documented = openapi.SCHEMAS[name]
    assert list(documented["properties"]) == list(own["properties"])
    assert documented["required"] == own.get("required", [])
    for field, schema in own["properties"].items():
        expected = _resolved(schema, defs)
        for key in ("maxLength", "maxItems", "minimum", "maximum", "default", "description", "format"):
            assert documented["properties"][field].get(key) == expected.get(key), (field, key)
        if "enum" in expected:
            assert sorted(documented["properties"][field]["enum"]) == sorted(expected["enum"]), field


def test_the_folds_checks_are_the_records_types():
    """One definition of each stored field: the fold checks exactly Registers' and Created's
    fields, with the defaults and bounds written on them."""
    registers = {field.name: field for field in msgspec.structs.fields(Registers)}
    assert set(fields.DOSSIER_CHECKS) == set(registers)
    assert set(fields.DOSSIER_DEFAULTS) == {n for n, f in registers.items() if not f.required}
    created = {field.name for field in msgspec.structs.fields(Created) if field.required}
    assert set(fields.DOSSIER_CREATE_REQUIRED) == created | {"by", "role"}
    assert set(fields.DOSSIER_CREATE_CHECKS) == {
        field.name for field in msgspec.structs.fields(Created)
    } | set(fields.ACTOR_CHECKS)
    for name, value in fields.DOSSIER_DEFAULTS.items():
        assert fields.DOSSIER_CHECKS[name](value) is None, name


@pytest.mark.parametrize(
    ("name", "longest"),
    [("applicant_name", 120), ("applicant_email", 120), ("applicant_address", 300)],
)
def test_a_records_bound_is_one_number_for_the_fold_and_the_form(name, longest):
    from edge import dossiers

    assert max_length(Registers, name) == longest
    check = fields.DOSSIER_CHECKS[name]
    assert check("A" * longest) is None
    assert check("A" * (longest + 1)) == f"must be at most {longest} characters"
    reason = fields.check_payload({name: "A" * (longest + 1)}, fields.DOSSIER_CHECKS)
    assert reason == f"{name} must be at most {longest} characters"
    template, params = reasons.explain(reason) or ("", {})
    assert template == reasons.BAD_FIELD
    assert reasons.explain_problem(params["problem"]) == (reasons.TOO_LONG, {"limit": str(longest)})
    limits = {
        "applicant_name": dossiers._NAME_LENGTH,
        "applicant_email": dossiers._EMAIL_LENGTH,
        "applicant_address": dossiers._ADDRESS_LENGTH,
    }
    assert limits[name] == longest


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("applicant_name", "   "),
        ("applicant_dob", "2026-02-30"),
        ("applicant_dob", "1990-01-01T00:00:00"),
        ("fee", True),
        ("fee", -1),
        ("documents", ["a"]),
        ("digitised", 1),
        ("channel", "fax"),
        ("portal_code", 5),
    ],
)
def test_the_fold_refuses_what_the_type_refuses(name, value):
    assert fields.DOSSIER_CHECKS[name](value) is not None
