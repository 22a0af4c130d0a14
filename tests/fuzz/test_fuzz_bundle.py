"""Fuzzing sneakernet bundles: the file a USB stick carries between a box and the city.

Both directions start from a real bundle written by the real export (the box's two dossiers
for the city; a new account and certificates for the box). Damaged on the stick, a bundle is
refused whole with a typed error and nothing of it is applied, at the city or at the box.
A bundle re-signed with the right key after the damage (the sender's own software gone wrong)
gets past the signature and must still be refused typed, or be accepted only if what it
carries is genuine. A few refusals go through ``motcua sync import`` itself: exit code 2 and
one line, no traceback.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest
import zstandard
from fuzzing import GARBAGE, ODD_MSGPACK, assert_clear, examples, mutated_bytes, mutated_tree, refusal
from hypothesis import given
from hypothesis import strategies as st

from edge.accounts import add_account
from ops import bundle
from ops.cli import main
from sync.errors import SyncError

ODD = st.sampled_from(ODD_MSGPACK) | st.binary(max_size=40) | st.integers()


@pytest.fixture(scope="module")
def to_city(linked) -> bytes:
    path = linked.dir / "from-edge.bundle"
    report = bundle.export_from_edge(linked.edge, path)
    assert report.ops > 0
    return path.read_bytes()


@pytest.fixture(scope="module")
def to_edge(linked) -> bytes:
    add_account(linked.city.node, "canbo02", "Lê Thị Cúc", "clerk", "Matkhau123", "31135")
    path = linked.dir / "from-city.bundle"
    report = bundle.export_from_city(linked.city, linked.edge.identity.node, path)
    assert report.ops > 0
    return path.read_bytes()


def _write(directory: Path, data: bytes) -> Path:
    path = directory / "stick.bundle"
    path.write_bytes(data)
    return path


def at_city(linked, data: bytes) -> Exception | None:
    before = linked.city_log()
    error = refusal(lambda: bundle.import_at_city(linked.city, _write(linked.dir, data)), SyncError)
    if error is not None:
        assert_clear(error)
        assert linked.city_log() == before, f"a refused bundle changed the city: {error}"
        return error
    assert linked.city_holds_only_genuine_ops()
    return None


def at_edge(linked, data: bytes) -> Exception | None:
    before = linked.edge_log()
    error = refusal(lambda: bundle.import_at_edge(linked.edge, _write(linked.dir, data)), SyncError)
    if error is not None:
        assert_clear(error)
        assert linked.edge_log() == before, f"a refused bundle changed the box: {error}"
    return error


@examples(80)
@given(data=st.data())
def test_a_damaged_bundle_is_refused_whole_at_the_city(linked, to_city, data):
    at_city(linked, data.draw(mutated_bytes(to_city)))


@examples(80)
@given(data=st.data())
def test_a_damaged_bundle_is_refused_whole_at_the_box(linked, to_edge, data):
    at_edge(linked, data.draw(mutated_bytes(to_edge)))


@examples(20)
@given(garbage=GARBAGE)
def test_garbage_on_the_stick_is_refused_at_both_ends(linked, garbage):
    for data in (garbage, bundle.MAGIC + garbage, bundle.MAGIC + zstandard.compress(garbage)):
        assert at_city(linked, data) is not None
        assert at_edge(linked, data) is not None


def _contents(data: bytes) -> object:
    return msgspec.msgpack.decode(_body(data))


def _body(data: bytes) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data[len(bundle.MAGIC) :])) as reader:
        return msgspec.msgpack.decode(reader.read(), type=bundle.Envelope).contents


def _resealed(tree: object, identity, raw: bool = False) -> bytes | None:
    """A bundle file of ``tree`` (or of the bytes ``tree`` when ``raw``) signed by ``identity``:
    what a sender whose software went wrong would write."""
    try:
        body = tree if raw else msgspec.msgpack.encode(tree)
    except OverflowError:
        return None
    envelope = msgspec.msgpack.encode(bundle.Envelope(body, identity.sign(bundle._message(body))))
    return bundle.MAGIC + zstandard.ZstdCompressor(write_checksum=True).compress(envelope)


@examples(80)
@given(data=st.data())
def test_a_validly_signed_bundle_with_odd_contents_is_refused_typed_at_the_city(linked, to_city, data):
    resealed = _resealed(data.draw(mutated_tree(_contents(to_city), ODD)), linked.edge.identity)
    if resealed is not None:
        at_city(linked, resealed)


@examples(80)
@given(data=st.data())
def test_a_validly_signed_bundle_with_odd_contents_is_refused_typed_at_the_box(linked, to_edge, data):
    resealed = _resealed(data.draw(mutated_tree(_contents(to_edge), ODD)), linked.city.node.identity)
    if resealed is not None:
        at_edge(linked, resealed)


@examples(80)
@given(data=st.data(), to_the_box=st.booleans())
def test_a_validly_signed_bundle_with_damaged_contents_bytes_is_refused_typed(
    linked, to_city, to_edge, data, to_the_box
):
    """The contents are read (to learn the sender) before the signature is checked: damaged
    msgpack in a well-formed file must be refused typed too."""
    original = to_edge if to_the_box else to_city
    signer = linked.city.node.identity if to_the_box else linked.edge.identity
    resealed = _resealed(data.draw(mutated_bytes(_body(original))), signer, raw=True)
    if to_the_box:
        at_edge(linked, resealed)
    else:
        at_city(linked, resealed)


@pytest.mark.parametrize("damage", [b"", b"MOTCUA-BUNDLE/1\n", b"\x00" * 64, b"MOTCUA-BUNDLE/1\n(\xb5/\xfd"])
def test_motcua_sync_import_refuses_a_damaged_bundle_in_one_line(linked, tmp_path, capsys, damage):
    path = tmp_path / "damaged.bundle"
    path.write_bytes(damage)
    before = linked.city_log()
    code = main(["sync", "import", str(path), "--data", str(linked.city.node.data_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("motcua: ")
    assert err.count("\n") == 1, err
    assert linked.city_log() == before


@pytest.mark.parametrize(
    "content", [b"[" * 100_000 + b"]" * 100_000, b"1e999", b"-1", b'{"cursor": "x"}', b"\xff", b"1" * 5000]
)
def test_motcua_sync_export_refuses_a_bad_since_vector_in_one_line(linked, tmp_path, capsys, content):
    since = tmp_path / "since.json"
    since.write_bytes(content)
    data = str(linked.city.node.data_dir)
    out = tmp_path / "out.bundle"
    code = main(
        ["sync", "export", "--data", data, "--unit", "31135", "--since-vector", str(since), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("motcua: ")
    assert err.count("\n") == 1, err
    assert not out.exists()
