"""HTTPS on the office LAN: the box's certificate, issued by the city's CA (decision 0010).

DIR/tls/box.pem       the box's certificate followed by the city CA's (a full chain)
DIR/tls/box.key       its private key, PKCS#8 PEM, mode 0600
DIR/tls/city-ca.pem   the city CA's certificate: what office browsers trust, once

The kit writes them (``motcua provision apply``); ``motcua edge serve`` serves HTTPS with them,
answers plain HTTP on ``http_redirect_port`` with a redirect only, marks cookies Secure and sends
HSTS. A box without them (made by ``edge init`` for development) serves plain HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from starlette.types import Receive, Scope, Send

TLS_DIR, BOX_CERT, BOX_KEY, CITY_CA = "tls", "box.pem", "box.key", "city-ca.pem"
HSTS = b"max-age=31536000"
"""A year; no includeSubDomains: the box's name is its own, not a domain's."""


def box_tls(data_dir: str | Path) -> tuple[Path, Path] | None:
    """(certificate, key) of the box when it has both."""
    directory = Path(data_dir) / TLS_DIR
    cert, key = directory / BOX_CERT, directory / BOX_KEY
    return (cert, key) if cert.is_file() and key.is_file() else None


class RedirectToHttps:
    """The plain-HTTP listener: every request gets a 308 to the same path on HTTPS, and nothing
    else (no page, no cookie: a password typed here would cross the LAN in clear)."""

    def __init__(self, https_port: int) -> None:
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host = "localhost"
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        port = "" if self.https_port == 443 else f":{self.https_port}"
        path = quote(
            scope.get("raw_path", b"").decode("latin-1") or scope["path"], safe="/%?=&;+:@,$!*'()~-._"
        )
        query = scope.get("query_string", b"").decode("latin-1")
        location = f"https://{hostname}{port}{path}" + (f"?{query}" if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def install_renewed(data_dir: str | Path, chain: bytes) -> bool:
    """Put a renewed certificate chain from the city in place of DIR/tls/box.pem, if it is one:
    issued by the city CA the kit installed, over this box's own key, ending later than the one
    in place. Returns whether it was installed; the server uses it from its next start (uvicorn
    reads the certificate once). Anything else is refused with ValueError, and nothing changes."""
    if not chain:
        return False
    directory = Path(data_dir) / TLS_DIR
    paths = directory / BOX_CERT, directory / BOX_KEY, directory / CITY_CA
    if not all(p.is_file() for p in paths):
        return False  # a box without LAN HTTPS (made by edge init): nothing to renew
    current = x509.load_pem_x509_certificates(paths[0].read_bytes())[0]
    key = load_pem_private_key(paths[1].read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(paths[2].read_bytes())
    try:
        renewed = x509.load_pem_x509_certificates(chain)[0]
        renewed.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ValueError(f"the renewed certificate is not the city CA's: {exc}") from exc
    if renewed.public_key() != key.public_key():
        raise ValueError("the renewed certificate is not for this box's key")
    if renewed.not_valid_after_utc <= current.not_valid_after_utc:
        return False  # the one in place, or an older one
    temporary = directory / (BOX_CERT + ".new")
    temporary.write_bytes(renewed.public_bytes(Encoding.PEM) + ca.public_bytes(Encoding.PEM))
    os.replace(temporary, paths[0])
    return True
