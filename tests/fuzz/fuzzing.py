"""Mutations of valid artifacts, for fuzzing every parser of outside bytes.

A fuzz test starts from an artifact the real code made (a signed batch, a bundle, a kit, a
catalogue, a config file) and lets hypothesis damage it the ways a stick, a link or a person
does: bytes flipped, cut, extended, spliced, zeroed, repeated (:func:`mutated_bytes`); or, one
level up, a value inside the document replaced by one of an odd type or size, a key dropped or
added (:func:`mutated_json`, :func:`mutated_tree`). Plain garbage comes from :data:`GARBAGE`.

:func:`examples` scales a test's example count: ``MOTCUA_SOAK=1`` runs 20 times as many.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SOAK = os.environ.get("MOTCUA_SOAK") == "1"


def examples(n: int) -> settings:
    """Hypothesis settings for a fuzz test: ``n`` examples in CI, 20x under MOTCUA_SOAK=1.

    Function-scoped fixtures are shared by the examples on purpose: each test checks that a
    refused input changed nothing, so the same node must see every example."""
    return settings(
        max_examples=n * 20 if SOAK else n,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )


# --- bytes --------------------------------------------------------------------------------------

GARBAGE = st.binary(max_size=2048)


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, max_steps: int = 3) -> bytes:
    """``data`` damaged by one to ``max_steps`` edits; never equal to ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, max_steps))):
        how = draw(st.sampled_from(("flip", "truncate", "extend", "splice", "insert", "zero", "repeat")))
        size = len(out)
        at = draw(st.integers(0, max(0, size - 1)))
        if how == "flip" and size:
            out[at] ^= draw(st.integers(1, 255))
        elif how == "truncate":
            del out[draw(st.integers(0, max(0, size - 1))) :]
        elif how == "extend":
            out += draw(st.binary(min_size=1, max_size=64))
        elif how == "splice" and size:
            end = draw(st.integers(at, min(size, at + 64)))
            out[at:end] = draw(st.binary(max_size=64))
        elif how == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif how == "zero" and size:
            end = draw(st.integers(at + 1, min(size, at + 32)))
            out[at:end] = bytes(end - at)
        elif how == "repeat" and size:
            end = draw(st.integers(at + 1, min(size, at + 64)))
            out[end:end] = out[at:end]
    if bytes(out) == data:
        out = bytearray(data[:-1]) if data else bytearray(b"\x00")
    return bytes(out)


# --- values inside a document -------------------------------------------------------------------

ODD_JSON = (
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "-0.0",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "1" * 5000,
    '""',
    '"\\u0000"',
    '"\\ud800"',
    '"\\u00b2"',
    '"\\u0661\\u0662\\u0663"',
    '"\\u202e\\u200b\\ufeff"',
    '"../../etc/passwd"',
    '"' + "x" * 5000 + '"',
    "[]",
    "{}",
    "[[[]]]",
    '{"": null}',
    "[" * 3000 + "]" * 3000,
    '{"a":' * 3000 + "1" + "}" * 3000,
)
"""Raw JSON text of values no artifact holds: odd types, huge and non-finite numbers, digits
that are not ASCII, NUL and a lone surrogate, path tricks, long text, deep nesting."""

ODD_TOML = (
    "0",
    "-1",
    "9223372036854775807",
    "1.5",
    "inf",
    "nan",
    "true",
    "false",
    '""',
    '"\\u0000"',
    '"x"',
    '"' + "y" * 3000 + '"',
    "[]",
    "[1, 2]",
    "{}",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
)
"""TOML values of every type, as text."""

ODD_MSGPACK: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
    -(1 << 63),
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x" * 1000,
    "\x00",
    b"",
    b"\x00" * 33,
    [],
    {},
    [[[]]],
    {"a": [1]},
)
"""Values of every msgpack type and edge, for documents in msgpack."""

_SENTINEL = "\x00motcua-fuzz\x00"


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON-like tree (the root is ``()``)."""
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*here, i))
    return found


def _replace(tree: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in tree.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(tree)]


def _drop(tree: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    if rest:
        return _replace(tree, (head,), _drop(tree[head], rest))
    if isinstance(tree, dict):
        return {k: v for k, v in tree.items() if k != head}
    return [v for i, v in enumerate(tree) if i != head]


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any, odd: st.SearchStrategy[Any]) -> Any:
    """``tree`` (lists, dicts, scalars) with one position replaced by a value drawn from
    ``odd``, dropped, or given an extra key or item."""
    paths = _paths(tree)
    path = draw(st.sampled_from(paths))
    how = draw(st.sampled_from(("replace", "replace", "drop", "add")))
    if how == "drop" and path:
        return _drop(tree, path)
    if how == "add":
        container_paths = [p for p in paths if isinstance(_get(tree, p), dict | list)]
        if container_paths:
            where = draw(st.sampled_from(container_paths))
            container = _get(tree, where)
            if isinstance(container, dict):
                key = draw(st.text(max_size=12))
                return _replace(tree, where, {**container, key: draw(odd)})
            return _replace(tree, where, [*container, draw(odd)])
    return _replace(tree, path, draw(odd))


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


@st.composite
def mutated_json(draw: st.DrawFn, document: Any, dumps: Callable[[Any], str] | None = None) -> str:
    """The JSON text of ``document`` with one value made odd (see :data:`ODD_JSON`)."""
    raw = draw(st.sampled_from(ODD_JSON))
    tree = draw(mutated_tree(document, st.just(_SENTINEL)))
    text = (dumps or json.dumps)(tree)
    return text.replace(json.dumps(_SENTINEL), raw)


ODD_TEXT = st.sampled_from(
    (
        "",
        " ",
        "\x00",
        "\u00b2",
        "\u0661\u0662",
        "1" * 5000,
        "9" * 30,
        "-1",
        "1e5",
        "0x10",
        "\ufeff",
        "\u202e",
        '"',
        "\r\n",
        ";|;|",
        "Nguyễn",
        "x" * 3000,
    )
) | st.text(max_size=20)
"""Odd cell text for CSV: non-ASCII digits, huge numbers, quotes, line breaks, separators."""


def refusal(
    call: Callable[[], object], errors: type[Exception] | tuple[type[Exception], ...]
) -> Exception | None:
    """The typed error ``call`` raised, or None if it succeeded. Any other exception (the leak
    the fuzz tests look for) propagates and fails the test with its traceback."""
    try:
        call()
    except errors as exc:
        return exc
    return None


def assert_clear(error: Exception) -> None:
    """A refusal a person can act on: a message, and (for sync errors) a 4xx status."""
    message = getattr(error, "message", str(error))
    assert str(message).strip(), f"{type(error).__name__} without a message"
    status = getattr(error, "status", 400)
    assert 400 <= status < 500, f"{type(error).__name__}: status {status} is not a refusal"
