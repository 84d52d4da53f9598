"""The memory a parsed header takes stays within what the parser charges for it: the costliest
shapes msgpack allows (empty and one-entry maps, nested or in lists) measured with tracemalloc."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import pytest

from coinfer.wire.parser import HEADER_EXPANSION
from coinfer.wire.protocol import unpack_header

SIZE = 16 * 1024


def _nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth):
        inner = {"": inner}
    return inner


SHAPES = {
    "empty maps": {},
    "empty lists": [],
    "one-entry maps": {"": {}},
    "nested 3": _nested(3),
    "nested 50": _nested(50),
    "map of a list of a map": {"": [{}]},
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_header_costs_no_more_than_its_charge(shape: str) -> None:
    item, count = SHAPES[shape], SIZE
    while len(body := msgpack.packb({"x": [item] * count})) > SIZE:
        count = int(count * SIZE / len(body) * 0.99)
    tracemalloc.start()
    try:
        header = unpack_header(body)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(header["x"]) == count
    assert held <= HEADER_EXPANSION * len(body), f"{held / len(body):.1f}x its size"
