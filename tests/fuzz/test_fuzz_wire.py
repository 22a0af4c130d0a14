"""Fuzzing the sync protocol's messages and signed requests, in memory and at the city's door.

The messages (hello, pull, replies, certificates, acknowledgements) are decoded from bytes a
link delivers; :func:`sync.wire.verify_request` reads headers anyone can write. Damaged, they
must give the message back or a typed :class:`~sync.errors.SyncError`. Through the city's real
sync endpoints (the Starlette app in process, a box's real key signing each request): nothing a
box sends makes the city answer 500, every refusal is the JSON error with a code and a message,
and nothing of a refused request reaches the city's log.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import msgspec
import pytest
import zstandard
from fuzzing import ODD_MSGPACK, assert_clear, examples, mutated_bytes, mutated_tree, refusal
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from central.app import create_central_app
from central.hub import Hub
from edge.settings import load
from sync import wire
from sync.batch import encode_batch
from sync.errors import SyncError, UnknownNode
from sync.identity import Identity
from sync.wire import NonceBook

CITY = Identity.generate("92")
BOX = Identity.generate("31135")
NOW_MS = 1_795_000_000_000


def _messages() -> list[msgspec.Struct]:
    cert = wire.issue_cert(CITY, BOX.node, BOX.unit, BOX.public_raw, NOW_MS, None)
    return [
        wire.Hello("motcua 0.1.0", 12, 40, NOW_MS, 3600, 2, "link down", NOW_MS - 5000, NOW_MS - 10),
        wire.HelloReply(NOW_MS, 10, 400, -25, [cert]),
        wire.PullRequest(40, 500),
        wire.PullReply(41, False, [b"\x28\xb5\x2f\xfd" + bytes(20)], [cert], ["ab" * 32]),
        wire.sign_ack(CITY, BOX.node, 12, b"batch", NOW_MS),
        cert,
        wire.TimeReply(NOW_MS, [1, 2]),
        wire.DigestReply(bytes(32), 400),
    ]


MESSAGES = _messages()


def _decode_or_refuse(data: bytes, kind: type) -> None:
    error = refusal(lambda: wire.decode(data, kind), SyncError)
    if error is not None:
        assert_clear(error)


@examples(200)
@given(message=st.sampled_from(MESSAGES), data=st.data())
def test_damaged_messages_decode_or_are_refused_typed(message, data):
    damaged = data.draw(mutated_bytes(wire.encode(message)))
    _decode_or_refuse(damaged, type(message))


ODD = st.sampled_from(ODD_MSGPACK) | st.binary(max_size=40) | st.integers()


@examples(200)
@given(message=st.sampled_from(MESSAGES), data=st.data())
def test_messages_with_odd_values_decode_or_are_refused_typed(message, data):
    tree = data.draw(mutated_tree(msgspec.msgpack.decode(wire.encode(message)), ODD))
    try:
        raw = msgspec.msgpack.encode(tree)
    except OverflowError:
        return
    _decode_or_refuse(raw, type(message))


@examples(150)
@given(data=st.data())
def test_certificates_and_acks_that_do_not_verify_are_refused_typed(data):
    """A certificate or acknowledgement that decodes but was altered never verifies."""
    original = data.draw(st.sampled_from([m for m in MESSAGES if isinstance(m, wire.Cert | wire.Ack)]))
    tree = data.draw(mutated_tree(msgspec.msgpack.decode(wire.encode(original)), ODD))
    try:
        message = wire.decode(msgspec.msgpack.encode(tree), type(original))
    except (SyncError, OverflowError):
        return
    check = wire.check_cert if isinstance(original, wire.Cert) else wire.check_ack
    error = refusal(lambda: check(message, CITY.public_raw), SyncError)
    if error is not None:
        assert_clear(error)
        return
    assert message == original, "an altered certificate or acknowledgement verified"


# --- signed request headers ---------------------------------------------------------------------

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80) | st.sampled_from(
    ("", "2", "\u00b2", "\u0661", "1" * 5000, "-1", " 2", "2 ", "9" * 40, "==", "A" * 87 + "=")
)


def _key_of(node: str) -> bytes:
    if node != BOX.node:
        raise UnknownNode(f"no key for {node}")
    return BOX.public_raw


def _same_meaning(name: str, value: str, original: str) -> bool:
    """Whether a header the hub accepted says what the signed one said."""
    if name == wire.H_PROTOCOL:
        return int(value) in wire.SUPPORTED  # not signed: any served version may be claimed
    if name == wire.H_SIGNATURE:
        return base64.urlsafe_b64decode(value.encode()) == base64.urlsafe_b64decode(original.encode())
    if name == wire.H_TIME:
        return int(value) == int(original)
    return value == original


@examples(300)
@given(
    name=st.sampled_from((wire.H_PROTOCOL, wire.H_NODE, wire.H_TIME, wire.H_NONCE, wire.H_SIGNATURE)),
    value=HEADER_TEXT,
    drop=st.booleans(),
)
def test_a_request_with_any_header_altered_is_refused_typed(name, value, drop):
    """Headers travel as latin-1 text: any of it, in any signed header, is a typed refusal,
    unless it still says the same thing."""
    body = b"hello body"
    headers = wire.sign_request(BOX, "POST", "/sync/v1/hello", body, NOW_MS)
    original = headers[name]
    if drop:
        del headers[name]
    else:
        headers[name] = value
    error = refusal(
        lambda: wire.verify_request(headers, "POST", "/sync/v1/hello", body, NOW_MS, _key_of, NonceBook()),
        SyncError,
    )
    if error is not None:
        assert_clear(error)
        return
    assert not drop, f"a request without {name} was accepted"
    assert _same_meaning(name, value, original), f"{name}: {value!r} was accepted"


# --- through the city's sync endpoints ----------------------------------------------------------


@pytest.fixture(scope="module")
def city_door(linked) -> Iterator[TestClient]:
    app = create_central_app(load(linked.city.node.data_dir), Hub(linked.city))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def bodies(linked) -> dict[str, bytes]:
    """Valid request bodies of the box, made once: the examples damage these."""
    me = linked.edge.identity.node
    have = linked.city.node.replica.vector()[me]
    batches = list(linked.edge.replica.batches({me: have}, nodes=[me]))
    hello = wire.Hello("motcua 0.1.0", linked.edge.replica.vector()[me], 0, linked.edge.clock.wall_ms())
    return {
        "/sync/v1/hello": wire.encode(hello),
        "/sync/v1/push": encode_batch(batches[0]),
        "/sync/v1/pull": wire.encode(wire.PullRequest(0, 50)),
        "/sync/v1/digest": b"",
    }


@examples(80)
@given(data=st.data())
def test_the_city_refuses_damaged_requests_typed_and_applies_nothing(linked, city_door, bodies, data):
    path = data.draw(st.sampled_from(sorted(bodies)))
    how = data.draw(st.sampled_from(("bytes", "tree", "garbage")))
    body = bodies[path]
    if how == "bytes" or not body:
        body = data.draw(mutated_bytes(body))
    elif how == "garbage":
        body = data.draw(st.binary(max_size=300))
    else:
        zstd = path.endswith("/push")  # a batch travels compressed
        raw = zstandard.ZstdDecompressor().decompress(body) if zstd else body
        tree = data.draw(mutated_tree(msgspec.msgpack.decode(raw), ODD))
        try:
            raw = msgspec.msgpack.encode(tree)
        except OverflowError:
            return
        body = zstandard.ZstdCompressor().compress(raw) if zstd else raw
    before = linked.city_log()
    headers = wire.sign_request(linked.edge.identity, "POST", path, body, linked.city.node.clock.wall_ms())
    answer = city_door.post(path, content=body, headers=headers)
    assert answer.status_code < 500, f"the city failed on a damaged {path}: {answer.text[:300]}"
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert error["code"]
        assert error["message"].strip()
        assert linked.city_log() == before, "a refused request changed the city's log"
    assert linked.city_holds_only_genuine_ops()


BLOB_PATHS = (
    "/sync/v1/blobs/{sha}/size",
    "/sync/v1/blobs/{sha}/chunks/{offset}",
    "/sync/v1/blobs/{sha}/read/{offset}/{size}",
)
DIGITS = st.sampled_from(("0", "1", "4096", "281474976710656", "9223372036854775808", "9" * 40, "1" * 5000))


@examples(60)
@given(
    template=st.sampled_from(BLOB_PATHS),
    sha=st.sampled_from(("ab" * 32, "AB" * 32, "g" * 64, "ab" * 31, "", ".."))
    | st.text("0123456789abcdefxyz", max_size=70),
    offset=DIGITS,
    size=DIGITS,
    chunk=st.binary(max_size=64),
)
def test_the_city_answers_odd_blob_requests_without_failing(
    linked, city_door, template, sha, offset, size, chunk
):
    path = template.format(sha=sha, offset=offset, size=size)
    headers = wire.sign_request(linked.edge.identity, "POST", path, chunk, linked.city.node.clock.wall_ms())
    answer = city_door.post(path, content=chunk, headers=headers)
    assert answer.status_code < 500, f"{path[:120]}: {answer.text[:300]}"
