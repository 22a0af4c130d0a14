"""Fuzzing the files a technician edits or carries: edge.toml, node.json and the node file,
litestream.yml, and the record.json a clerk brings to the city.

Each starts as the real file written by the real code. Damaged, it is read into settings of
the right types, a node with the same identity, a backup config, a verified record; or it is
refused with a typed error whose message names the file. Refusing to create a node from a bad
node file leaves no directory behind. ``motcua record verify`` answers a bad record with exit
code 2 and a message, not a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from fuzzing import ODD_TOML, assert_clear, examples, mutated_bytes, mutated_json, refusal
from hypothesis import given
from hypothesis import strategies as st

from central.records import verify_record
from edge.backupstate import BackupError, backup_age_s, read_config
from edge.errors import ConfigError
from edge.node import NODE_FILE, init_from_node_file, open_node
from edge.settings import SETTINGS, Settings, load
from edge.views.sync import record_json
from ops.backup import write_config
from ops.cli import main
from sync import attempts
from sync.errors import SyncError

# --- edge.toml ----------------------------------------------------------------------------------


def toml_line(name: str, value: object) -> str:
    if isinstance(value, bool):
        return f"{name} = {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{name} = {value}"
    return f"{name} = {json.dumps(value)}"


VALID_TOML = "\n".join(toml_line(name, default) for name, default, _ in SETTINGS) + "\n"


def check_settings(directory: Path) -> None:
    """Settings of the declared types, or a ConfigError naming the problem."""
    found: list[Settings] = []
    error = refusal(lambda: found.append(load(directory)), ConfigError)
    if error is not None:
        assert_clear(error)
        return
    for name, default, _ in SETTINGS:
        value = getattr(found[0], name)
        assert type(value) is type(default), f"{name} = {value!r} was accepted"


@examples(150)
@given(data=st.data())
def test_edge_toml_with_an_odd_value_is_read_typed_or_refused(tmp_path, data):
    lines = VALID_TOML.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    name = lines[i].split(" = ")[0]
    lines[i] = f"{name} = {data.draw(st.sampled_from(ODD_TOML))}"
    (tmp_path / "edge.toml").write_text("\n".join(lines) + "\n", "utf-8")
    check_settings(tmp_path)


@examples(100)
@given(data=st.data())
def test_a_damaged_edge_toml_is_read_typed_or_refused(tmp_path, data):
    (tmp_path / "edge.toml").write_bytes(data.draw(mutated_bytes(VALID_TOML.encode())))
    check_settings(tmp_path)


# --- node.json and the node file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def made_node(linked, tmp_path_factory) -> Path:
    """A copy of the linked box's data directory, closed (opened per example)."""
    target = tmp_path_factory.mktemp("node") / "box"
    shutil.copytree(linked.edge.data_dir, target, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return target


@examples(60)
@given(data=st.data())
def test_a_damaged_node_json_opens_the_same_node_or_is_refused(made_node, linked, data):
    path = made_node / NODE_FILE
    original = path.read_bytes()
    how = data.draw(st.sampled_from(("json", "bytes")))
    if how == "json":
        path.write_text(data.draw(mutated_json(json.loads(original))), "utf-8")
    else:
        path.write_bytes(data.draw(mutated_bytes(original)))
    opened = []
    try:
        error = refusal(lambda: opened.append(open_node(made_node)), ConfigError)
    finally:
        path.write_bytes(original)
    if error is not None:
        assert_clear(error)
        return
    node = opened[0]
    try:
        assert node.identity.node == linked.edge.identity.node
        config = dataclasses.asdict(node.config)
        assert isinstance(config.pop("insecure_lan_test"), bool), config
        assert all(value is None or isinstance(value, str) for value in config.values()), config
        assert node.config.role == "edge"  # edge opens boxes only; the city opens its own
    finally:
        node.close()


@examples(60)
@given(data=st.data())
def test_a_damaged_node_file_makes_the_same_node_or_nothing(linked, tmp_path, data):
    document = json.loads(linked.node_file.read_text("utf-8"))
    node_file = tmp_path / "edge.node.json"
    node_file.write_text(data.draw(mutated_json(document)), "utf-8")
    target = Path(tempfile.mkdtemp(dir=tmp_path)) / "box"
    made = []
    error = refusal(lambda: made.append(init_from_node_file(target, node_file)), ConfigError)
    if error is not None:
        assert_clear(error)
        assert not target.exists(), "a refused node file left a data directory behind"
        return
    node = made[0]
    try:
        assert node.identity.node == document["node"]
    finally:
        node.close()


# --- litestream.yml -----------------------------------------------------------------------------


@examples(100)
@given(data=st.data())
def test_a_damaged_litestream_config_is_read_or_refused_and_never_breaks_a_sync(tmp_path, data):
    (tmp_path / "motcua.db").touch()
    write_config(tmp_path)
    path = tmp_path / "litestream.yml"
    path.write_text(data.draw(mutated_json(json.loads(path.read_text("utf-8")))), "utf-8")
    error = refusal(lambda: read_config(tmp_path), BackupError)
    if error is not None:
        assert_clear(error)
    age = backup_age_s(tmp_path)  # read at every sync round: must never raise
    assert age is None or age >= 0


# --- record.json --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record(linked) -> dict:
    with linked.edge.reader() as conn:
        log = attempts.records(conn)
        dossier = conn.execute("SELECT id FROM dossiers LIMIT 1").fetchone()[0]
    assert log
    return record_json(linked.edge.identity.node, linked.edge.identity.public_raw, dossier, log)


@examples(150)
@given(data=st.data())
def test_a_damaged_record_is_verified_or_refused_typed(linked, record, data):
    text = data.draw(mutated_json(record))
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return  # not JSON: motcua record verify says so (test_motcua_record_verify_refuses_…)
    checked = []
    error = refusal(
        lambda: checked.append(verify_record(linked.city, document if isinstance(document, dict) else {})),
        SyncError,
    )
    if error is not None:
        assert_clear(error)
        return
    # Verified: what it says is what the box signed. Records cut from the end leave a shorter
    # chain the box once had (the city says how many records it checked).
    assert checked[0].node == record["node"]
    assert checked[0].records <= len(record["records"])


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}", b'{"node": 1e999}', b"{}", b'{"records": "x"}'],
)
def test_motcua_record_verify_refuses_a_bad_file_in_a_message(linked, tmp_path, capsys, content):
    path = tmp_path / "record.json"
    path.write_bytes(content)
    code = main(["record", "verify", str(path), "--data", str(linked.city.node.data_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("motcua: ")
    assert "Traceback" not in err
