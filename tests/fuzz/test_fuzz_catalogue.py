"""Fuzzing procedure catalogue imports: the CSV or JSON file a city loads its procedures from.

The files start as the real samples in ``ops/samples``. Damaged, a file parses to records or is
refused with :class:`~schema.catalogue.InvalidCatalogue` listing where and what; whatever parses
is applied to a real node in one transaction or refused typed with the node unchanged. Harmless
changes (spaces around cells, CRLF, a byte-order mark, comments and blank lines) give the same
records. ``motcua catalogue import`` answers a bad file with exit code 2 and a message, never a
traceback, also as a real process.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzing import ODD_TEXT, assert_clear, examples, mutated_bytes, mutated_json, refusal
from hypothesis import given
from hypothesis import strategies as st
from servers import run_cli

from edge.errors import EdgeError
from edge.node import Node, init_node
from ops.catalogue import apply_catalogue
from ops.cli import main
from schema.catalogue import InvalidCatalogue, parse_catalogue
from schema.errors import SchemaError
from sync.errors import SyncError

SAMPLES = Path(__file__).resolve().parents[2] / "ops" / "samples"
CSV = (SAMPLES / "catalogue-sample.csv").read_bytes()
JSON = (SAMPLES / "catalogue-sample.json").read_bytes()
RECORDS = parse_catalogue(CSV, "csv")


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Node]:
    made = init_node(tmp_path_factory.mktemp("catalogue") / "node", "31135")
    yield made
    made.close()


def log_of(node: Node) -> tuple[object, ...]:
    return node.replica.digest(), node.replica.state_digest()


def parse_and_apply(node: Node, data: bytes, fmt: str) -> None:
    """Parse; a refusal lists its problems. Apply what parses; a refusal changes nothing."""
    records = []
    error = refusal(lambda: records.extend(parse_catalogue(data, fmt)), InvalidCatalogue)
    if error is not None:
        assert error.problems, "a refused catalogue without a problem listed"
        assert all(p.where and p.message for p in error.problems)
        return
    before = log_of(node)
    error = refusal(lambda: apply_catalogue(node, records), (SchemaError, EdgeError, SyncError))
    if error is not None:
        assert_clear(error)
        assert log_of(node) == before, f"a refused catalogue changed the node: {error}"


@examples(150)
@given(data=st.data(), fmt=st.sampled_from(("csv", "json")))
def test_a_damaged_catalogue_file_parses_or_is_refused_with_its_problems(node, data, fmt):
    parse_and_apply(node, data.draw(mutated_bytes(CSV if fmt == "csv" else JSON)), fmt)


def _rows() -> list[list[str]]:
    text = CSV.decode("utf-8")
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    return list(csv.reader(io.StringIO(body, newline="")))


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


@examples(150)
@given(data=st.data())
def test_a_csv_cell_with_odd_text_parses_or_is_refused_with_its_problems(node, data):
    rows = _rows()
    row = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, len(rows[row]) - 1))
    rows[row][column] = data.draw(ODD_TEXT)
    parse_and_apply(node, _csv(rows), "csv")


@examples(150)
@given(data=st.data())
def test_a_json_catalogue_with_an_odd_value_parses_or_is_refused_with_its_problems(node, data):
    document = json.loads(JSON)
    parse_and_apply(node, data.draw(mutated_json(document)).encode("utf-8", "surrogatepass"), "json")


@examples(60)
@given(
    pad=st.sampled_from((" ", "  ", "\t")),
    crlf=st.booleans(),
    bom=st.booleans(),
    comment=st.sampled_from(("", "# a comment\n", "\n\n", "#\n  \n")),
)
def test_spaces_line_ends_a_bom_and_comments_do_not_change_the_records(pad, crlf, bom, comment):
    rows = _rows()
    padded = [rows[0]] + [[pad + cell + pad for cell in row] for row in rows[1:]]
    text = comment + _csv(padded).decode("utf-8")
    text = text.replace("\r\n", "\n")
    if crlf:
        text = text.replace("\n", "\r\n")
    data = ("\ufeff" if bom else "").encode() + text.encode("utf-8")
    assert parse_catalogue(data, "csv") == RECORDS


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("suffix", "content"),
    [
        ("json", DEEP),
        ("json", b'[{"code": "1.001193", "processing_days": ' + b"1" * 5000 + b"}]"),
        ("csv", CSV.replace(b",1,0,0,", b",\xc2\xb2,0,0,", 1)),
        ("csv", b"\xff\xfe" + CSV),
    ],
)
def test_motcua_catalogue_import_refuses_a_bad_file_in_a_message(node, tmp_path, capsys, suffix, content):
    path = tmp_path / f"catalogue.{suffix}"
    path.write_bytes(content)
    before = log_of(node)
    code = main(["catalogue", "import", str(path), "--data", str(node.data_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("motcua: ")
    assert "Traceback" not in err
    assert log_of(node) == before


def test_a_real_motcua_process_refuses_a_deeply_nested_catalogue_without_a_traceback(node, tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(DEEP)
    done = run_cli("catalogue", "import", str(path), "--data", str(node.data_dir))
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.startswith("motcua: ")
    assert "Traceback" not in done.stderr
