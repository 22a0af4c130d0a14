"""HttpPeer classifies what goes wrong by class (STYLE 6), never leaving it to a message's text."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sync.clock import Clock
from sync.errors import (
    PeerRefused,
    PeerTimeout,
    PeerUnavailable,
    PeerUnreachable,
    RevokedNode,
    SyncError,
)
from sync.identity import Identity
from sync.transport import HttpPeer


def peer(handler: Callable[[httpx.Request], httpx.Response]) -> HttpPeer:
    return HttpPeer(
        "http://city", Identity.generate("31135"), Clock(), transport=httpx.MockTransport(handler)
    )


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def answering(status: int, body: object = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (raising(httpx.ReadTimeout("slow")), PeerTimeout),
        (raising(httpx.ConnectTimeout("slow")), PeerTimeout),
        (raising(httpx.ConnectError("refused")), PeerUnreachable),
        (raising(httpx.RemoteProtocolError("cut")), PeerUnreachable),
        (answering(502), PeerUnavailable),
        (answering(503), PeerUnavailable),
        (answering(403, {"error": {"code": "revoked_node", "message": "revoked"}}), RevokedNode),
        (answering(418, {"error": {"code": "no_such_code", "message": "teapot"}}), PeerRefused),
        (answering(400), PeerRefused),
    ],
)
def test_errors_are_classified_by_class(
    handler: Callable[[httpx.Request], httpx.Response], expected: type[SyncError]
) -> None:
    with pytest.raises(SyncError) as caught:
        peer(handler).digest()
    assert type(caught.value) is expected


def test_link_errors_are_retryable_and_refusals_are_not() -> None:
    assert PeerTimeout("x").retryable
    assert PeerUnavailable("x").retryable
    assert issubclass(PeerTimeout, PeerUnreachable)
    assert issubclass(PeerUnavailable, PeerUnreachable)
    refused = PeerRefused("teapot", 418)
    assert not refused.retryable
    assert refused.status == 418


def test_an_unknown_code_keeps_the_peers_status_and_message() -> None:
    with pytest.raises(PeerRefused) as caught:
        peer(answering(409, {"error": {"code": "?", "message": "not now"}})).digest()
    assert caught.value.status == 409
    assert caught.value.message == "not now"
