"""The city's TLS certificate authority (docs/decisions/0010).

The city keeps a CA of its own, separate from the city key: the city key is Ed25519, which
browsers do not accept in certificates, so the CA key is ECDSA P-256 (what every browser and
OpenSSL accept). It lives beside the city's data, readable by the service user only::

    DIR/tls/ca.key     the CA's private key, PKCS#8 PEM, mode 0600 (never leaves the city)
    DIR/tls/ca.pem     the CA's self-signed certificate: what office browsers trust, once

It issues server certificates (ECDSA P-256, SHA-256, serverAuth, the names and addresses in
the subject alternative name): the city's own, when it serves HTTPS itself, and the boxes'.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_DIR, CA_KEY, CA_CERT = "tls", "ca.key", "ca.pem"
CA_DAYS = 3650
SERVER_DAYS = 397
"""A server certificate's life: browsers refuse longer ones (CA/Browser Forum's 398 days)."""
RENEW_DAYS = 30
"""A box's certificate is renewed (and shown as expiring on the fleet page) this close to its end."""


@dataclass(frozen=True)
class CityCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def open_ca(data_dir: str | Path, name: str = "motcua") -> CityCA:
    """The city's CA in ``data_dir``, made on first use (a self-signed CA certificate of ten
    years, allowed to sign server certificates only: path length 0)."""
    directory = Path(data_dir) / TLS_DIR
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if key_path.exists() and cert_path.exists():
        key = load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an ECDSA key")
        return CityCA(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} city CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    return CityCA(key, cert)


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue_server_cert(
    ca: CityCA,
    public_key: ec.EllipticCurvePublicKey,
    names: list[str],
    *,
    common_name: str,
    days: int = SERVER_DAYS,
    not_before: datetime.datetime | None = None,
) -> bytes:
    """A server certificate (PEM) for ``names`` (host names or IP addresses) over ``public_key``."""
    if not names:
        raise ValueError("a server certificate needs at least one host name or address")
    start = not_before or _now() - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


def expires_ms(cert_pem: bytes) -> int:
    return int(x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.timestamp() * 1000)


BOXES = "boxes"
"""DIR/tls/boxes/NODE.pem: each box's current LAN certificate, as the city issued it."""


def box_certs(data_dir: str | Path) -> dict[str, bytes]:
    """Each box's current LAN certificate (PEM) by node id."""
    directory = Path(data_dir) / TLS_DIR / BOXES
    return {p.stem: p.read_bytes() for p in sorted(directory.glob("*.pem"))} if directory.is_dir() else {}


def expiring(data_dir: str | Path, now_ms: int, within_days: int = RENEW_DAYS) -> list[tuple[str, int]]:
    """(node, expiry ms) of the boxes whose LAN certificate ends within ``within_days`` (or has
    ended), soonest first."""
    horizon = now_ms + within_days * 86_400_000
    found = [(node, expires_ms(pem)) for node, pem in box_certs(data_dir).items()]
    return sorted(((n, e) for n, e in found if e <= horizon), key=lambda item: item[1])


def renewal(data_dir: str | Path, node: str, now_ms: int) -> bytes:
    """The box's LAN certificate chain (PEM) to hand it with its hello, or b"".

    A box certificate that ends within :data:`RENEW_DAYS` is renewed here, over the same public
    key (the city never held the box's private key after the kit) and for the same names. The
    chain goes with every hello while the certificate is less than :data:`RENEW_DAYS` old, so a
    reply lost on the way is made up at the next hello; the box ignores one it already has."""
    path = Path(data_dir) / TLS_DIR / BOXES / f"{node}.pem"
    if not path.is_file():
        return b""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    now = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.UTC)
    renew = datetime.timedelta(days=RENEW_DAYS)
    ca = open_ca(data_dir)
    if cert.not_valid_after_utc - now <= renew:
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return b""
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        names = [*san.get_values_for_type(x509.DNSName), *names]
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        renewed = issue_server_cert(
            ca,
            public_key,
            names,
            common_name=str(common[0].value) if common else node,
            not_before=now - datetime.timedelta(minutes=5),
        )
        temporary = path.with_suffix(".pem.new")
        temporary.write_bytes(renewed)
        os.replace(temporary, path)
        cert = x509.load_pem_x509_certificate(renewed)
    if now - cert.not_valid_before_utc > renew:
        return b""
    return cert.public_bytes(Encoding.PEM) + ca.pem
