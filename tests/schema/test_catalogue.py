"""Parsing procedure catalogues: records from CSV and JSON, every error with its line or item."""

import json
from pathlib import Path

import pytest

from schema.catalogue import COLUMNS, InvalidCatalogue, parse_catalogue, parse_csv, parse_json
from schema.errors import SchemaError
from schema.procedures import PILOT_PROCEDURES, DocumentComponent

SAMPLES = Path(__file__).resolve().parents[2] / "ops" / "samples"
HEADER = ",".join(COLUMNS)
GOOD = (
    '1.004194,Đăng ký thường trú,"Đăng ký, quản lý cư trú",commune,7,20.000,10000,Kết quả,Luật Cư trú,'
    '"Tờ khai CT01|original+electronic|1|required|Mẫu CT01;Giấy tờ chỗ ở|copy+electronic|;'
    'Giấy tờ nhân thân|copy|2|optional"'
)


def csv_bytes(*rows, header=HEADER):
    return ("\n".join([header, *rows]) + "\n").encode()


def problems(parse, data):
    with pytest.raises(InvalidCatalogue) as caught:
        parse(data)
    return [str(p) for p in caught.value.problems]


def test_a_csv_row_becomes_a_procedure_record():
    [record] = parse_csv(csv_bytes(GOOD))
    assert record.code == "1.004194"
    assert record.sector == "Đăng ký, quản lý cư trú"
    assert record.handling_level == "commune"
    assert record.processing_days == 7
    assert (record.fee, record.fee_online) == (20_000, 10_000)
    assert record.documents == (
        DocumentComponent("Tờ khai CT01", original=True, copy=False, electronic=True, form="Mẫu CT01"),
        DocumentComponent("Giấy tờ chỗ ở", original=False, copy=True, electronic=True),
        DocumentComponent(
            "Giấy tờ nhân thân", original=False, copy=True, electronic=False, count=2, required=False
        ),
    )
    assert record.as_payload()["active"] is True


def test_the_samples_parse_and_csv_and_json_say_the_same():
    from_csv = parse_catalogue((SAMPLES / "catalogue-sample.csv").read_bytes(), "csv")
    from_json = parse_catalogue((SAMPLES / "catalogue-sample.json").read_bytes(), "json")
    assert len(from_csv) >= 4
    assert from_csv == from_json
    assert len({r.code for r in from_csv}) == len(from_csv)


def test_a_byte_order_mark_comments_blank_lines_and_crlf_are_fine():
    data = b'\xef\xbb\xbf# a comment, with "quotes\n\n' + csv_bytes(GOOD, "").replace(b"\n", b"\r\n")
    [record] = parse_csv(data)
    assert record.code == "1.004194"


def test_columns_may_come_in_any_order_and_the_optional_ones_may_be_missing():
    header = "documents,code,name,sector,handling_level,processing_days,fee"
    [record] = parse_csv(csv_bytes('"Đơn|original|1",1.000001,Tên,Lĩnh vực,province,0,0', header=header))
    assert (record.fee_online, record.result, record.legal_basis) == (0, "", "")
    assert record.processing_days == 0
    assert record.handling_level == "province"


def test_an_empty_fee_online_is_the_paper_fee():
    [record] = parse_csv(csv_bytes("1.000001,Tên,Lĩnh vực,commune,3,50000,,,,"))
    assert record.fee_online == 50_000
    assert record.documents == ()


def test_every_error_is_reported_with_its_line():
    data = csv_bytes(
        GOOD,  # line 2
        "1.0042,Tên,Lĩnh vực,commune,7,0,0,,,",  # 3: code
        "1.000002,,Lĩnh vực,district,7.5,abc,-5,,,",  # 4: name, level, days, fee, fee_online
        '1.000003,"Tên, nhiều dòng',  # 5-6: a quoted name over two lines
        'tiếp theo",Lĩnh vực,commune,400,0,0,,,',  # 6: days too many
        "1.004194,Trùng mã,Lĩnh vực,commune,1,0,0,,,",  # 7: duplicate of line 2
        "1.000004,Tên,Lĩnh vực,commune,1,0,0,,,Đơn|paper|1",  # 8: forms
        "1.000005,Tên,Lĩnh vực,commune,1,0,0,,,Đơn|original|0;Tờ khai|copy|1|maybe",  # 9: count
        "1.000006,Tên,Lĩnh vực,commune,1,0",  # 10: too few fields
        "1.000007,Tên,Lĩnh vực,commune,1,0,0,,,Đơn|original;Đơn|copy",  # 11: repeated document
        "1.000008,Tên,Lĩnh vực,commune,1,0,0,,,|original|1",  # 12: document without name
        "1.000009,Tên,Lĩnh vực,commune,1,0,0,,,Đơn",  # 13: document without forms
    )
    assert problems(parse_csv, data) == [
        "line 3: code '1.0042' is not a national procedure code like 1.004194",
        "line 4: name is required",
        "line 4: handling_level must be one of: commune, province",
        "line 4: processing_days must be a whole number of working days",
        "line 4: fee must be a whole number of dong (e.g. 100000 or 100.000)",
        "line 4: fee_online must be a whole number of dong (e.g. 100000 or 100.000)",
        "line 5: processing_days must be at most 365 working days",
        "line 7: code 1.004194 is already on line 2",
        "line 8: document 1: forms must be one or more of original+copy+electronic",
        "line 9: document 1: count must be a whole number from 1 to 99",
        "line 10: has 6 fields, the header has 10",
        "line 11: document 'Đơn' is listed twice",
        "line 12: document 1 has no name",
        "line 13: document 1 must be name|forms|count[|optional][|form], not 'Đơn'",
    ]


def test_a_bad_fourth_document_part_is_named():
    data = csv_bytes("1.000005,Tên,Lĩnh vực,commune,1,0,0,,,Đơn|original|1|maybe")
    assert problems(parse_csv, data) == [
        "line 2: document 1: the fourth part must be 'required' or 'optional'"
    ]


def test_a_wrong_header_is_refused_and_the_expected_one_shown():
    found = problems(
        parse_csv, csv_bytes(GOOD, header="code,name,sector,level,processing_days,fee,fee,documents")
    )
    assert found[:3] == [
        "line 1: missing column(s): handling_level",
        "line 1: unknown column(s): level",
        "line 1: repeated column(s): fee",
    ]
    assert found[3] == f"line 1: the header must be: {HEADER}"
    assert problems(parse_csv, b"# only a comment\n") == ["line 2: the file has no header line"]


def test_the_header_line_number_counts_the_comments():
    data = b"# sample\n# more\n" + csv_bytes("1.0042,Tên,Lĩnh vực,commune,7,0,0,,,")
    assert problems(parse_csv, data) == [
        "line 4: code '1.0042' is not a national procedure code like 1.004194"
    ]


def test_a_file_that_is_not_utf8_is_refused_with_its_line():
    data = csv_bytes(GOOD, "1.000001,Đăng ký,Lĩnh vực,commune,1,0,0,,,").replace(
        "Đăng ký,L".encode(), b"\xd0ang ky,L"
    )
    assert problems(parse_csv, data) == [
        "line 3: the file is not UTF-8 text (save it as CSV UTF-8 or JSON UTF-8)"
    ]


def test_a_broken_quote_is_reported_at_its_line():
    data = csv_bytes(GOOD, '1.000001,"Tên" sai,Lĩnh vực,commune,1,0,0,,,')
    [found] = problems(parse_csv, data)
    assert found.startswith("line 3: not valid CSV")


def test_pilot_procedures_round_trip_through_json():
    items = []
    for p in PILOT_PROCEDURES:
        item = {column: getattr(p, column) for column in COLUMNS if column != "documents"}
        item["documents"] = [
            {
                "name": d.name,
                "forms": [f for f in ("original", "copy", "electronic") if getattr(d, f)],
                "count": d.count,
                "required": d.required,
                **({"form": d.form} if d.form else {}),
            }
            for d in p.documents
        ]
        items.append(item)
    assert tuple(parse_json(json.dumps(items).encode())) == PILOT_PROCEDURES


def test_json_errors_are_reported_per_item():
    items = [
        {
            "code": "1.000001",
            "name": "Tên",
            "sector": "X",
            "handling_level": "commune",
            "processing_days": 1,
            "fee": 0,
        },
        "not an object",
        {"code": "1.000002", "name": "Tên", "sector": "X", "handling_level": "commune", "processing_days": 1},
        {
            "code": 1.000003,
            "name": ["Tên"],
            "sector": "X",
            "handling_level": "commune",
            "processing_days": 1.5,
            "fee": True,
            "fee_online": "100.000",
        },
        {
            "code": "1.000004",
            "name": "T",
            "sector": "X",
            "handling_level": "commune",
            "processing_days": 1,
            "fee": 0,
            "colour": "red",
        },
        {
            "code": "1.000005",
            "name": "T",
            "sector": "X",
            "handling_level": "commune",
            "processing_days": 1,
            "fee": 0,
            "documents": [
                {"name": "Đơn", "forms": "original"},
                {"name": "Tờ", "forms": ["copy"], "count": 0},
                {"name": "Bản", "forms": ["copy"], "pages": 3},
                "x",
            ],
        },
        {
            "code": "1.000001",
            "name": "T",
            "sector": "X",
            "handling_level": "commune",
            "processing_days": 1,
            "fee": 0,
        },
        {
            "code": "1.000006",
            "name": "T",
            "sector": "X",
            "handling_level": "commune",
            "processing_days": 1,
            "fee": 0,
            "documents": "Đơn|original|1",
        },
    ]
    assert problems(parse_json, json.dumps(items, ensure_ascii=False).encode()) == [
        "item 2: must be an object",
        "item 3: missing field(s): fee",
        "item 4: code 1.000003 is not a national procedure code like 1.004194",
        "item 4: name must be text",
        "item 4: processing_days must be a whole number of working days",
        "item 4: fee must be a whole number of dong (e.g. 100000 or 100.000)",
        "item 4: fee_online must be a whole number of dong (e.g. 100000 or 100.000)",
        "item 5: unknown field(s): colour",
        'item 6: document 1: forms must be a list such as ["original", "copy"]',
        "item 7: code 1.000001 is already on item 1",
        "item 8: documents must be a list of objects",
    ]


def test_the_first_document_problem_of_an_item_is_named():
    base = {
        "code": "1.000005",
        "name": "T",
        "sector": "X",
        "handling_level": "commune",
        "processing_days": 1,
        "fee": 0,
    }
    cases = [
        (
            [{"name": "Tờ", "forms": ["copy"], "count": 0}],
            "document 1: count must be a whole number from 1 to 99",
        ),
        ([{"name": "Bản", "forms": ["copy"], "pages": 3}], "document 1 has unknown field(s): pages"),
        (["x"], "document 1 must be an object"),
        ([{"name": " ", "forms": ["copy"]}], "document 1 has no name"),
        (
            [{"name": "Bản", "forms": ["copy"], "required": "yes"}],
            "document 1: required must be true or false",
        ),
        ([{"name": "Bản", "forms": ["copy"], "form": 1}], "document 1: form must be text"),
        ([{"name": "Bản", "forms": []}], "document 1: forms must be one or more of original+copy+electronic"),
    ]
    for documents, message in cases:
        data = json.dumps([{**base, "documents": documents}]).encode()
        assert problems(parse_json, data) == [f"item 1: {message}"]


def test_json_that_is_not_a_list_or_not_json_is_refused():
    assert problems(parse_json, b'{"code": "1.000001"}') == ["file: must hold a JSON list of procedures"]
    [found] = problems(parse_json, b'[\n{"code": "1.000001",}\n]')
    assert found.startswith("line 2: not valid JSON")
    assert parse_json(b"\xef\xbb\xbf[]") == []


def test_the_error_message_lists_every_problem():
    with pytest.raises(InvalidCatalogue) as caught:
        parse_csv(csv_bytes("1.0042,Tên,Lĩnh vực,commune,7,0,0,,,", "1.0043,Tên,Lĩnh vực,commune,7,0,0,,,"))
    text = str(caught.value)
    assert "2 error(s)" in text
    assert "line 2: code '1.0042'" in text
    assert "line 3: code '1.0043'" in text
    assert isinstance(caught.value, SchemaError)


def test_an_unknown_format_is_refused():
    with pytest.raises(SchemaError):
        parse_catalogue(b"", "xlsx")
