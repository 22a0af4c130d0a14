"""`motcua catalogue import`: all or nothing, idempotent, clear errors, fast enough for a city."""

import csv
import io
import json
import time
from pathlib import Path

import pytest

from edge.node import init_node, open_node
from ops.catalogue import PROGRESS_EVERY
from ops.cli import main
from schema.catalogue import COLUMNS

SAMPLES = Path(__file__).resolve().parents[2] / "ops" / "samples"
UNIT = "31135"


@pytest.fixture
def data(tmp_path):
    init_node(tmp_path / "node", UNIT).close()
    return tmp_path / "node"


def op_count(data):
    node = open_node(data)
    try:
        return node.replica.op_count()
    finally:
        node.close()


def procedure(data, code):
    node = open_node(data)
    try:
        with node.reader() as conn:
            return conn.execute(
                "SELECT name, processing_days, fee, documents FROM procedures WHERE code = ?", (code,)
            ).fetchone()
    finally:
        node.close()


def generated(count):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in range(count):
        writer.writerow(
            [
                f"1.{100000 + i:06d}",
                f"Thủ tục thử nghiệm số {i}",
                f"Lĩnh vực {i % 40}",
                "commune" if i % 3 else "province",
                i % 30,
                (i % 10) * 10_000,
                (i % 10) * 5_000,
                "Kết quả",
                "Nghị định 01/2025/NĐ-CP",
                f"Đơn đề nghị|original+electronic|1;Bản sao giấy tờ {i}|copy|2|optional",
            ]
        )
    return out.getvalue()


def test_importing_the_sample_writes_one_op_per_procedure_then_nothing(data, capsys):
    sample = SAMPLES / "catalogue-sample.csv"
    before = op_count(data)
    assert main(["catalogue", "import", str(sample), "--data", str(data)]) == 0
    assert capsys.readouterr().out.strip() == "imported 6, unchanged 0"
    assert op_count(data) == before + 6
    assert procedure(data, "1.001193")[:3] == ("Đăng ký khai sinh", 1, 0)
    # Again, and as JSON: the same content, so nothing is written.
    for again in (sample, SAMPLES / "catalogue-sample.json"):
        assert main(["catalogue", "import", str(again), "--data", str(data)]) == 0
        assert capsys.readouterr().out.strip() == "imported 0, unchanged 6"
    assert op_count(data) == before + 6


def test_a_changed_procedure_is_the_only_one_written(data, tmp_path, capsys):
    sample = SAMPLES / "catalogue-sample.json"
    assert main(["catalogue", "import", str(sample), "--data", str(data)]) == 0
    items = json.loads(sample.read_text(encoding="utf-8"))
    items[2]["processing_days"] = 2
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    before = op_count(data)
    capsys.readouterr()
    assert main(["catalogue", "import", str(changed), "--data", str(data)]) == 0
    assert capsys.readouterr().out.strip() == "imported 1, unchanged 5"
    assert op_count(data) == before + 1
    assert procedure(data, items[2]["code"])[1] == 2


def test_the_pilot_procedures_of_a_fresh_node_are_unchanged(data, tmp_path, capsys):
    node = open_node(data)
    with node.reader() as conn:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM procedures ORDER BY code").fetchall()
    node.close()
    items = []
    for row in rows:
        item = dict(zip(COLUMNS, row, strict=True))
        item["documents"] = [
            {
                "name": d["name"],
                "forms": [f for f in ("original", "copy", "electronic") if d[f]],
                "count": d["count"],
                "required": d["required"],
                **({"form": d["form"]} if d["form"] else {}),
            }
            for d in json.loads(item["documents"])
        ]
        items.append(item)
    path = tmp_path / "pilot.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    before = op_count(data)
    assert main(["catalogue", "import", str(path), "--data", str(data)]) == 0
    assert capsys.readouterr().out.strip() == f"imported 0, unchanged {len(items)}"
    assert op_count(data) == before


def test_a_file_with_any_error_applies_nothing_and_lists_every_error(data, tmp_path, capsys):
    text = (SAMPLES / "catalogue-sample.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("code,"))
    lines.append("1.0001,Mã sai,Hộ tịch,commune,1,0,0,,,")
    lines.append("1.000999,Ngày sai,Hộ tịch,commune,một,0,0,,,")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = op_count(data)
    assert main(["catalogue", "import", str(bad), "--data", str(data)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    first = header + 1 + 6 + 1  # 1-based header line, six good procedures, then the bad ones
    assert captured.err.splitlines() == [
        f"motcua: {bad}: 2 error(s); nothing was imported:",
        f"  line {first}: code '1.0001' is not a national procedure code like 1.004194",
        f"  line {first + 1}: processing_days must be a whole number of working days",
    ]
    assert op_count(data) == before
    assert procedure(data, "1.001193") is None


def test_a_catalogue_of_2500_procedures_imports_in_reasonable_time_and_once(data, tmp_path, capsys):
    path = tmp_path / "city.csv"
    path.write_text(generated(2500), encoding="utf-8-sig")
    before = op_count(data)
    started = time.perf_counter()
    assert main(["catalogue", "import", str(path), "--data", str(data)]) == 0
    elapsed = time.perf_counter() - started
    captured = capsys.readouterr()
    assert captured.out.strip() == "imported 2500, unchanged 0"
    progress = captured.err.splitlines()
    assert progress[0] == f"  {PROGRESS_EVERY}/2500 procedures checked"
    assert progress[-1] == "  2500/2500 procedures checked"
    assert op_count(data) == before + 2500
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert main(["catalogue", "import", str(path), "--data", str(data)]) == 0
    assert capsys.readouterr().out.strip() == "imported 0, unchanged 2500"
    assert op_count(data) == before + 2500
    name, days, fee, documents = procedure(data, "1.102499")
    assert (name, days, fee) == ("Thủ tục thử nghiệm số 2499", 2499 % 30, 90_000)
    assert json.loads(documents)[1]["required"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "No such file"),
        (["catalogue.xlsx"], "cannot tell the format"),
    ],
)
def test_unreadable_input_exits_2_with_one_line(data, tmp_path, capsys, args, message):
    (tmp_path / "catalogue.xlsx").write_bytes(b"PK\x03\x04")
    assert main(["catalogue", "import", str(tmp_path / args[0]), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("motcua: ")
    assert message in err


def test_the_format_can_be_given_and_a_missing_node_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "catalogue.txt"
    path.write_bytes((SAMPLES / "catalogue-sample.json").read_bytes())
    assert main(["catalogue", "import", str(path), "--format", "json", "--data", str(tmp_path / "none")]) == 2
    assert "is not a motcua node" in capsys.readouterr().err


def test_the_command_is_documented_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["catalogue", "import", "--help"])
    out = capsys.readouterr().out
    assert "FILE" in out
    assert "--data" in out
