"""The sync endpoints over HTTP: the server side of :class:`sync.transport.HttpPeer`.

    GET  /sync/v1/time?nonce=HEX                     unsigned request: TimeReply, signed for the nonce
    POST /sync/v1/hello                              Hello -> HelloReply
    POST /sync/v1/push                               one encoded batch -> Ack
    POST /sync/v1/pull                               PullRequest -> PullReply
    POST /sync/v1/digest                             -> DigestReply
    POST /sync/v1/blobs/{sha}/size                   -> JSON {"size"}
    POST /sync/v1/blobs/{sha}/chunks/{offset}        chunk -> JSON {"size"}
    POST /sync/v1/blobs/{sha}/read/{offset}/{size}   -> raw bytes

Every request but ``time`` is signed (:func:`sync.wire.verify_request`). Success bodies are
msgpack; a refusal is the typed error, rendered as JSON ``{"error": {"code", "message"}}`` with
its status by the app's one error handler. Every request, accepted or refused, is one row of
the attempt log in fleet.db. The work runs in a thread: SQLite and Ed25519 are blocking.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from central.compat import Dialect, dialect
from central.fleet import AttemptRow, RequestOutcome
from central.hub import Caller, Counts, Hub
from central.incoming import BadChunk
from sync import wire
from sync.errors import SyncError, VerificationError

log = logging.getLogger("motcua.central")

PREFIX = "/sync/v1"
MSGPACK = "application/msgpack"
MAX_BODY = 48 * 1024 * 1024
"""A request body over this is refused before it is read whole (batches are ~256 KiB)."""


_NONCE = re.compile(f"[0-9a-f]{{{2 * wire.TIME_NONCE_BYTES}}}")


def _position(text: str) -> int:
    if not (0 < len(text) <= 18 and text.isascii() and text.isdigit()):
        raise BadChunk(f"{text[:20]!r} is not an offset or size in bytes")
    return int(text)


class RequestTooLarge(SyncError):
    status = 413
    code = "request_too_large"


Work = Callable[[Caller, Dialect, bytes, Mapping[str, Any], Counts], Response]


class SyncApi:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def routes(self) -> list[Route]:
        def post(path: str, name: str, work: Work) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._serve(request, name, work)

            return Route(PREFIX + path, endpoint, methods=["POST"], name=f"sync_{name}")

        return [
            Route(PREFIX + "/time", self.time, methods=["GET"], name="sync_time"),
            post("/hello", "hello", self._hello),
            post("/push", "push", self._push),
            post("/pull", "pull", self._pull),
            post("/digest", "digest", self._digest),
            post("/blobs/{sha}/size", "blob_size", self._blob_size),
            # Offsets and sizes are read by _position, not by Starlette's int convertor: int() of
            # 5,000 digits raises ValueError while routing, a 500 no handler sees.
            post("/blobs/{sha}/chunks/{offset}", "blob_put", self._blob_put),
            post("/blobs/{sha}/read/{offset}/{size}", "blob_get", self._blob_get),
        ]

    async def time(self, request: Request) -> Response:
        nonce = request.query_params.get("nonce")
        if nonce is not None and not _NONCE.fullmatch(nonce):
            raise VerificationError(f"the nonce must be {2 * wire.TIME_NONCE_BYTES} hex digits")
        reply = self.hub.time(bytes.fromhex(nonce) if nonce else b"")
        return Response(wire.encode(reply), media_type=MSGPACK)

    async def _serve(self, request: Request, name: str, work: Work) -> Response:
        try:
            body, too_large = await _read_body(request, MAX_BODY)
        except ClientDisconnect:
            # The link was cut mid-request: nothing of it was read, so nothing was applied.
            await run_in_threadpool(self._record_cut, name, request.headers)
            return Response(status_code=400)
        return await run_in_threadpool(
            self._handle,
            name,
            request.method,
            request.url.path,
            request.headers,
            body,
            too_large,
            dict(request.path_params),
            work,
        )

    def _record_cut(self, name: str, headers: Mapping[str, str]) -> None:
        attempt = AttemptRow(
            node=headers.get(wire.H_NODE) or "?",
            at_ms=self.hub.now_ms(),
            endpoint=name,
            ops_in=0,
            ops_out=0,
            bytes_in=0,
            bytes_out=0,
            duration_ms=0,
            outcome=RequestOutcome.FAILED,
            error_code="disconnected",
            error="the connection was cut before the request arrived whole",
        )
        self.hub.fleet.record_attempt(attempt, contact=False)

    def _handle(
        self,
        name: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        too_large: bool,
        params: Mapping[str, Any],
        work: Work,
    ) -> Response:
        started = time.monotonic()
        at = self.hub.now_ms()
        counts = Counts()
        caller: Caller | None = None
        claimed = headers.get(wire.H_NODE) or "?"

        def record(outcome: RequestOutcome, code: str | None, error: str | None, bytes_out: int) -> None:
            attempt = AttemptRow(
                node=caller.node if caller else claimed,
                at_ms=at,
                endpoint=name,
                ops_in=counts.ops_in,
                ops_out=counts.ops_out,
                bytes_in=len(body),
                bytes_out=bytes_out,
                duration_ms=int((time.monotonic() - started) * 1000),
                outcome=outcome,
                error_code=code,
                error=error,
            )
            self.hub.fleet.record_attempt(attempt, contact=caller is not None)

        try:
            if too_large:
                raise RequestTooLarge(f"the request is larger than {MAX_BODY >> 20} MiB; refused")
            caller = self.hub.admit(headers, method, path, body)
            response = work(caller, dialect(caller.protocol), body, params, counts)
        except SyncError as exc:
            record(
                RequestOutcome.REFUSED if exc.status < 500 else RequestOutcome.FAILED,
                exc.code,
                exc.message,
                0,
            )
            raise
        except Exception:
            log.exception("sync %s from %s failed", name, claimed)
            record(RequestOutcome.FAILED, "internal", "the city server failed on this request", 0)
            raise
        record(RequestOutcome.OK, None, None, len(response.body))
        return response

    # --- the endpoints ------------------------------------------------------------------------

    def _hello(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        reply = self.hub.hello(caller, talk.decode(body, wire.Hello))
        return Response(talk.encode(reply), media_type=MSGPACK)

    def _push(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        ack = self.hub.push(caller, body, counts)
        return Response(talk.encode(ack), media_type=MSGPACK)

    def _pull(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        reply = self.hub.pull(caller, talk.decode(body, wire.PullRequest), counts)
        return Response(talk.encode(reply), media_type=MSGPACK)

    def _digest(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        return Response(talk.encode(self.hub.digest(caller)), media_type=MSGPACK)

    def _blob_size(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        return JSONResponse({"size": self.hub.blob_size(caller, params["sha"])})

    def _blob_put(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        offset = _position(params["offset"])
        return JSONResponse({"size": self.hub.put_blob(caller, params["sha"], offset, body)})

    def _blob_get(
        self, caller: Caller, talk: Dialect, body: bytes, params: Mapping[str, Any], counts: Counts
    ) -> Response:
        data = self.hub.get_blob(
            caller, params["sha"], _position(params["offset"]), _position(params["size"])
        )
        return Response(data, media_type="application/octet-stream")


async def _read_body(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, or (b"", True) once it passes ``limit`` (the rest is not kept)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and len(declared) <= 18 and int(declared) > limit:
        return b"", True
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return b"", True
        parts.append(chunk)
    return b"".join(parts), False


def routes(hub: Hub) -> list[Route]:
    return SyncApi(hub).routes()
