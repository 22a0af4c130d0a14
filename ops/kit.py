"""The USB provisioning kit: everything a blank commune box needs to become a node, offline.

A kit is a directory (copied to a USB stick) made at the city by :func:`create_kit`::

    node.json              who the node is: id, unit, province, central URL, city key and id,
                           the pin of the city's TLS key (no secrets)
    node.key.p8            the node's private key, PKCS#8, encrypted with the kit's passphrase
    snapshot.msgpack       the unit's scope as the city holds it: its signed batches and the
                           certificates of the nodes that authored them
    tls/box.pem            the box's HTTPS certificate for the office LAN, issued by the city's CA
                           (followed by the CA's certificate); tls/city-ca.pem the CA's alone
    tls/box.key.p8         its private key, sealed with the kit's passphrase like node.key.p8
    litestream.yml         backup config of the node's database (file replica on a second disk)
    systemd/*.service      the edge server and the backup, as services
    install.sh             venv + offline install from wheelhouse/, then ``provision apply``
    wheelhouse/            the motcua wheel (htmx inside) and every dependency's wheel
    MANIFEST.json          every other file's path, size and sha256; node id; created, expires
    MANIFEST.sig           the city key's Ed25519 signature over MANIFEST.json's bytes

:func:`apply_kit` on the box checks everything before it writes anything: the signature (the
technician compares the city key's fingerprint with the one city IT published), each file's
size and hash, no file missing or unlisted, the expiry, the passphrase; then it builds the node
in a hidden sibling of the data directory and renames it into place, so a refusal or a crash
leaves the box as it was.

The private key's encryption: scrypt (n=2**16, r=8, p=1: 64 MiB, a fraction of a second on an
old box) derives an AES-256-GCM key that encrypts the key's PKCS#8 DER, the node id bound in as
associated data. Not ``BestAvailableEncryption``: for PKCS#8 it means PBKDF2 with OpenSSL's
2,048 iterations, cheap to brute-force from a lost stick, and its wrong-passphrase failure is an
undifferentiated ``ValueError``; GCM's tag tells a wrong passphrase from a damaged file exactly.

Limits: the manifest is signed by the key it names, so it proves integrity and origin only once
the technician (or ``--expect-city``) has compared the fingerprint. The box cannot know offline
that its node was revoked after the kit was made; the city refuses it at the first sync.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from central.city import City
from central.registry import add_node
from central.tls import BOXES, TLS_DIR, issue_server_cert, key_pem, new_key, open_ca
from edge.errors import ConfigError
from edge.lantls import BOX_CERT, BOX_KEY, CITY_CA
from edge.node import NODE_FILE, Node, NodeConfig, create_node_dir
from edge.syncstate import SyncState
from ops import kitfiles
from sync import wire
from sync.batch import encode_batch
from sync.clock import Clock
from sync.errors import SyncError
from sync.identity import Identity, fingerprint, verify
from sync.transport import check_pin

KIT_FORMAT = 1
MIN_PASSPHRASE = 10
DEFAULT_VALID_DAYS = 30
DAY_MS = 86_400_000
MANIFEST, SIGNATURE = "MANIFEST.json", "MANIFEST.sig"
NODE_JSON, KEY_FILE, SNAPSHOT, LITESTREAM = "node.json", "node.key.p8", "snapshot.msgpack", "litestream.yml"
WHEELHOUSE = "wheelhouse"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 1
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 2**17, 8, 2
"""The key file names its scrypt cost; a damaged or hostile one must not make an old box spend
gigabytes of memory or minutes deriving (at most twice the memory and time of today's cost)."""
KEY_PEM_LABEL = "MOTCUA SCRYPT AES-GCM ENCRYPTED PKCS8 KEY"
TLS_KEY_LABEL = "MOTCUA SCRYPT AES-GCM ENCRYPTED TLS KEY"
KIT_TLS_CERT, KIT_TLS_KEY, KIT_CITY_CA = "tls/box.pem", "tls/box.key.p8", "tls/city-ca.pem"


class KitRefused(ConfigError):
    """The kit (or the box) is not fit to apply; the message names what and what to do."""


@dataclass(frozen=True)
class Applied:
    node: str
    unit: str
    city_fingerprint: str
    already: bool
    ops: int = 0


MAX_CURSOR = 2**63 - 1
"""The largest feed position SQLite can hold (a signed 64-bit integer)."""


class Snapshot(msgspec.Struct, frozen=True):
    """The unit's scope as the city held it when the kit was made."""

    format: int
    city_node: str
    cursor: Annotated[int, msgspec.Meta(ge=0, le=MAX_CURSOR)]
    """The city's feed cursor after these batches: the node's first sync pulls only what is newer."""
    batches: list[bytes]
    certs: list[wire.Cert]


# --- the private key --------------------------------------------------------------------------


def _kdf(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def encrypt_key(identity: Identity, passphrase: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _kdf(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(passphrase.encode())
    der = identity.private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    sealed = AESGCM(key).encrypt(nonce, der, identity.node.encode())
    headers = f"Node: {identity.node}\nKDF: scrypt,{SCRYPT_N},{SCRYPT_R},{SCRYPT_P},{salt.hex()}\n"
    headers += f"Cipher: AES-256-GCM,{nonce.hex()}\n\n"
    body = base64.encodebytes(sealed).decode()
    return f"-----BEGIN {KEY_PEM_LABEL}-----\n{headers}{body}-----END {KEY_PEM_LABEL}-----\n".encode()


def decrypt_key(data: bytes, unit: str, passphrase: str) -> Identity:
    try:
        text = data.decode("ascii")
        head, _, rest = text.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in head.splitlines()[1:])
        _, n, r, p, salt = fields["KDF"].split(",")
        nonce = bytes.fromhex(fields["Cipher"].split(",")[1])
        if len(nonce) != 12:
            raise ValueError(f"an AES-GCM nonce has 12 bytes, not {len(nonce)}")
        sealed = base64.decodebytes(rest.split("-----END", 1)[0].encode())
        node = fields["Node"]
        cost = int(n), int(r), int(p)
        if not (
            2 <= cost[0] <= MAX_SCRYPT_N and 1 <= cost[1] <= MAX_SCRYPT_R and 1 <= cost[2] <= MAX_SCRYPT_P
        ):
            raise ValueError(f"scrypt parameters {cost} are outside what a kit uses")
        kdf = _kdf(bytes.fromhex(salt), *cost)
    except (ValueError, KeyError, IndexError) as exc:
        raise KitRefused(f"{KEY_FILE} is not a motcua key file; ask city IT for a new kit") from exc
    try:
        der = AESGCM(kdf.derive(passphrase.encode())).decrypt(nonce, sealed, node.encode())
    except InvalidTag:
        raise KitRefused("wrong passphrase: the kit's key did not open; check it with city IT") from None
    private = load_der_private_key(der, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise KitRefused(f"{KEY_FILE} does not hold an Ed25519 key")
    return Identity.from_private_bytes(
        unit, private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    )


def seal_tls_key(key_pem: bytes, node: str, passphrase: str) -> bytes:
    """The box's TLS key, sealed like the node key (scrypt + AES-256-GCM, the node id bound in)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _kdf(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(passphrase.encode())
    sealed = AESGCM(key).encrypt(nonce, key_pem, f"tls:{node}".encode())
    headers = f"Node: {node}\nKDF: scrypt,{SCRYPT_N},{SCRYPT_R},{SCRYPT_P},{salt.hex()}\n"
    headers += f"Cipher: AES-256-GCM,{nonce.hex()}\n\n"
    body = base64.encodebytes(sealed).decode()
    return f"-----BEGIN {TLS_KEY_LABEL}-----\n{headers}{body}-----END {TLS_KEY_LABEL}-----\n".encode()


def open_tls_key(data: bytes, node: str, passphrase: str) -> bytes:
    try:
        text = data.decode("ascii")
        head, _, rest = text.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in head.splitlines()[1:])
        _, n, r, p, salt = fields["KDF"].split(",")
        cost = int(n), int(r), int(p)
        if not (
            2 <= cost[0] <= MAX_SCRYPT_N and 1 <= cost[1] <= MAX_SCRYPT_R and 1 <= cost[2] <= MAX_SCRYPT_P
        ):
            raise ValueError(f"scrypt parameters {cost} are outside what a kit uses")
        nonce = bytes.fromhex(fields["Cipher"].split(",")[1])
        sealed = base64.decodebytes(rest.split("-----END", 1)[0].encode())
        kdf = _kdf(bytes.fromhex(salt), *cost)
    except (ValueError, KeyError, IndexError) as exc:
        raise KitRefused(f"{KIT_TLS_KEY} is not a motcua key file; ask city IT for a new kit") from exc
    try:
        return AESGCM(kdf.derive(passphrase.encode())).decrypt(nonce, sealed, f"tls:{node}".encode())
    except (InvalidTag, ValueError):
        raise KitRefused(f"{KIT_TLS_KEY} did not open with the kit's passphrase; ask city IT") from None


def issue_box_tls(city: City, node: str, names: list[str]) -> tuple[bytes, bytes, bytes]:
    """(certificate chain, private key, CA certificate) PEM of a box's LAN HTTPS; the city keeps
    the certificate in DIR/tls/boxes/NODE.pem (never the key)."""
    ca = open_ca(city.node.data_dir)
    key = new_key()
    cert = issue_server_cert(ca, key.public_key(), names, common_name=f"motcua {node}")
    boxes = city.node.data_dir / TLS_DIR / BOXES
    boxes.mkdir(parents=True, exist_ok=True)
    (boxes / f"{node}.pem").write_bytes(cert)
    return cert + ca.pem, key_pem(key), ca.pem


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise ConfigError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")


# --- making a kit (at the city) ---------------------------------------------------------------


def city_snapshot(city: City, unit: str, exclude: str) -> Snapshot:
    batches: list[bytes] = []
    cursor = 0
    while True:
        part, slice_ = city.node.replica.pull({unit, "*"}, cursor, exclude=exclude)
        batches.extend(encode_batch(b) for b in part)
        cursor = slice_.cursor
        if slice_.done:
            break
    return Snapshot(KIT_FORMAT, city.node.identity.node, cursor, batches, city.fleet.certs())


def build_wheelhouse(repo_root: Path, out: Path, progress: Callable[[str], None]) -> None:
    """``pip wheel`` the project (htmx must be built into edge/static/vendor) and its
    dependencies, plus litestream, for the running Python. Needs the package index."""
    if not (repo_root / "edge" / "static" / "vendor" / "htmx.min.js").exists():
        raise ConfigError(f"{repo_root}/edge/static/vendor/htmx.min.js is missing: run 'make' first")
    progress(f"building the wheelhouse for Python {sys.version_info[0]}.{sys.version_info[1]} …")
    command = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--wheel-dir"]
    command += [str(out), str(repo_root), *kitfiles.INSTALL_PACKAGES[1:]]
    with subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(("Collecting", "Saved", "Building wheel", "Successfully", "ERROR")):
                progress("  " + line.rstrip())
    if proc.returncode != 0:
        raise ConfigError(f"pip wheel failed (exit {proc.returncode}): is the package index reachable?")
    progress(f"  {len(list(out.glob('*.whl')))} wheels in {WHEELHOUSE}/")


def _files(kit: Path) -> Iterator[Path]:
    for path in sorted(kit.rglob("*")):
        if path.is_file() or path.is_symlink():
            yield path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_kit(
    city: City,
    unit: str,
    central_url: str,
    out: str | Path,
    passphrase: str,
    *,
    valid_days: int = DEFAULT_VALID_DAYS,
    tls_pin: str | None = None,
    insecure_lan_test: bool = False,
    lan_names: list[str] | None = None,
    wheelhouse_from: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Register a node of ``unit`` and write its kit to ``out``; returns the manifest.

    ``wheelhouse_from``: the project's source tree to build the wheelhouse from (None: no
    wheelhouse). The kit is written beside ``out`` and renamed into place when complete."""
    target = Path(out)
    check_passphrase(passphrase)
    if valid_days < 1:
        raise ConfigError("--valid-days must be at least 1")
    if tls_pin is not None:
        try:
            tls_pin = check_pin(tls_pin)
        except ValueError as exc:
            raise ConfigError(f"--tls-pin: {exc}") from exc
    if central_url.startswith("http://") and not insecure_lan_test:
        raise ConfigError(
            f"{central_url} is plain HTTP: a box syncs with the city over HTTPS "
            "(give an https:// address and --tls-pin; plain HTTP only with --insecure-lan-test)"
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; choose a new kit directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    new = add_node(city, unit, central_url, tls_pin=tls_pin, insecure_lan_test=insecure_lan_test)
    node_id = new.identity.node
    progress(f"registered node {node_id} of unit {new.registration.unit}")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        config = {k: v for k, v in new.node_file.items() if k != "private_key"}
        config["format"] = KIT_FORMAT
        (work / NODE_JSON).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (work / KEY_FILE).write_bytes(encrypt_key(new.identity, passphrase))
        chain, tls_key, ca_pem = issue_box_tls(city, node_id, lan_names or [f"motcua-{unit}", "localhost"])
        (work / "tls").mkdir()
        (work / KIT_TLS_CERT).write_bytes(chain)
        (work / KIT_TLS_KEY).write_bytes(seal_tls_key(tls_key, node_id, passphrase))
        (work / KIT_CITY_CA).write_bytes(ca_pem)
        snapshot = city_snapshot(city, unit, node_id)
        (work / SNAPSHOT).write_bytes(wire.encode(snapshot))
        progress(f"snapshot: {len(snapshot.batches)} signed batches, {len(snapshot.certs)} certificates")
        (work / LITESTREAM).write_text(kitfiles.LITESTREAM_YML, encoding="utf-8")
        (work / "systemd").mkdir()
        (work / "systemd" / "motcua-edge.service").write_text(kitfiles.EDGE_SERVICE, encoding="utf-8")
        (work / "systemd" / "motcua-backup.service").write_text(kitfiles.BACKUP_SERVICE, encoding="utf-8")
        (work / "install.sh").write_text(kitfiles.INSTALL_SH, encoding="utf-8")
        (work / "install.sh").chmod(0o755)
        if wheelhouse_from is not None:
            (work / WHEELHOUSE).mkdir()
            build_wheelhouse(wheelhouse_from, work / WHEELHOUSE, progress)
        created = city.node.clock.wall_ms()
        manifest: dict[str, Any] = {
            "format": KIT_FORMAT,
            "node": node_id,
            "unit": new.registration.unit,
            "city_node": city.node.identity.node,
            "city_key": city.node.identity.public_raw.hex(),
            "created_ms": created,
            "expires_ms": created + valid_days * DAY_MS,
            "files": [
                {"path": p.relative_to(work).as_posix(), "size": p.stat().st_size, "sha256": _sha256(p)}
                for p in _files(work)
            ],
        }
        body = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        (work / MANIFEST).write_bytes(body)
        (work / SIGNATURE).write_text(city.node.identity.sign(body).hex() + "\n", encoding="ascii")
        if target.exists():
            target.rmdir()
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        progress(
            f"the kit was not written; node {node_id} is registered: revoke it with 'motcua node revoke'"
        )
        raise
    return manifest


# --- checking and applying a kit (on the box) -------------------------------------------------


@dataclass(frozen=True)
class Verified:
    kit: Path
    manifest: dict[str, Any]
    city_key: bytes

    @property
    def city_fingerprint(self) -> str:
        return fingerprint(self.city_key)


def date_text(ms: int) -> str:
    return time.strftime("%d/%m/%Y %H:%M", time.localtime(ms / 1000))


def verify_kit(kit: str | Path, *, expect_city: str | None = None, now_ms: int | None = None) -> Verified:
    """Check the kit's signature, files and expiry; raise :class:`KitRefused` naming the problem."""
    root = Path(kit)
    if not root.is_dir():
        raise KitRefused(f"{root} is not a kit directory (is the USB stick mounted?)")
    try:
        body = (root / MANIFEST).read_bytes()
        signature = bytes.fromhex((root / SIGNATURE).read_text(encoding="ascii").strip())
    except FileNotFoundError as exc:
        raise KitRefused(f"{Path(exc.filename).name} is missing from the kit; copy the kit again") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise KitRefused(f"{SIGNATURE} is damaged; copy the kit again") from exc
    try:
        manifest = json.loads(body)
        city_key = bytes.fromhex(manifest["city_key"])
        listed = {str(f["path"]): (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
        expires = int(manifest["expires_ms"])
    # A number like 1e999 reads as infinity (OverflowError in int()); deep nesting, RecursionError.
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise KitRefused(f"{MANIFEST} is damaged; copy the kit again") from exc
    try:
        verify(city_key, signature, body)
    except SyncError:
        raise KitRefused(f"{MANIFEST} is not signed by the city key it names: the kit was altered") from None
    verified = Verified(root, manifest, city_key)
    if expect_city is not None and expect_city.strip().lower() != verified.city_fingerprint:
        raise KitRefused(
            f"this kit is signed by city key {verified.city_fingerprint}, not {expect_city.strip()}: "
            "do not use it; call city IT"
        )
    present = {p.relative_to(root).as_posix() for p in _files(root)} - {MANIFEST, SIGNATURE}
    for path in sorted(listed.keys() - present):
        raise KitRefused(f"{path} is missing from the kit; copy the kit again")
    for path in sorted(present - listed.keys()):
        raise KitRefused(f"{path} is not part of the kit (an extra file): remove it or copy the kit again")
    for path, (size, sha) in sorted(listed.items()):
        file = root / path
        if file.is_symlink() or file.stat().st_size != size or _sha256(file) != sha:
            raise KitRefused(f"{path} was altered or damaged; copy the kit again from city IT's original")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if now > expires:
        raise KitRefused(
            f"this kit expired on {date_text(expires)} (the box's clock reads {date_text(now)}): "
            "ask city IT for a new kit, or set the box's clock if it is wrong"
        )
    return verified


def applied_node(data: Path) -> str | None:
    try:
        return str(json.loads((data / NODE_FILE).read_text(encoding="utf-8"))["node"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise KitRefused(f"{data / NODE_FILE} is damaged; this box needs city IT, not a kit") from exc


def _config(verified: Verified) -> NodeConfig:
    try:
        raw = json.loads((verified.kit / NODE_JSON).read_text(encoding="utf-8"))
        config = NodeConfig(
            node=str(raw["node"]),
            unit=str(raw["unit"]),
            province=str(raw["province"]),
            central_url=str(raw["central_url"]),
            central_key=str(raw["central_key"]),
            central_node=str(raw["central_node"]),
            tls_pin=None if raw.get("tls_pin") is None else check_pin(str(raw["tls_pin"])),
            insecure_lan_test=raw.get("insecure_lan_test", False) is True,
        )
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise KitRefused(f"{NODE_JSON} is not a node description: {exc}") from exc
    manifest = verified.manifest
    if (config.node, config.central_key, config.central_node) != (
        manifest.get("node"),
        verified.city_key.hex(),
        manifest.get("city_node"),
    ):
        raise KitRefused(f"{NODE_JSON} does not match the kit's manifest")
    return config


def apply_kit(
    verified: Verified, data_dir: str | Path, passphrase: str, clock: Clock | None = None
) -> Applied:
    """Create the node of a verified kit in ``data_dir``: nothing there changes unless it all works."""
    data = Path(data_dir).absolute()
    config = _config(verified)
    fp = verified.city_fingerprint
    existing = applied_node(data)
    if existing == config.node:
        return Applied(config.node, config.unit, fp, already=True)
    if existing is not None:
        raise KitRefused(f"{data} already holds node {existing}; this kit is for {config.node}")
    if data.exists() and (not data.is_dir() or any(data.iterdir())):
        raise KitRefused(f"{data} is not empty: give an empty or new directory for the node")
    identity = decrypt_key((verified.kit / KEY_FILE).read_bytes(), config.unit, passphrase)
    if identity.node != config.node:
        raise KitRefused(f"{KEY_FILE} is not the key of node {config.node}")
    try:
        snapshot = msgspec.msgpack.decode((verified.kit / SNAPSHOT).read_bytes(), type=Snapshot)
    # msgspec reports a string that is not UTF-8 as UnicodeDecodeError, not as DecodeError.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise KitRefused(f"{SNAPSHOT} is damaged: {exc}") from exc
    data.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{data.name}.kit-", dir=data.parent))
    try:
        ops = _build(work, identity, config, verified.city_key, snapshot, clock)
        shutil.copyfile(verified.kit / LITESTREAM, work / LITESTREAM)
        _install_tls(verified.kit, work, config.node, passphrase)
        if data.exists():
            data.rmdir()  # empty, checked above: a mount point or a directory made for the node
        work.rename(data)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Applied(config.node, config.unit, fp, already=False, ops=ops)


def _install_tls(kit: Path, work: Path, node: str, passphrase: str) -> None:
    """The box's LAN certificate into DIR/tls (a kit made before it had one: nothing)."""
    if not (kit / KIT_TLS_CERT).exists():
        return
    key = open_tls_key((kit / KIT_TLS_KEY).read_bytes(), node, passphrase)
    target = work / TLS_DIR
    target.mkdir(mode=0o700)
    fd = os.open(target / BOX_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    shutil.copyfile(kit / KIT_TLS_CERT, target / BOX_CERT)
    shutil.copyfile(kit / KIT_CITY_CA, target / CITY_CA)


def _build(
    work: Path, identity: Identity, config: NodeConfig, city_key: bytes, snap: Snapshot, clock: Clock | None
) -> int:
    create_node_dir(work, identity, config)
    node = Node(work, config, identity, clock or Clock())
    try:
        node.replica.trust(config.central_node or "", city_key)
        try:
            for cert in snap.certs:
                wire.check_cert(cert, city_key)
                if cert.node == identity.node:
                    continue
                node.replica.trust(cert.node, cert.public_key)
                if cert.revoked_after is not None:
                    node.replica.revoke(cert.node, cert.revoked_after)
            merged = sum(node.replica.merge(batch).applied for batch in snap.batches)
        except SyncError as exc:
            raise KitRefused(f"{SNAPSHOT} does not verify ({exc}); ask city IT for a new kit") from exc
        SyncState.set_feed_cursor(node.replica, snap.cursor)
        return merged
    finally:
        node.close()
