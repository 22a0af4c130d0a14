"""Fuzzing what a box reads from the city: the replies of a sync round, damaged on the link.

The box runs real sync rounds (``sync_once`` over ``HttpPeer``) against the real city app in
process; between them, one reply of the round (the time, the hello, a push's acknowledgement,
a pull, the digest) is damaged: bytes flipped or cut, or a value inside made odd. Plain HTTP
without a pinned certificate lets anyone on the path do this. The round must end with a typed
error in its result (never raise), and the box must still work: its clock within the range a stamp can
hold, and a clerk able to receive a dossier, or warned that the clock is suspect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest
from edgekit import receive_sample
from fuzzing import ODD_MSGPACK, examples
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from central.app import create_central_app
from central.hub import Hub
from central.registry import add_node, write_node_file
from edge import clockcheck
from edge.accounts import add_account
from edge.node import Node, init_from_node_file
from edge.settings import load
from edge.syncclient import sync_once
from sync.clock import COUNTER_BITS
from sync.transport import HttpPeer

ENDPOINTS = ("/sync/v1/time", "/sync/v1/hello", "/sync/v1/push", "/sync/v1/pull", "/sync/v1/digest")
ODD = st.sampled_from(ODD_MSGPACK) | st.binary(max_size=40) | st.integers()


@dataclass
class Link:
    """Forwards the box's requests to the city; damages the reply of ``target`` with ``damage``."""

    city: TestClient
    target: str = ""
    damage: object = None
    damaged: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.city.request(
            request.method,
            request.url.raw_path.decode("ascii"),  # with the query: the time request's nonce
            content=request.content,
            headers=dict(request.headers),
        )
        content = answer.content
        if request.url.path == self.target and answer.status_code == 200 and self.damage is not None:
            content = self.damage(content)  # type: ignore[operator]
            self.damaged += 1
        return httpx.Response(
            answer.status_code, content=content, headers={"content-type": "application/msgpack"}
        )


@dataclass
class Round:
    box: Node
    link: Link
    peer: HttpPeer
    accounts: int = 0


@pytest.fixture(scope="module")
def rounds(linked) -> Iterator[Round]:
    app = create_central_app(load(linked.city.node.data_dir), Hub(linked.city))
    new = add_node(linked.city, "31135", "http://city")
    write_node_file(linked.dir / "second.node.json", new.node_file)
    box = init_from_node_file(linked.dir / "second", linked.dir / "second.node.json")
    with TestClient(app, raise_server_exceptions=False) as city:
        link = Link(city)
        peer = HttpPeer("http://city", box.identity, box.clock, transport=httpx.MockTransport(link))
        try:
            first = sync_once(box, peer, load(box.data_dir))
            assert first.error is None, first.error
            yield Round(box, link, peer)
        finally:
            peer.close()
            box.close()


@examples(40)
@given(data=st.data())
def test_a_damaged_reply_ends_the_round_typed_and_the_box_still_works(linked, rounds, data):
    rounds.accounts += 1
    add_account(linked.city.node, f"fuzz{rounds.accounts}", "Lê Văn Fuzz", "clerk", "Matkhau123", "31135")
    target = data.draw(st.sampled_from(ENDPOINTS))
    how = data.draw(st.sampled_from(("bytes", "tree")))
    # Draw the damage now, from a reply of the same shape: the draw must not depend on the round.
    if how == "bytes":
        flips = data.draw(st.lists(st.integers(0, 4095), min_size=1, max_size=3))
        cut = data.draw(st.one_of(st.none(), st.integers(0, 64)))

        def damage(content: bytes) -> bytes:
            out = bytearray(content)
            for at in flips:
                if out:
                    out[at % len(out)] ^= 0x5A
            return bytes(out[:cut] if cut is not None else out)

    else:
        seed = data.draw(st.integers(0, 2**32 - 1))
        odd_value = data.draw(ODD)

        def damage(content: bytes) -> bytes:
            tree = msgspec.msgpack.decode(content)
            tree = _replace_one(tree, seed, odd_value)
            try:
                return msgspec.msgpack.encode(tree)
            except OverflowError:
                return content[:1]

    rounds.link.target, rounds.link.damage = target, damage
    try:
        result = sync_once(rounds.box, rounds.peer, load(rounds.box.data_dir))
    finally:
        rounds.link.damage = None
    assert result.error is None or result.error.strip()
    wall = rounds.box.clock.wall_ms()
    assert 0 <= wall < 1 << (63 - COUNTER_BITS), f"the box's clock reads {wall} after a damaged {target}"
    # A clock the damage moved back is shown to the clerk as suspect; otherwise the desk works.
    if not clockcheck.for_node(rounds.box, 300_000).suspect:
        receive_sample(rounds.box, applicant_name="Nguyễn Văn Kiểm")


def _replace_one(tree: object, seed: int, value: object) -> object:
    """``tree`` with the position ``seed`` picks (modulo their number) replaced by ``value``."""
    positions: list[tuple] = []

    def walk(node: object, path: tuple) -> None:
        positions.append(path)
        if isinstance(node, dict):
            for key, item in node.items():
                walk(item, (*path, key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, i))

    walk(tree, ())
    path = positions[seed % len(positions)]

    def put(node: object, rest: tuple) -> object:
        if not rest:
            return value
        head, tail = rest[0], rest[1:]
        if isinstance(node, dict):
            return {k: (put(v, tail) if k == head else v) for k, v in node.items()}
        return [(put(v, tail) if i == head else v) for i, v in enumerate(node)]  # type: ignore[union-attr]

    return put(tree, path)
