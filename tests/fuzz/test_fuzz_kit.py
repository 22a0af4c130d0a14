"""Fuzzing the USB provisioning kit: every file of it, damaged on the stick or by the city.

The kit is a real one (``create_kit`` at a real city, no wheelhouse). Damaged on the stick, any
file makes ``verify_kit`` refuse with :class:`~ops.kit.KitRefused` before anything is written.
Damaged and then re-signed by the city key (the city's own software gone wrong, so the
signature and every hash hold), the kit gets past verification and ``apply_kit`` must still
refuse typed, or build a node that opens: never a traceback, and a refused kit leaves the box
directory absent, as it was, with nothing beside it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from fuzzing import (
    ODD_MSGPACK,
    assert_clear,
    examples,
    mutated_bytes,
    mutated_json,
    mutated_tree,
    refusal,
)
from hypothesis import given
from hypothesis import strategies as st

from central.city import City, init_central
from edge.errors import EdgeError
from edge.node import open_node
from ops import kit
from ops.cli import main

UNIT = "31135"
PASSPHRASE = "mot cua ninh kieu 2025"
TEXT_FILES = ("node.json", "litestream.yml", "install.sh", "systemd/motcua-edge.service")


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Iterator[City]:
    made, _ = init_central(tmp_path_factory.mktemp("city") / "city", "92", "Matkhau123")
    yield made
    made.close()


@pytest.fixture(scope="module")
def original(city, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kits") / "kit"
    kit.create_kit(city, UNIT, "http://127.0.0.1:1", out, PASSPHRASE, insecure_lan_test=True)
    return out


def kit_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def copy(original: Path, where: Path) -> Path:
    target = Path(tempfile.mkdtemp(dir=where)) / "kit"
    shutil.copytree(original, target)
    return target


def box_untouched(box: Path) -> bool:
    """A refused kit leaves no data directory and no hidden work directory beside it."""
    return not box.exists() and not [p for p in box.parent.iterdir() if p.name.startswith(f".{box.name}")]


# --- damaged on the stick -----------------------------------------------------------------------


@examples(120)
@given(data=st.data())
def test_any_damaged_file_is_refused_before_anything_is_written(original, tmp_path, data):
    name = data.draw(st.sampled_from(kit_files(original)))
    damaged = copy(original, tmp_path)
    before = (damaged / name).read_bytes()
    (damaged / name).write_bytes(data.draw(mutated_bytes(before)))
    error = refusal(lambda: kit.verify_kit(damaged), kit.KitRefused)
    if error is None:
        # Only a signature file with other whitespace around the same hex still verifies.
        assert name == kit.SIGNATURE
        assert bytes.fromhex((damaged / name).read_text("ascii").strip()) == bytes.fromhex(before.decode())
        return
    assert_clear(error)


@examples(60)
@given(data=st.data())
def test_a_manifest_with_odd_values_is_refused_typed(original, tmp_path, data):
    damaged = copy(original, tmp_path)
    manifest = json.loads((damaged / kit.MANIFEST).read_text("utf-8"))
    (damaged / kit.MANIFEST).write_text(data.draw(mutated_json(manifest)), "utf-8")
    error = refusal(lambda: kit.verify_kit(damaged), kit.KitRefused)
    assert error is not None, "a changed manifest verified"
    assert_clear(error)


# --- damaged, then re-signed by the city --------------------------------------------------------


def resign(root: Path, city: City, manifest: dict | None = None) -> None:
    """List every file's size and hash again and sign the manifest with the city key."""
    manifest = manifest or json.loads((root / kit.MANIFEST).read_text("utf-8"))
    files = [p for p in kit_files(root) if p not in (kit.MANIFEST, kit.SIGNATURE)]
    manifest["files"] = [
        {
            "path": name,
            "size": (root / name).stat().st_size,
            "sha256": hashlib.sha256((root / name).read_bytes()).hexdigest(),
        }
        for name in files
    ]
    body = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    (root / kit.MANIFEST).write_bytes(body)
    (root / kit.SIGNATURE).write_text(city.node.identity.sign(body).hex() + "\n", "ascii")


def _key_text(draw, text: str) -> str:
    """The key file with one header value changed (the scrypt parameters, the salt, the node)."""
    lines = text.split("\n")
    headers = [i for i, line in enumerate(lines) if ": " in line]
    i = draw(st.sampled_from(headers))
    name, value = lines[i].split(": ", 1)
    parts = value.split(",")
    j = draw(st.integers(0, len(parts) - 1))
    parts[j] = draw(
        st.sampled_from(("", "0", "1", "3", "65535", "1048576", "4294967296", "9" * 30, "-8", "zz", "\u0661"))
        | st.text(max_size=10)
    )
    lines[i] = f"{name}: {','.join(parts)}"
    return "\n".join(lines)


ODD = st.sampled_from(ODD_MSGPACK) | st.binary(max_size=40) | st.integers()


def _damage(draw, root: Path) -> str:
    name = draw(st.sampled_from((kit.NODE_JSON, kit.KEY_FILE, kit.SNAPSHOT, kit.SNAPSHOT, "litestream.yml")))
    path = root / name
    how = draw(st.sampled_from(("bytes", "structure")))
    if how == "bytes":
        path.write_bytes(draw(mutated_bytes(path.read_bytes())))
    elif name == kit.NODE_JSON:
        path.write_text(draw(mutated_json(json.loads(path.read_text("utf-8")))), "utf-8")
    elif name == kit.KEY_FILE:
        path.write_text(_key_text(draw, path.read_text("ascii")), "utf-8")
    elif name == kit.SNAPSHOT:
        tree = draw(mutated_tree(msgspec.msgpack.decode(path.read_bytes()), ODD))
        try:
            path.write_bytes(msgspec.msgpack.encode(tree))
        except OverflowError:
            path.write_bytes(b"")
    else:
        path.write_text(draw(st.text(max_size=200)), "utf-8")
    return name


@examples(12)
@given(data=st.data())
def test_a_kit_resigned_by_the_city_after_damage_is_refused_or_makes_a_node(city, original, tmp_path, data):
    damaged = copy(original, tmp_path)
    name = _damage(data.draw, damaged)
    resign(damaged, city)
    verified = kit.verify_kit(damaged, expect_city=kit.fingerprint(city.node.identity.public_raw))
    box = damaged.parent / "box" / "motcua"
    box.parent.mkdir()
    error = refusal(lambda: kit.apply_kit(verified, box, PASSPHRASE), EdgeError)
    if error is not None:
        assert_clear(error)
        assert box_untouched(box), f"a refused kit ({name}) left files behind"
        return
    node = open_node(box)
    try:
        assert node.identity.node == verified.manifest["node"]
    finally:
        node.close()


@examples(40)
@given(data=st.data())
def test_a_resigned_manifest_with_odd_values_is_refused_typed(city, original, tmp_path, data):
    damaged = copy(original, tmp_path)
    manifest = json.loads((damaged / kit.MANIFEST).read_text("utf-8"))
    body = data.draw(mutated_json(manifest)).encode()
    (damaged / kit.MANIFEST).write_bytes(body)
    (damaged / kit.SIGNATURE).write_text(city.node.identity.sign(body).hex() + "\n", "ascii")
    error = refusal(lambda: kit.verify_kit(damaged), kit.KitRefused)
    if error is not None:
        assert_clear(error)


def test_a_key_file_asking_for_a_huge_scrypt_cost_is_refused_before_deriving(city, original, tmp_path):
    """The scrypt parameters come from the stick: a kit must not make the box derive a key with
    gigabytes of memory or minutes of work."""
    damaged = copy(original, tmp_path)
    key = (damaged / kit.KEY_FILE).read_text("ascii")
    for cost in ("1073741824,8,1", "65536,1024,1", "65536,8,4096"):
        (damaged / kit.KEY_FILE).write_text(key.replace("65536,8,1", cost), "ascii")
        with pytest.raises(kit.KitRefused) as refused:
            kit.decrypt_key((damaged / kit.KEY_FILE).read_bytes(), UNIT, PASSPHRASE)
        assert "key file" in str(refused.value)


@pytest.mark.parametrize("name", [kit.MANIFEST, kit.SIGNATURE, kit.SNAPSHOT, kit.KEY_FILE, kit.NODE_JSON])
def test_motcua_provision_apply_refuses_a_damaged_kit_in_one_line(original, tmp_path, capsys, name):
    damaged = copy(original, tmp_path)
    (damaged / name).write_bytes(b"\x00\xff" + (damaged / name).read_bytes()[2:])
    box = tmp_path / "box"
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE, "utf-8")
    code = main(["provision", "apply", str(damaged), "--data", str(box), "--passphrase-file", str(secret)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("motcua: ")
    assert err.count("\n") == 1, err
    assert box_untouched(box)


@pytest.mark.parametrize("cursor", [-1, 2**63])
def test_a_snapshot_cursor_sqlite_cannot_hold_is_refused(city, original, tmp_path, cursor):
    """Found by the fuzzer: a cursor of 2**63 in a re-signed snapshot reached SQLite and raised
    OverflowError instead of a refusal."""
    damaged = copy(original, tmp_path)
    tree = msgspec.msgpack.decode((damaged / kit.SNAPSHOT).read_bytes())
    tree["cursor"] = cursor
    (damaged / kit.SNAPSHOT).write_bytes(msgspec.msgpack.encode(tree))
    resign(damaged, city)
    verified = kit.verify_kit(damaged, expect_city=kit.fingerprint(city.node.identity.public_raw))
    box = damaged.parent / "box" / "motcua"
    box.parent.mkdir()
    with pytest.raises(kit.KitRefused, match="damaged"):
        kit.apply_kit(verified, box, PASSPHRASE)
    assert box_untouched(box)
