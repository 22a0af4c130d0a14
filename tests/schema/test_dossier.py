from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import openapi, receipt
from schema import catalogue, fields, status
from schema.dossier import (
    APPLICANT_TYPES,
    CHANNELS,
    DOCUMENT_FORMS,
    ApplicantType,
    Channel,
    Document,
    DocumentForm,
    Draft,
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
