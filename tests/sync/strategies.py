"""Hypothesis strategies shared by the sync tests."""

from __future__ import annotations

from hypothesis import strategies as st

from sync.ops import Op

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
SCALARS = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | st.text(max_size=20)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
PAYLOADS = st.dictionaries(st.text(max_size=10), VALUES, max_size=6)
NAMES = st.text(min_size=1, max_size=24)

OPS = st.builds(
    Op,
    node=NAMES,
    seq=st.integers(min_value=1, max_value=(1 << 63) - 1),
    stamp=st.integers(min_value=0, max_value=(1 << 63) - 1),
    kind=st.text(max_size=12),
    entity=NAMES,
    action=st.text(max_size=12),
    payload=PAYLOADS,
)
