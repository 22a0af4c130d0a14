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
"""

from __future__ import annotations

from typing import Protocol

import httpx

from sync import errors as sync_errors
from sync import wire
from sync.blobs import BlobNotFound
from sync.clock import Clock
from sync.errors import PeerRefused, PeerTimeout, PeerUnavailable, PeerUnreachable, SyncError
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


class HttpPeer:
    """A hub over HTTP(S). ``transport`` lets tests pass httpx's ASGI or mock transports."""

    def __init__(
        self,
        base_url: str,
        identity: Identity,
        clock: Clock,
        *,
        timeout: float = 20.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
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
        )

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, body: bytes = b"", *, signed: bool = True) -> httpx.Response:
        headers = {"content-type": "application/octet-stream"}
        if signed:
            headers.update(wire.sign_request(self.identity, method, path, body, self.clock.wall_ms()))
            headers[wire.H_PROTOCOL] = str(self.protocol)
        try:
            response = self._client.request(method, path, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise PeerTimeout(f"the city server did not answer in time ({exc.__class__.__name__})") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
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
