"""Talking to the hub: the :class:`Peer` contract and its HTTP implementation over httpx.

Contract of every Peer (each call is one request; a failed call changed nothing at the hub
unless said otherwise):

- ``time()``: the hub's clock, unsigned (used to calibrate before signing anything).
- ``hello(h)``: introduce this node; idempotent.
- ``push(batch)``: the hub merges the batch all-or-nothing and returns its signed :class:`Ack`.
  Pushing the same batch twice is harmless (the second ack says the same ``have``).
- ``pull(req)``: the next slice of this node's scope after ``req.cursor``; read-only.
- ``digest()``: the hub's digest of this node's scope; read-only.
- ``blob_size(sha)``: how many bytes of an attachment the hub holds (0: none). ``put_blob(sha,
  offset, chunk)`` appends a chunk at ``offset`` (resumable; a chunk at an offset already
  written is ignored) and returns the new size; the hub checks the sha256 when it is complete.
  ``get_blob(sha, offset, size)`` reads a chunk; raises BlobNotFound if the hub lacks it.

Errors are classified where they happen (STYLE 6), by class, never by their text: a refused or
reset connection is :class:`PeerUnreachable`, a timeout its subclass :class:`PeerTimeout`, a 5xx
its subclass :class:`PeerUnavailable` (all retryable); a refusal by the hub is the typed error it
named (bad signature, revoked node, outside write scope …), or :class:`PeerRefused` if its code
names none, fatal for that request.

TLS (docs/decisions/0010): an ``https://`` hub is checked before any request goes out. With a
``tls_pin`` (hex sha256 of the certificate's SubjectPublicKeyInfo, :func:`spki_pin`) the pin
*is* the trust: the handshake's certificate must carry that key, whatever CA issued it and
whatever dates it names (a box whose clock reads 2000 before its first calibration still
connects); a certificate with another key is :class:`UntrustedPeer`, raised after the
handshake and before one byte of HTTP is written. Without a pin, the system's CA store (or
``ca_file``) and the host name are checked as any HTTPS client does. A plain ``http://`` hub is
:class:`PlainLinkRefused` unless ``allow_plain_http`` says otherwise (tests, the demo).
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from typing import Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sync import errors as sync_errors
from sync import wire
from sync.blobs import BlobNotFound
from sync.clock import Clock
from sync.errors import (
    PeerRefused,
    PeerTimeout,
    PeerUnavailable,
    PeerUnreachable,
    PlainLinkRefused,
    SyncError,
    UntrustedPeer,
)
from sync.identity import Identity


class Peer(Protocol):
    def time(self, nonce: bytes = b"") -> wire.TimeReply: ...
    def hello(self, hello: wire.Hello) -> wire.HelloReply: ...
    def push(self, batch: bytes) -> wire.Ack: ...
    def pull(self, request: wire.PullRequest) -> wire.PullReply: ...
    def digest(self) -> wire.DigestReply: ...
    def blob_size(self, sha256: str) -> int: ...
    def put_blob(self, sha256: str, offset: int, chunk: bytes) -> int: ...
    def get_blob(self, sha256: str, offset: int, size: int) -> bytes: ...


def _error_classes() -> dict[str, type[SyncError]]:
    found: dict[str, type[SyncError]] = {}
    pending: list[type[SyncError]] = [SyncError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def refusal(status: int, payload: object) -> SyncError:
    """The typed error a hub's JSON error body names (``{"error": {"code", "message"}}``)."""
    codes = {**_error_classes(), BlobNotFound.code: BlobNotFound}
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    text = str(message or f"the city server refused the request (HTTP {status})")
    cls = codes.get(str(code), SyncError)
    if cls is sync_errors.ClockDriftError:
        return sync_errors.ClockDriftError(text, drift_ms=0)
    if cls is SyncError:
        return PeerRefused(text, status)
    err: SyncError = cls(text)
    return err


def spki_pin(certificate: bytes) -> str:
    """The pin of a certificate (DER or PEM): hex sha256 of its SubjectPublicKeyInfo. It stays
    the same when the certificate is renewed over the same key."""
    cert = (
        x509.load_pem_x509_certificate(certificate)
        if certificate.lstrip().startswith(b"-----")
        else x509.load_der_x509_certificate(certificate)
    )
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def check_pin(pin: str) -> str:
    """``pin`` lowercased, or ValueError if it is not 64 hex digits."""
    text = pin.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("a TLS pin is the sha256 of the certificate's public key: 64 hex digits")
    return text


class PinMismatch(ssl.SSLCertVerificationError):
    """Raised inside the handshake's socket wrapping; :class:`HttpPeer` turns it into
    :class:`UntrustedPeer` (httpx reports it as a connection error)."""


class PinnedContext(ssl.SSLContext):
    """A client context whose only trust is a pinned public key: the certificate chain and the
    host name are not checked (``CERT_NONE``), the key of the certificate the peer presented is,
    right after the handshake, before the socket is handed back to httpx."""

    pin: str = ""

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        wrapped = super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )
        if not do_handshake_on_connect:
            wrapped.do_handshake()
        der = wrapped.getpeercert(binary_form=True)
        seen = spki_pin(der) if der else "none"
        if seen != self.pin:
            wrapped.close()
            raise PinMismatch(f"the server's certificate key has pin {seen}, not the pinned {self.pin}")
        return wrapped


def pinned_context(pin: str) -> ssl.SSLContext:
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.pin = check_pin(pin)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _untrusted(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate refusal somewhere in a connection error's chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class HttpPeer:
    """A hub over HTTP(S). ``transport`` lets tests pass httpx's ASGI or mock transports.

    ``tls_pin``: the hub's certificate key must have this pin (:func:`spki_pin`); ``ca_file``:
    without a pin, the CA bundle to check the hub's certificate against (default: the system's);
    ``allow_plain_http``: accept an ``http://`` address (tests and the demo on one machine)."""

    def __init__(
        self,
        base_url: str,
        identity: Identity,
        clock: Clock,
        *,
        timeout: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        tls_pin: str | None = None,
        ca_file: str | None = None,
        allow_plain_http: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.plain = self.base_url.lower().startswith("http://")
        self.allow_plain_http = allow_plain_http
        verify: ssl.SSLContext | str | bool = True
        if tls_pin:
            verify = pinned_context(tls_pin)
        elif ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        self.identity = identity
        self.clock = clock
        self.sent = 0
        self.received = 0
        self.protocol = wire.PROTOCOL
        """The protocol version this peer names in its requests."""
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            headers={"user-agent": "motcua-sync/1"},
            verify=verify,
        )

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, body: bytes = b"", *, signed: bool = True) -> httpx.Response:
        if self.plain and not self.allow_plain_http:
            raise PlainLinkRefused(
                f"{self.base_url} is plain HTTP and HTTPS is required: nothing was sent "
                "(plain HTTP only with the insecure test setting)"
            )
        headers = {"content-type": "application/octet-stream"}
        if signed:
            headers.update(wire.sign_request(self.identity, method, path, body, self.clock.wall_ms()))
            headers[wire.H_PROTOCOL] = str(self.protocol)
        try:
            response = self._client.request(method, path, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise PeerTimeout(f"the city server did not answer in time ({exc.__class__.__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            refused = _untrusted(exc)
            if refused is not None:
                raise UntrustedPeer(
                    f"the city server's TLS certificate is not the expected one, nothing was sent: {refused}"
                ) from exc
            raise PeerUnreachable(f"no connection to the city server ({exc.__class__.__name__})") from exc
        self.sent += len(body)
        self.received += len(response.content)
        if response.status_code >= 500:
            raise PeerUnavailable(f"the city server is in trouble (HTTP {response.status_code})")
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            raise refusal(response.status_code, payload)
        return response

    def time(self, nonce: bytes = b"") -> wire.TimeReply:
        """The city's clock; with a ``nonce``, signed by the city key for it (check with
        :func:`sync.wire.check_time`)."""
        path = "/sync/v1/time" + (f"?nonce={nonce.hex()}" if nonce else "")
        return wire.decode(self._request("GET", path, signed=False).content, wire.TimeReply)

    def hello(self, hello: wire.Hello) -> wire.HelloReply:
        return wire.decode(
            self._request("POST", "/sync/v1/hello", wire.encode(hello)).content, wire.HelloReply
        )

    def push(self, batch: bytes) -> wire.Ack:
        return wire.decode(self._request("POST", "/sync/v1/push", batch).content, wire.Ack)

    def pull(self, request: wire.PullRequest) -> wire.PullReply:
        return wire.decode(
            self._request("POST", "/sync/v1/pull", wire.encode(request)).content, wire.PullReply
        )

    def digest(self) -> wire.DigestReply:
        return wire.decode(self._request("POST", "/sync/v1/digest").content, wire.DigestReply)

    def blob_size(self, sha256: str) -> int:
        response = self._request("POST", f"/sync/v1/blobs/{sha256}/size")
        return int(response.json()["size"])

    def put_blob(self, sha256: str, offset: int, chunk: bytes) -> int:
        response = self._request("POST", f"/sync/v1/blobs/{sha256}/chunks/{offset}", chunk)
        return int(response.json()["size"])

    def get_blob(self, sha256: str, offset: int, size: int) -> bytes:
        return self._request("POST", f"/sync/v1/blobs/{sha256}/read/{offset}/{size}").content
